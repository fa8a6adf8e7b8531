//! The frames of casync's remote protocol (casync `caprotocol.h`, `caremote.c`; spec §8.7).
//!
//! A connection is a byte stream of frames `{le64 size; le64 type; payload}`, where `size`
//! counts the 16-byte header and lies in 16..=16 MiB. Both sides send HELLO first:
//!
//! ```text
//! HELLO        le64 feature flags (services offered | operations wanted), size 24
//! INDEX        ≥ 1 byte of the index file          INDEX_EOF    (no payload)
//! ARCHIVE      ≥ 1 byte of the archive file        ARCHIVE_EOF  (no payload)
//! REQUEST      le64 flags (1: high priority), then N ≥ 1 chunk ids of 32 bytes
//! CHUNK        le64 flags (1: compressed), 32-byte id, ≥ 1 byte of chunk data
//! MISSING      32-byte id
//! GOODBYE      (no payload)
//! ABORT        le64 errno (< INT32_MAX), reason text + NUL (no control characters)
//! ```
//!
//! On a pull the server sends the index (or archive) and then answers the client's REQUESTs
//! with CHUNK or MISSING; the client may end with GOODBYE or just close. On a push the client
//! sends the index (or archive); the server REQUESTs the chunks it lacks, the client answers,
//! and the server ends with GOODBYE. Either side may ABORT.
//!
//! Every size is checked against the type's layout before the payload is read, exactly as
//! casync's `validate_*` functions do, so a peer cannot make us allocate more than one frame.

use otasync_core::ChunkId;
use std::fmt;
use std::io::{self, Read, Write};

/// Size of a frame header.
pub(crate) const HEADER_SIZE: u64 = 16;
/// Largest frame (`CA_PROTOCOL_SIZE_MAX`).
pub(crate) const MAX_FRAME: u64 = 16 << 20;
/// Size of a chunk id on the wire (`CA_CHUNK_ID_SIZE`).
const ID_SIZE: usize = 32;
/// casync's read size for files sent as INDEX/ARCHIVE frames (`BUFFER_SIZE`).
pub(crate) const FILE_PIECE: usize = 64 * 1024;

/// `CA_PROTOCOL_HELLO`.
pub(crate) const TYPE_HELLO: u64 = 0x3c71d0948ca5fbee;
/// `CA_PROTOCOL_INDEX`.
pub(crate) const TYPE_INDEX: u64 = 0xb32a91dd2b3e27f8;
/// `CA_PROTOCOL_INDEX_EOF`.
pub(crate) const TYPE_INDEX_EOF: u64 = 0x4f0932f1043718f5;
/// `CA_PROTOCOL_ARCHIVE`.
pub(crate) const TYPE_ARCHIVE: u64 = 0x95d6428a69eddcc5;
/// `CA_PROTOCOL_ARCHIVE_EOF`.
pub(crate) const TYPE_ARCHIVE_EOF: u64 = 0x450bef663f24cbad;
/// `CA_PROTOCOL_REQUEST`.
pub(crate) const TYPE_REQUEST: u64 = 0x8ab427e0f89d9210;
/// `CA_PROTOCOL_CHUNK`.
pub(crate) const TYPE_CHUNK: u64 = 0x5213dd180a84bc8c;
/// `CA_PROTOCOL_MISSING`.
pub(crate) const TYPE_MISSING: u64 = 0xd010f9fac82b7b6c;
/// `CA_PROTOCOL_GOODBYE`.
pub(crate) const TYPE_GOODBYE: u64 = 0xad205dbf1a3686c3;
/// `CA_PROTOCOL_ABORT`.
pub(crate) const TYPE_ABORT: u64 = 0xe7d9136b7efea352;

