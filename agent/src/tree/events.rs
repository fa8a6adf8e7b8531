//! Driving the sans-IO catar decoder from a `std::io::Read`.

use super::{Result, TreeError};
use otasync_core::catar::{Decoder, Event};
use std::io::{ErrorKind, Read};
use std::path::Path;

/// Where the decoder stands when an event is reported.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Position {
    /// The archive's feature flags (0 until the first ENTRY header has been read).
    pub(crate) flags: u64,
    /// Archive offset just past the bytes consumed so far (the end of the event's record, or
    /// of the payload piece).
    pub(crate) end: u64,
}

/// Whether to go on decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Feed more.
    Continue,
    /// Stop here; the rest of the stream is not read.
    Stop,
}

/// Size of the read buffer.
const BUF_SIZE: usize = 128 * 1024;

/// Decodes the catar stream `input` (called `name` in errors) and calls `f` for every step:
/// `Some(event)` when one completed, with the raw archive bytes consumed by the step (for
/// hashing) and the position after it. Ends after the root's GOODBYE (trailing bytes are not
/// read); a truncated or malformed stream is an error.
pub(crate) fn for_each_event<R: Read>(
    mut input: R,
    name: &Path,
    mut f: impl FnMut(Option<Event<&[u8]>>, &[u8], &Position) -> Result<Flow>,
) -> Result<()> {
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut pos = Position::default();
    let mut head = [0u8; 24];
    loop {
        let len = match input.read(&mut buf) {
            Ok(0) => {
                return decoder
                    .finish()
                    .map_err(|e| TreeError::archive(name, format!("invalid archive {e}")));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(TreeError::io(name, e)),
        };
        let mut at = 0;
        while at < len {
            let before = decoder.position();
            let (n, event) = decoder
                .next(&buf[at..len])
                .map_err(|e| TreeError::archive(name, format!("invalid archive {e}")))?;
            let raw = &buf[at..at + n];
            // The archive flags are the first ENTRY's first field (bytes 16..24).
            if before < 24 {
                let start = before as usize;
                let take = (24 - start).min(raw.len());
                head[start..start + take].copy_from_slice(&raw[..take]);
                if start + take == 24 {
                    pos.flags = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
                }
            }
            pos.end = before + n as u64;
            at += n;
            let end = matches!(event, Some(Event::EndArchive));
            let idle = n == 0 && event.is_none();
            if f(event, raw, &pos)? == Flow::Stop || end {
                return Ok(());
            }
            if idle {
                break;
            }
        }
    }
}
