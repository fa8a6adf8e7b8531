//! The binary's error type and the exit codes it maps to (documented in README.md).

use otasync_core::ChunkId;
use std::fmt;
use std::io;
use std::path::Path;

/// Exit code: the command succeeded.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code: an operation failed (I/O, permissions, resources).
pub(crate) const EXIT_FAILURE: i32 = 1;
/// Exit code: the command line is wrong (also clap's code for usage errors).
pub(crate) const EXIT_USAGE: i32 = 2;
/// Exit code: an input file (index, archive) is malformed.
pub(crate) const EXIT_INVALID_INPUT: i32 = 3;
/// Exit code: a chunk was found in no store.
pub(crate) const EXIT_CHUNK_MISSING: i32 = 4;
/// Exit code: a chunk was found but its content does not match its id.
pub(crate) const EXIT_CHUNK_CORRUPT: i32 = 5;
/// Exit code: signatures do not verify or do not meet the threshold, or a key is weak.
pub(crate) const EXIT_SIGNATURE: i32 = 6;
/// Exit code: a manifest or trust root has expired (against the trusted time floor).
pub(crate) const EXIT_EXPIRED: i32 = 7;
/// Exit code: a version is older than one already accepted, or skips a trust root version.
pub(crate) const EXIT_ROLLBACK: i32 = 8;
/// Exit code: the manifest is for another product, hardware or device.
pub(crate) const EXIT_INCOMPATIBLE: i32 = 9;
/// Exit code: an unknown format version, digest, compression or algorithm.
pub(crate) const EXIT_UNSUPPORTED: i32 = 10;
/// Exit code: the bootloader environment could not be read or written.
pub(crate) const EXIT_BOOTLOADER: i32 = 11;

/// Everything a command can fail with.
#[derive(Debug)]
pub(crate) enum Error {
    /// A bad argument or combination of arguments.
    Usage(String),
    /// An I/O operation failed; `context` says on what.
    Io { context: String, source: io::Error },
    /// An input file is not in the format it claims to be.
    InvalidInput { path: String, reason: String },
    /// No store has this chunk.
    ChunkMissing { id: ChunkId, stores: Vec<String> },
    /// A store returned bytes that are not this chunk.
    ChunkCorrupt {
        id: ChunkId,
        store: String,
        reason: String,
    },
    /// A signature, trust root, key or policy check refused `path`.
    Signing {
        path: String,
        source: otasync_signing::Error,
    },
    /// The device refuses an installation that does not fit it (slot missing or running,
    /// image larger than the slot, store not allowed).
    Refused(String),
    /// The bootloader environment could not be read or written.
    Boot(String),
    /// `verify` found that a directory differs from its archive (the differences are listed).
    Differs(String),
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Io { .. } => EXIT_FAILURE,
            Self::InvalidInput { .. } => EXIT_INVALID_INPUT,
            Self::ChunkMissing { .. } => EXIT_CHUNK_MISSING,
            Self::ChunkCorrupt { .. } => EXIT_CHUNK_CORRUPT,
            Self::Signing { source, .. } => signing_exit_code(source),
            Self::Refused(_) => EXIT_INCOMPATIBLE,
            Self::Boot(_) => EXIT_BOOTLOADER,
            Self::Differs(_) => EXIT_CHUNK_CORRUPT,
        }
    }

    /// A bootloader backend's error.
    pub(crate) fn boot(error: impl fmt::Display) -> Self {
        Self::Boot(error.to_string())
    }

    /// True when the error is a closed pipe on our output (`otasync extract x.caibx - | head`).
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::InvalidInput { path, reason } => write!(f, "{path}: {reason}"),
            Self::ChunkMissing { id, stores } => {
                write!(
                    f,
                    "chunk {id} is missing: not found in {}",
                    stores.join(", ")
                )
            }
            Self::ChunkCorrupt { id, store, reason } => {
                write!(f, "chunk {id} from {store} is corrupt: {reason}")
            }
            Self::Signing { path, source } => write!(f, "{path}: {source}"),
            Self::Refused(reason) => write!(f, "installation refused: {reason}"),
            Self::Boot(reason) => write!(f, "bootloader: {reason}"),
            Self::Differs(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Error {}

/// The exit code that says why the signing layer refused an input.
fn signing_exit_code(error: &otasync_signing::Error) -> i32 {
    use otasync_signing::Error as E;
    match error {
        E::SignatureInvalid { .. } | E::ThresholdNotMet { .. } | E::WeakKey { .. } => {
            EXIT_SIGNATURE
        }
        E::Expired { .. } => EXIT_EXPIRED,
        E::RollbackRejected { .. } | E::VersionSkipped { .. } => EXIT_ROLLBACK,
        E::Incompatible { .. } => EXIT_INCOMPATIBLE,
        E::Unsupported { .. } => EXIT_UNSUPPORTED,
        // Malformed, TooLarge, and variants added later.
        _ => EXIT_INVALID_INPUT,
    }
}

/// Shorthand results.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches "what were we doing" to I/O errors.
pub(crate) trait IoContext<T> {
    /// Names the operation and its path.
    fn at(self, what: &str, path: &Path) -> Result<T>;
    /// Names the operation only.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }

    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}