/// HELLO service: "I provide chunks on request" (`CA_PROTOCOL_READABLE_STORE`).
pub(crate) const READABLE_STORE: u64 = 0x1;
/// HELLO service: "I can store chunks for you" (`CA_PROTOCOL_WRITABLE_STORE`).
pub(crate) const WRITABLE_STORE: u64 = 0x2;
/// HELLO service: "I provide an index" (`CA_PROTOCOL_READABLE_INDEX`).
pub(crate) const READABLE_INDEX: u64 = 0x4;
/// HELLO service: "I can store an index" (`CA_PROTOCOL_WRITABLE_INDEX`).
pub(crate) const WRITABLE_INDEX: u64 = 0x8;
/// HELLO service: "I provide an archive" (`CA_PROTOCOL_READABLE_ARCHIVE`).
pub(crate) const READABLE_ARCHIVE: u64 = 0x10;
/// HELLO service: "I can store an archive" (`CA_PROTOCOL_WRITABLE_ARCHIVE`).
pub(crate) const WRITABLE_ARCHIVE: u64 = 0x20;
/// HELLO operation: pull chunks (`CA_PROTOCOL_PULL_CHUNKS`).
pub(crate) const PULL_CHUNKS: u64 = 0x40;
/// HELLO operation: pull an index (`CA_PROTOCOL_PULL_INDEX`).
pub(crate) const PULL_INDEX: u64 = 0x80;
/// HELLO operation: pull an archive (`CA_PROTOCOL_PULL_ARCHIVE`).
pub(crate) const PULL_ARCHIVE: u64 = 0x100;
/// HELLO operation: push chunks (`CA_PROTOCOL_PUSH_CHUNKS`).
pub(crate) const PUSH_CHUNKS: u64 = 0x200;
/// HELLO operation: push an index (`CA_PROTOCOL_PUSH_INDEX`).
pub(crate) const PUSH_INDEX: u64 = 0x400;
/// HELLO operation: "request the chunks of the index I push" (`CA_PROTOCOL_PUSH_INDEX_CHUNKS`).
pub(crate) const PUSH_INDEX_CHUNKS: u64 = 0x800;
/// HELLO operation: push an archive (`CA_PROTOCOL_PUSH_ARCHIVE`).
pub(crate) const PUSH_ARCHIVE: u64 = 0x1000;
/// Every HELLO bit casync knows (`CA_PROTOCOL_FEATURE_FLAGS_MAX`).
pub(crate) const FEATURE_FLAGS_MAX: u64 = 0x1fff;
/// REQUEST flag: fetch this before low-priority requests (`CA_PROTOCOL_REQUEST_HIGH_PRIORITY`).
pub(crate) const REQUEST_HIGH_PRIORITY: u64 = 1;
/// CHUNK flag: the data is compressed as stored (`CA_PROTOCOL_CHUNK_COMPRESSED`).
pub(crate) const CHUNK_COMPRESSED: u64 = 1;

/// Largest chunk a CHUNK frame can carry.
pub(crate) const MAX_CHUNK_DATA: usize = (MAX_FRAME - HEADER_SIZE - 8) as usize - ID_SIZE;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The peer's services and wanted operations.
    Hello(u64),
    /// A piece of the index file.
    Index(Vec<u8>),
    /// The index file is complete.
    IndexEof,
    /// A piece of the archive file.
    Archive(Vec<u8>),
    /// The archive file is complete.
    ArchiveEof,
    /// Chunks wanted.
    Request {
        /// Serve these before low-priority ones.
        high_priority: bool,
        /// The chunks, at least one.
        ids: Vec<ChunkId>,
    },
    /// A chunk, in its stored form.
    Chunk {
        /// Whether `data` is compressed (a `.cacnk` file) or raw.
        compressed: bool,
        /// Its id.
        id: ChunkId,
        /// The bytes, at least one.
        data: Vec<u8>,
    },
    /// The sender does not have this chunk.
    Missing(ChunkId),
    /// The sender is done.
    Goodbye,
    /// The sender gives up.
    Abort {
        /// The closest errno, or 0.
        errno: u64,
        /// Why, without the NUL.
        reason: String,
    },
}

