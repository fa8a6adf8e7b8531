//! Where verified chunks go: positional sinks write each chunk at its offset (files, block
//! devices), ordered sinks put chunks back in stream order first (stdout, a running digest).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Receives verified chunk contents.
pub(crate) trait ChunkSink: Sync {
    /// The verified bytes of the chunk that starts at `offset`.
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// `len` zero bytes at `offset`, known to be the chunk's content without fetching it.
    fn write_zeros(&self, offset: u64, len: usize) -> io::Result<()> {
        self.write_chunk(offset, &vec![0; len])
    }

    /// The chunk at `offset` is already in place in the target: nothing is written for it.
    fn kept(&self, _offset: u64) {}

    /// Assembly failed: release anything waiting for chunks that will not come.
    fn abort(&self) {}
}

/// A sink writing each chunk at its offset in a file or device.
pub(crate) struct PositionalSink<'a> {
    file: &'a File,
    /// Zero chunks may be skipped: the file is new and sparse, so the hole reads as zeros.
    zeros_are_holes: bool,
    /// fdatasync after this many bytes (block devices: bounds what a power cut can lose and
    /// keeps the page cache from filling with dirty pages).
    sync_every: Option<u64>,
    unsynced: AtomicU64,
    written: AtomicU64,
}

impl<'a> PositionalSink<'a> {
    pub(crate) fn new(file: &'a File, zeros_are_holes: bool, sync_every: Option<u64>) -> Self {
        Self {
            file,
            zeros_are_holes,
            sync_every,
            unsynced: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn wrote(&self, len: usize) -> io::Result<()> {
        self.written.fetch_add(len as u64, Ordering::Relaxed);
        let Some(every) = self.sync_every else {
            return Ok(());
        };
        let unsynced = self.unsynced.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if unsynced >= every {
            self.unsynced.fetch_sub(unsynced, Ordering::Relaxed);
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Zeros written per call when a zero run has to be written out.
static ZERO_BLOCK: [u8; 64 * 1024] = [0; 64 * 1024];

/// Writes `len` zero bytes at `offset` with `write_at`, a [`ZERO_BLOCK`] at a time.
pub(crate) fn write_zeros_by_block(
    offset: u64,
    len: usize,
    mut write_at: impl FnMut(&[u8], u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZERO_BLOCK.len());
        write_at(&ZERO_BLOCK[..n], offset + done as u64)?;
        done += n;
    }
    Ok(())
}

impl ChunkSink for PositionalSink<'_> {
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.zeros_are_holes && data.iter().all(|&b| b == 0) {
            return Ok(());
        }
        self.file.write_all_at(data, offset)?;
        self.wrote(data.len())
    }

    fn write_zeros(&self, offset: u64, len: usize) -> io::Result<()> {
        if self.zeros_are_holes {
            return Ok(());
        }
        write_zeros_by_block(offset, len, |zeros, at| self.file.write_all_at(zeros, at))?;
        self.wrote(len)
    }
}

/// A sink that puts chunks back in stream order before writing them to `W`. A worker whose
/// chunk comes too far ahead waits, so at most `limit` bytes wait in memory (plus the chunk that
/// is next, which never waits).
pub(crate) struct OrderedSink<W> {
    state: Mutex<OrderedState<W>>,
    progress: Condvar,
    limit: usize,
}

struct OrderedState<W> {
    out: W,
    next: u64,
    waiting: BTreeMap<u64, Vec<u8>>,
    waiting_bytes: usize,
    failed: bool,
}

impl<W: Write + Send> OrderedSink<W> {
    pub(crate) fn new(out: W, limit: usize) -> Self {
        Self {
            state: Mutex::new(OrderedState {
                out,
                next: 0,
                waiting: BTreeMap::new(),
                waiting_bytes: 0,
                failed: false,
            }),
            progress: Condvar::new(),
            limit,
        }
    }

    /// The writer, once every chunk has been written.
    pub(crate) fn into_inner(self) -> W {
        self.state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .out
    }
}

impl<W: Write + Send> ChunkSink for OrderedSink<W> {
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while offset != state.next && state.waiting_bytes + data.len() > self.limit && !state.failed
        {
            state = self.progress.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failed {
            return Err(io::Error::other("output failed"));
        }
        if offset != state.next {
            state.waiting_bytes += data.len();
            state.waiting.insert(offset, data.to_vec());
            return Ok(());
        }
        let state = &mut *state;
        let result = (|| {
            state.out.write_all(data)?;
            state.next += data.len() as u64;
            while let Some(data) = state.waiting.remove(&state.next) {
                state.waiting_bytes -= data.len();
                state.out.write_all(&data)?;
                state.next += data.len() as u64;
            }
            Ok(())
        })();
        state.failed = result.is_err();
        self.progress.notify_all();
        result
    }

    fn abort(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
        self.progress.notify_all();
    }
}
