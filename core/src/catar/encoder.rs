//! The streaming catar encoder and its sink.

use super::encode_meta::{encode_metadata, put_record};
use super::format::*;
use super::goodbye::{GoodbyeItem, encode_goodbye, name_hash};
use super::meta::{FileType, Metadata};
use super::rules::{type_enabled, valid_c_string, valid_filename};
use super::{MAX_DEPTH, validate_archive_flags};
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt;

/// Where encoded bytes go.
pub trait Sink {
    /// What writing can fail with.
    type Error;
    /// Appends `bytes` to the archive.
    fn write(&mut self, bytes: &[u8]) -> core::result::Result<(), Self::Error>;
}

impl Sink for Vec<u8> {
    type Error = Infallible;
    fn write(&mut self, bytes: &[u8]) -> core::result::Result<(), Infallible> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

impl<E, F: FnMut(&[u8]) -> core::result::Result<(), E>> Sink for F {
    type Error = E;
    fn write(&mut self, bytes: &[u8]) -> core::result::Result<(), E> {
        self(bytes)
    }
}

/// Why the encoder refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeErrorKind {
    /// Feature flags with bits casync does not know.
    UnknownFeatureFlags(u64),
    /// Feature flags that are not normalized.
    FlagsNotNormalized(u64),
    /// A child name that is empty, too long, `.`/`..`, or holds `/` or NUL.
    BadFilename,
    /// A child name not after the previous one in strcmp order.
    NotSorted,
    /// A node more than 63 levels below the root (casync: E2BIG).
    TooDeep,
    /// The mode's file-type bits do not match the call (or are not a file type).
    WrongFileType(u32),
    /// A uid or gid of 65535 or 2³²−1, which casync cannot archive (EINVAL).
    InvalidId(u32),
    /// A uid or gid above 65535 in an archive with 16-bit uids (EPROTONOSUPPORT).
    IdTooLarge(u32),
    /// A user or group name the decoder would refuse (not `[A-Za-z_][A-Za-z0-9_-]*`, or `root`).
    BadUserName,
    /// An archive with user names but no numeric ids needs a USER and GROUP record on every
    /// node; this node's owner or group has no name (casync writes such archives but cannot
    /// read them).
    MissingName,
    /// Two xattrs with the same name.
    DuplicateXattr,
    /// Two identical ACL entries.
    DuplicateAclEntry,
    /// ACL permissions with bits other than read/write/execute.
    BadAclPermissions(u64),
    /// Named access ACL entries without ACL_GROUP_OBJ, or named default ACL entries without a
    /// default mask.
    MissingAclMask,
    /// An empty, too long or NUL-holding symlink target or SELinux label.
    BadString,
    /// An xattr or fcaps value of more than 65536 bytes.
    ValueTooLarge,
    /// A device major ≥ 2¹² or minor ≥ 2²⁰.
    BadDevice {
        /// The major number.
        major: u64,
        /// The minor number.
        minor: u64,
    },
    /// Payload bytes beyond the announced size, or a new node before all of them arrived.
    PayloadMismatch {
        /// Bytes still owed (0 when there were too many).
        missing: u64,
    },
    /// A call after the root directory was closed.
    Finished,
}

impl fmt::Display for EncodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFeatureFlags(v) => write!(f, "unknown feature flags {v:#x}"),
            Self::FlagsNotNormalized(v) => write!(f, "feature flags {v:#x} are not normalized"),
            Self::BadFilename => f.write_str("invalid file name"),
            Self::NotSorted => f.write_str("children are not sorted by name"),
            Self::TooDeep => write!(f, "more than {MAX_DEPTH} levels below the root"),
            Self::WrongFileType(m) => write!(f, "mode {m:#o} has the wrong file type"),
            Self::InvalidId(id) => write!(f, "uid/gid {id} cannot be archived"),
            Self::IdTooLarge(id) => write!(f, "uid/gid {id} does not fit 16 bits"),
            Self::BadUserName => f.write_str("invalid user or group name"),
            Self::MissingName => f.write_str("user-names archive without numeric ids needs names"),
            Self::DuplicateXattr => f.write_str("duplicate xattr"),
            Self::DuplicateAclEntry => f.write_str("duplicate ACL entry"),
            Self::BadAclPermissions(p) => write!(f, "invalid ACL permissions {p:#x}"),
            Self::MissingAclMask => f.write_str("named ACL entries without a mask"),
            Self::BadString => f.write_str("invalid symlink target or SELinux label"),
            Self::ValueTooLarge => f.write_str("xattr or fcaps value too large"),
            Self::BadDevice { major, minor } => write!(f, "invalid device {major}:{minor}"),
            Self::PayloadMismatch { missing } => {
                write!(
                    f,
                    "payload does not match its size ({missing} bytes missing)"
                )
            }
            Self::Finished => f.write_str("the archive is already complete"),
        }
    }
}