/// A frame that breaks the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The header's size is outside 16..=16 MiB.
    BadSize(u64),
    /// The type is not one casync defines.
    UnknownType(u64),
    /// The payload does not fit the type's layout.
    Malformed {
        /// The frame type's name.
        frame: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize(size) => write!(
                f,
                "frame size {size} outside {HEADER_SIZE}..={MAX_FRAME} bytes"
            ),
            Self::UnknownType(kind) => write!(f, "unknown frame type {kind:#018x}"),
            Self::Malformed { frame, reason } => write!(f, "malformed {frame} frame: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

fn malformed(frame: &'static str, reason: &'static str) -> FrameError {
    FrameError::Malformed { frame, reason }
}

fn le64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

fn chunk_id(bytes: &[u8]) -> ChunkId {
    let mut id = [0u8; ID_SIZE];
    id.copy_from_slice(&bytes[..ID_SIZE]);
    ChunkId(id)
}

/// The name of a frame type, for messages.
pub(crate) fn type_name(kind: u64) -> &'static str {
    match kind {
        TYPE_HELLO => "HELLO",
        TYPE_INDEX => "INDEX",
        TYPE_INDEX_EOF => "INDEX_EOF",
        TYPE_ARCHIVE => "ARCHIVE",
        TYPE_ARCHIVE_EOF => "ARCHIVE_EOF",
        TYPE_REQUEST => "REQUEST",
        TYPE_CHUNK => "CHUNK",
        TYPE_MISSING => "MISSING",
        TYPE_GOODBYE => "GOODBYE",
        TYPE_ABORT => "ABORT",
        _ => "unknown",
    }
}

/// Checks a header before its payload is read: the size bounds, the type, and the sizes the
/// type allows. Returns the payload length.
pub(crate) fn check_header(size: u64, kind: u64) -> Result<usize, FrameError> {
    if !(HEADER_SIZE..=MAX_FRAME).contains(&size) {
        return Err(FrameError::BadSize(size));
    }
    let payload = (size - HEADER_SIZE) as usize;
    let name = type_name(kind);
    let ok = match kind {
        TYPE_HELLO => payload == 8,
        TYPE_INDEX | TYPE_ARCHIVE => payload >= 1,
        TYPE_INDEX_EOF | TYPE_ARCHIVE_EOF | TYPE_GOODBYE => payload == 0,
        TYPE_REQUEST => payload >= 8 + ID_SIZE && (payload - 8).is_multiple_of(ID_SIZE),
        TYPE_CHUNK => payload > 8 + ID_SIZE,
        TYPE_MISSING => payload == ID_SIZE,
        TYPE_ABORT => payload >= 9,
        _ => return Err(FrameError::UnknownType(kind)),
    };
    match ok {
        true => Ok(payload),
        false => Err(malformed(name, "wrong size for its type")),
    }
}

impl Frame {
    /// Decodes the payload of a frame whose header [`check_header`] accepted.
    pub(crate) fn decode(kind: u64, mut payload: Vec<u8>) -> Result<Self, FrameError> {
        check_header(payload.len() as u64 + HEADER_SIZE, kind)?;
        Ok(match kind {
            TYPE_HELLO => {
                let flags = le64(&payload);
                if flags == 0 || flags == u64::MAX {
                    return Err(malformed("HELLO", "no services and no operations"));
                }
                Self::Hello(flags)
            }
            TYPE_INDEX => Self::Index(payload),
            TYPE_INDEX_EOF => Self::IndexEof,
            TYPE_ARCHIVE => Self::Archive(payload),
            TYPE_ARCHIVE_EOF => Self::ArchiveEof,
            TYPE_REQUEST => {
                let flags = le64(&payload);
                if flags & !REQUEST_HIGH_PRIORITY != 0 {
                    return Err(malformed("REQUEST", "unknown flags"));
                }
                Self::Request {
                    high_priority: flags & REQUEST_HIGH_PRIORITY != 0,
                    ids: payload[8..].chunks_exact(ID_SIZE).map(chunk_id).collect(),
                }
            }
            TYPE_CHUNK => {
                let flags = le64(&payload);
                if flags & !CHUNK_COMPRESSED != 0 {
                    return Err(malformed("CHUNK", "unknown flags"));
                }
                let id = chunk_id(&payload[8..]);
                payload.drain(..8 + ID_SIZE);
                Self::Chunk {
                    compressed: flags & CHUNK_COMPRESSED != 0,
                    id,
                    data: payload,
                }
            }
            TYPE_MISSING => Self::Missing(chunk_id(&payload)),
            TYPE_GOODBYE => Self::Goodbye,
            TYPE_ABORT => {
                let errno = le64(&payload);
                if errno >= i32::MAX as u64 {
                    return Err(malformed("ABORT", "errno out of range"));
                }
                let text = &payload[8..];
                let (last, reason) = text.split_last().unwrap_or((&0, &[]));
                if *last != 0 || reason.iter().any(|&b| b < b' ') {
                    return Err(malformed("ABORT", "reason is not NUL-terminated text"));
                }
                Self::Abort {
                    errno,
                    reason: String::from_utf8_lossy(reason).into_owned(),
                }
            }
            _ => return Err(FrameError::UnknownType(kind)),
        })
    }

    /// The frame's type name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "HELLO",
            Self::Index(_) => "INDEX",
            Self::IndexEof => "INDEX_EOF",
            Self::Archive(_) => "ARCHIVE",
            Self::ArchiveEof => "ARCHIVE_EOF",
            Self::Request { .. } => "REQUEST",
            Self::Chunk { .. } => "CHUNK",
            Self::Missing(_) => "MISSING",
            Self::Goodbye => "GOODBYE",
            Self::Abort { .. } => "ABORT",
        }
    }

    /// Writes the frame. Fails with `InvalidInput` for a frame that cannot be encoded (empty
    /// file piece or request, a payload over the size limit).
    pub(crate) fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let header = |kind: u64, payload: usize| -> io::Result<[u8; 16]> {
            let size = payload as u64 + HEADER_SIZE;
            check_header(size, kind)?;
            let mut h = [0u8; 16];
            h[..8].copy_from_slice(&size.to_le_bytes());
            h[8..].copy_from_slice(&kind.to_le_bytes());
            Ok(h)
        };
        match self {
            Self::Hello(flags) => {
                w.write_all(&header(TYPE_HELLO, 8)?)?;
                w.write_all(&flags.to_le_bytes())
            }
            Self::Index(data) | Self::Archive(data) => {
                let kind = match self {
                    Self::Index(_) => TYPE_INDEX,
                    _ => TYPE_ARCHIVE,
                };
                w.write_all(&header(kind, data.len())?)?;
                w.write_all(data)
            }
            Self::IndexEof => w.write_all(&header(TYPE_INDEX_EOF, 0)?),
            Self::ArchiveEof => w.write_all(&header(TYPE_ARCHIVE_EOF, 0)?),
            Self::Goodbye => w.write_all(&header(TYPE_GOODBYE, 0)?),
            Self::Request { high_priority, ids } => {
                w.write_all(&header(TYPE_REQUEST, 8 + ids.len() * ID_SIZE)?)?;
                w.write_all(&u64::from(*high_priority).to_le_bytes())?;
                ids.iter().try_for_each(|id| w.write_all(&id.0))
            }
            Self::Chunk {
                compressed,
                id,
                data,
            } => {
                w.write_all(&header(TYPE_CHUNK, 8 + ID_SIZE + data.len())?)?;
                w.write_all(&u64::from(*compressed).to_le_bytes())?;
                w.write_all(&id.0)?;
                w.write_all(data)
            }
            Self::Missing(id) => {
                w.write_all(&header(TYPE_MISSING, ID_SIZE)?)?;
                w.write_all(&id.0)
            }
            Self::Abort { errno, reason } => {
                // Control characters would make casync reject the frame.
                let text: Vec<u8> = reason
                    .bytes()
                    .map(|b| if b < b' ' { b' ' } else { b })
                    .take((MAX_FRAME - HEADER_SIZE - 9) as usize)
                    .collect();
                w.write_all(&header(TYPE_ABORT, 8 + text.len() + 1)?)?;
                w.write_all(&(*errno).min(i32::MAX as u64 - 1).to_le_bytes())?;
                w.write_all(&text)?;
                w.write_all(&[0])
            }
        }
    }
}

/// Reads one frame; `None` at a clean end of stream (between frames). A stream ending inside
/// a frame fails with `UnexpectedEof`; a frame breaking the protocol with `InvalidData`.
pub(crate) fn read_frame<R: Read + ?Sized>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 16];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended inside a frame header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (size, kind) = (le64(&header[..8]), le64(&header[8..]));
    let len = check_header(size, kind)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the connection ended inside a {} frame", type_name(kind)),
        ),
        _ => e,
    })?;
    Ok(Some(Frame::decode(kind, payload)?))
}

/// Checks a HELLO exchange as casync does (`ca_remote_process_hello`): the peer's flags are
/// known bits, PUSH_INDEX_CHUNKS comes with PUSH_INDEX and PUSH_CHUNKS, every operation either
/// side wants is a service the other offers, and some operation is wanted at all.
pub(crate) fn check_hello(local: u64, remote: u64) -> Result<(), String> {
    if remote & !FEATURE_FLAGS_MAX != 0 {
        return Err(format!("the peer announced unknown features {remote:#x}"));
    }
    if remote & PUSH_INDEX_CHUNKS != 0
        && remote & (PUSH_INDEX | PUSH_CHUNKS) != (PUSH_INDEX | PUSH_CHUNKS)
    {
        return Err("the peer asks to push index chunks without an index and chunks".into());
    }
    let compatible = |ops: u64, services: u64| {
        [
            (PULL_CHUNKS, READABLE_STORE),
            (PULL_INDEX, READABLE_INDEX),
            (PULL_ARCHIVE, READABLE_ARCHIVE),
            (PUSH_CHUNKS, WRITABLE_STORE),
            (PUSH_INDEX, WRITABLE_INDEX),
            (PUSH_ARCHIVE, WRITABLE_ARCHIVE),
        ]
        .iter()
        .all(|&(op, service)| ops & op == 0 || services & service != 0)
    };
    if !compatible(remote, local) {
        return Err(format!(
            "the peer wants operations ({remote:#x}) this side does not offer ({local:#x})"
        ));
    }
    if !compatible(local, remote) {
        return Err(format!(
            "this side wants operations ({local:#x}) the peer does not offer ({remote:#x})"
        ));
    }
    let operations =
        PULL_INDEX | PULL_CHUNKS | PULL_ARCHIVE | PUSH_CHUNKS | PUSH_INDEX | PUSH_ARCHIVE;
    if (local | remote) & operations == 0 {
        return Err("neither side wants any operation".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: Frame) -> Vec<u8> {
        let mut bytes = Vec::new();
        frame.write_to(&mut bytes).unwrap();
        let back = read_frame(&mut bytes.as_slice()).unwrap().unwrap();
        assert_eq!(back, frame);
        bytes
    }

    #[test]
    fn frames_round_trip_with_casync_layouts() {
        let hello = roundtrip(Frame::Hello(PULL_CHUNKS | PULL_INDEX));
        // The bytes casync sends for `list host:/x.caidx` (spec §8.7).
        assert_eq!(hello[..8], 24u64.to_le_bytes());
        assert_eq!(hello[8..16], TYPE_HELLO.to_le_bytes());
        assert_eq!(hello[16..], 0xc0u64.to_le_bytes());
        let id = ChunkId([7; 32]);
        let request = roundtrip(Frame::Request {
            high_priority: true,
            ids: vec![id, ChunkId([8; 32])],
        });
        assert_eq!(request.len(), 16 + 8 + 64);
        let chunk = roundtrip(Frame::Chunk {
            compressed: true,
            id,
            data: vec![1, 2, 3],
        });
        assert_eq!(chunk.len(), 16 + 8 + 32 + 3);
        roundtrip(Frame::Missing(id));
        roundtrip(Frame::Index(vec![0; 10]));
        roundtrip(Frame::IndexEof);
        roundtrip(Frame::Archive(vec![1]));
        roundtrip(Frame::ArchiveEof);
        roundtrip(Frame::Goodbye);
        let abort = roundtrip(Frame::Abort {
            errno: 2,
            reason: "no such file".into(),
        });
        assert_eq!(abort.last(), Some(&0));
    }

    fn raw(size: u64, kind: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = size.to_le_bytes().to_vec();
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn sizes_are_checked_before_reading_the_payload() {
        // A 1 TiB frame is refused from its header alone.
        let huge = raw(1 << 40, TYPE_CHUNK, &[]);
        let e = read_frame(&mut huge.as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("outside"), "{e}");
        for (size, kind) in [
            (15, TYPE_GOODBYE),
            (25, TYPE_HELLO),
            (17, TYPE_GOODBYE),
            (16, TYPE_INDEX),
            (16 + 8 + 31, TYPE_REQUEST),
            (16 + 8 + 32, TYPE_CHUNK),
            (16 + 33, TYPE_MISSING),
            (24, 0x1234),
        ] {
            assert!(check_header(size, kind).is_err(), "{size} {kind:#x}");
        }
        assert_eq!(check_header(16 + 8 + 64, TYPE_REQUEST), Ok(72));
    }

    #[test]
    fn bad_payloads_are_refused() {
        let zero_hello = raw(24, TYPE_HELLO, &0u64.to_le_bytes());
        assert!(read_frame(&mut zero_hello.as_slice()).is_err());
        let mut flags = 2u64.to_le_bytes().to_vec();
        flags.extend_from_slice(&[0; 32]);
        let bad_request = raw(56, TYPE_REQUEST, &flags);
        assert!(read_frame(&mut bad_request.as_slice()).is_err());
        let mut abort = 5u64.to_le_bytes().to_vec();
        abort.extend_from_slice(b"no nul");
        let bad_abort = raw(16 + abort.len() as u64, TYPE_ABORT, &abort);
        assert!(read_frame(&mut bad_abort.as_slice()).is_err());
        // Truncated inside the payload.
        let cut = raw(24, TYPE_HELLO, &[1, 0, 0]);
        let e = read_frame(&mut cut.as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(read_frame(&mut [].as_slice()).unwrap().is_none());
    }

    #[test]
    fn hello_compatibility_follows_casync() {
        // ssh pull and push as observed from casync (spec §8.7).
        assert!(check_hello(0xc0, 0x05).is_ok());
        assert!(check_hello(0x05, 0xc0).is_ok());
        assert!(check_hello(0xe00, 0x0a).is_ok());
        assert!(check_hello(0x0a, 0xe00).is_ok());
        // Pulling chunks from a server without a store.
        assert!(check_hello(PULL_CHUNKS, READABLE_INDEX).is_err());
        // Index chunks without an index push.
        assert!(check_hello(WRITABLE_STORE, PUSH_INDEX_CHUNKS | PUSH_CHUNKS).is_err());
        assert!(check_hello(READABLE_STORE, READABLE_INDEX).is_err());
        assert!(check_hello(READABLE_STORE, 0x2000).is_err());
    }
}