/// An encoder failure: the input was refused, or the sink failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError<E> {
    /// The call's input breaks a rule of the format.
    Format(EncodeErrorKind),
    /// The sink returned an error.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for EncodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(kind) => write!(f, "cannot encode: {kind}"),
            Self::Sink(e) => write!(f, "cannot write archive: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for EncodeError<E> {}

impl<E> From<EncodeErrorKind> for EncodeError<E> {
    fn from(kind: EncodeErrorKind) -> Self {
        Self::Format(kind)
    }
}

/// A directory whose GOODBYE is not written yet.
#[derive(Debug)]
struct OpenDir {
    entry_offset: u64,
    items: Vec<GoodbyeItem>,
    last_name: Vec<u8>,
}

/// What follows a node's metadata records.
enum Contents<'a> {
    Directory,
    Payload(u64),
    Symlink(&'a [u8]),
    Device(u64, u64),
    Nothing,
}

/// The catar encoder: turns a walk of a tree into archive bytes, exactly as `casync make` does.
///
/// The caller walks the tree (children of each directory sorted by strcmp on the raw name
/// bytes, as casync's scandir) and calls [`Encoder::directory`], [`Encoder::file`] +
/// [`Encoder::payload`], [`Encoder::symlink`], [`Encoder::device`], [`Encoder::special`] and
/// [`Encoder::end_directory`]. The bytes go to a [`Sink`] as they are produced; payload bytes
/// are passed straight through. Per open directory the encoder remembers only its children's
/// name hashes, offsets and sizes, from which it writes the GOODBYE table.
///
/// Every call checks its input completely before writing anything, so a failed call leaves
/// the archive as it was.
#[derive(Debug)]
pub struct Encoder<S> {
    sink: S,
    flags: u64,
    pos: u64,
    dirs: Vec<OpenDir>,
    payload_left: u64,
    scratch: Vec<u8>,
}

type Result<T, E> = core::result::Result<T, EncodeError<E>>;

impl<S: Sink> Encoder<S> {
    /// Starts an archive with `feature_flags` (known and normalized) and writes the root
    /// directory's metadata.
    pub fn new(sink: S, feature_flags: u64, root: &Metadata) -> Result<Self, S::Error> {
        validate_archive_flags(
            feature_flags,
            EncodeErrorKind::UnknownFeatureFlags,
            EncodeErrorKind::FlagsNotNormalized,
        )?;
        let mut encoder = Self {
            sink,
            flags: feature_flags,
            pos: 0,
            dirs: Vec::new(),
            payload_left: 0,
            scratch: Vec::new(),
        };
        encoder.node(None, root, FileType::Directory, Contents::Directory)?;
        Ok(encoder)
    }

    /// Archive offset of the next byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Writes a subdirectory and enters it; its children follow, then [`Self::end_directory`].
    pub fn directory(&mut self, name: &[u8], meta: &Metadata) -> Result<(), S::Error> {
        self.node(Some(name), meta, FileType::Directory, Contents::Directory)
    }

    /// Writes a regular file of `size` bytes, which must follow through [`Self::payload`].
    pub fn file(&mut self, name: &[u8], meta: &Metadata, size: u64) -> Result<(), S::Error> {
        self.node(Some(name), meta, FileType::Regular, Contents::Payload(size))
    }

    /// Passes the next piece of the current file's contents through to the sink.
    pub fn payload(&mut self, data: &[u8]) -> Result<(), S::Error> {
        let len = data.len() as u64;
        if len > self.payload_left {
            return Err(EncodeErrorKind::PayloadMismatch { missing: 0 }.into());
        }
        self.sink.write(data).map_err(EncodeError::Sink)?;
        self.payload_left -= len;
        self.pos += len;
        Ok(())
    }

    /// Writes a symlink; `Ok(false)` when the archive leaves symlinks out (no `symlinks` flag).
    pub fn symlink(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        target: &[u8],
    ) -> Result<bool, S::Error> {
        self.leaf(name, meta, FileType::Symlink, Contents::Symlink(target))
    }

    /// Writes a block or character device (as `meta.entry.mode` says); `Ok(false)` when the
    /// archive leaves device nodes out.
    pub fn device(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        major: u64,
        minor: u64,
    ) -> Result<bool, S::Error> {
        let ty = FileType::from_mode(meta.entry.mode.into()).filter(|t| t.is_device());
        let ty = ty.ok_or(EncodeErrorKind::WrongFileType(meta.entry.mode))?;
        self.leaf(name, meta, ty, Contents::Device(major, minor))
    }

    /// Writes a FIFO or socket (as `meta.entry.mode` says); `Ok(false)` when the archive leaves
    /// that type out.
    pub fn special(&mut self, name: &[u8], meta: &Metadata) -> Result<bool, S::Error> {
        let ty = FileType::from_mode(meta.entry.mode.into())
            .filter(|t| matches!(t, FileType::Fifo | FileType::Socket));
        let ty = ty.ok_or(EncodeErrorKind::WrongFileType(meta.entry.mode))?;
        self.leaf(name, meta, ty, Contents::Nothing)
    }

    /// Closes the innermost open directory with its GOODBYE record; closing the root
    /// completes the archive.
    pub fn end_directory(&mut self) -> Result<(), S::Error> {
        self.check_ready()?;
        let goodbye_offset = self.pos;
        let Some(mut dir) = self.dirs.pop() else {
            return Err(EncodeErrorKind::Finished.into());
        };
        if let Some(last) = dir.items.last_mut() {
            last.size = goodbye_offset - last.start;
        }
        self.scratch.clear();
        encode_goodbye(
            &mut dir.items,
            dir.entry_offset,
            goodbye_offset,
            &mut self.scratch,
        );
        self.flush_scratch()
    }

    /// Closes every directory still open and returns the sink.
    pub fn finish(mut self) -> Result<S, S::Error> {
        while !self.dirs.is_empty() {
            self.end_directory()?;
        }
        Ok(self.sink)
    }

    fn leaf(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        ty: FileType,
        contents: Contents<'_>,
    ) -> Result<bool, S::Error> {
        if !type_enabled(self.flags, ty) {
            self.check_ready()?;
            return Ok(false);
        }
        self.node(Some(name), meta, ty, contents)?;
        Ok(true)
    }

    fn check_ready(&self) -> core::result::Result<(), EncodeErrorKind> {
        if self.payload_left != 0 {
            return Err(EncodeErrorKind::PayloadMismatch {
                missing: self.payload_left,
            });
        }
        Ok(())
    }

    fn flush_scratch(&mut self) -> Result<(), S::Error> {
        self.sink.write(&self.scratch).map_err(EncodeError::Sink)?;
        self.pos += self.scratch.len() as u64;
        Ok(())
    }

    /// Checks and writes FILENAME (for non-root nodes), the metadata records and what follows
    /// them, then updates the directory bookkeeping.
    fn node(
        &mut self,
        name: Option<&[u8]>,
        meta: &Metadata,
        ty: FileType,
        contents: Contents<'_>,
    ) -> Result<(), S::Error> {
        self.check_ready()?;
        if FileType::from_mode(meta.entry.mode.into()) != Some(ty) {
            return Err(EncodeErrorKind::WrongFileType(meta.entry.mode).into());
        }
        self.scratch.clear();
        if let Some(name) = name {
            let dir = self.dirs.last().ok_or(EncodeErrorKind::Finished)?;
            if !valid_filename(name) {
                return Err(EncodeErrorKind::BadFilename.into());
            }
            if !dir.items.is_empty() && name <= dir.last_name.as_slice() {
                return Err(EncodeErrorKind::NotSorted.into());
            }
            if self.dirs.len() > MAX_DEPTH {
                return Err(EncodeErrorKind::TooDeep.into());
            }
            put_record(&mut self.scratch, CA_FORMAT_FILENAME, &[], &[name, b"\0"]);
        }
        encode_metadata(self.flags, meta, ty, &mut self.scratch)?;
        match contents {
            Contents::Payload(size) => {
                put64(&mut self.scratch, &[HEADER_SIZE + size, CA_FORMAT_PAYLOAD]);
            }
            Contents::Symlink(target) => {
                if !valid_c_string(target, SYMLINK_MAX_LEN) {
                    return Err(EncodeErrorKind::BadString.into());
                }
                put_record(&mut self.scratch, CA_FORMAT_SYMLINK, &[], &[target, b"\0"]);
            }
            Contents::Device(major, minor) => {
                if major >= 1 << 12 || minor >= 1 << 20 {
                    return Err(EncodeErrorKind::BadDevice { major, minor }.into());
                }
                put_record(&mut self.scratch, CA_FORMAT_DEVICE, &[major, minor], &[]);
            }
            Contents::Directory | Contents::Nothing => {}
        }
        // Everything is checked: from here on the call cannot fail but for the sink.
        let start = self.pos;
        if let (Some(name), Some(dir)) = (name, self.dirs.last_mut()) {
            if let Some(last) = dir.items.last_mut() {
                last.size = start - last.start;
            }
            dir.items.push(GoodbyeItem {
                hash: name_hash(name),
                start,
                size: 0,
            });
            dir.last_name.clear();
            dir.last_name.extend_from_slice(name);
        }
        self.flush_scratch()?;
        match contents {
            Contents::Directory => self.dirs.push(OpenDir {
                entry_offset: start + name.map_or(0, |n| HEADER_SIZE + n.len() as u64 + 1),
                items: Vec::new(),
                last_name: Vec::new(),
            }),
            Contents::Payload(size) => self.payload_left = size,
            _ => {}
        }
        Ok(())
    }
}
