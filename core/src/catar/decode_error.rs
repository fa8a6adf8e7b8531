//! Decoder errors: what is wrong, and at which archive offset.

use super::MAX_DEPTH;
use super::format;
use core::fmt;

/// A record type's name for messages.
fn record_name(kind: u64) -> &'static str {
    format::record_name(kind).unwrap_or("unknown")
}

/// A decoding failure, with the archive offset of the record (or goodbye item) at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the archive.
    pub offset: u64,
    /// What is wrong there.
    pub kind: DecodeErrorKind,
}

/// What is wrong with an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended before the root directory's GOODBYE.
    Truncated,
    /// A record type casync does not know.
    UnknownRecord(u64),
    /// A known record where the grammar does not allow it (wrong order, repeated, or not
    /// matching the node's type).
    UnexpectedRecord(u64),
    /// A record size outside the bounds of its type.
    BadRecordSize {
        /// The record type.
        kind: u64,
        /// Its size field.
        size: u64,
    },
    /// Feature flags with bits casync does not know.
    UnknownFeatureFlags(u64),
    /// Feature flags that are not normalized.
    FlagsNotNormalized(u64),
    /// An ENTRY whose feature flags differ from the first ENTRY's.
    FeatureFlagsMismatch {
        /// The first ENTRY's flags.
        expected: u64,
        /// This ENTRY's flags.
        found: u64,
    },
    /// A record whose feature bit is off in the archive flags.
    FeatureDisabled(u64),
    /// A record the node's file type may not carry (xattrs/ACLs on symlinks, default ACLs on
    /// non-directories, fcaps on non-regular files, project ids on special files).
    NotAllowedForFileType(u64),
    /// A mode with unknown or disabled type bits, or permission bits the flags do not allow.
    BadMode(u64),
    /// ENTRY flags outside what the archive flags and the file type allow.
    BadEntryFlags(u64),
    /// A uid that is not storable under the archive flags.
    BadUid(u64),
    /// A gid that is not storable under the archive flags.
    BadGid(u64),
    /// An mtime that is not a multiple of the archive's time granularity (or not 0 without one).
    BadMtime(u64),
    /// The first ENTRY is not a directory.
    RootNotDirectory,
    /// A node more than [`MAX_DEPTH`] levels below the root.
    TooDeep,
    /// A FILENAME that is empty, `.`/`..`, or holds `/` or NUL (or lacks its NUL).
    BadFilename,
    /// A USER/GROUP/ACL name casync refuses.
    BadUserName,
    /// An xattr name casync refuses (or one not NUL-terminated within 256 bytes).
    BadXattrName,
    /// XATTR or ACL entries of one kind not in strictly increasing order.
    NotSorted(u64),
    /// ACL permissions with bits other than read/write/execute.
    BadAclPermissions(u64),
    /// Named access ACL entries without ACL_GROUP_OBJ.
    MissingAclGroupObj,
    /// Named default ACL entries without an ACL_DEFAULT record that has a mask.
    MissingAclDefaultMask,
    /// A node without USER and GROUP in an archive with user names but no numeric ids.
    MissingUserOrGroup,
    /// A SELinux label that is not a NUL-terminated string.
    BadSelinuxLabel,
    /// A project id of 0 or above 2³²−1.
    BadQuotaProjid(u64),
    /// A symlink target that is not a NUL-terminated string.
    BadSymlinkTarget,
    /// A device major ≥ 2¹² or minor ≥ 2²⁰.
    BadDevice {
        /// The major number.
        major: u64,
        /// The minor number.
        minor: u64,
    },
    /// A GOODBYE whose size does not fit the number of children read.
    BadGoodbyeSize {
        /// Its size field.
        size: u64,
        /// `16 + 24 * (children + 1)`.
        expected: u64,
    },
    /// A goodbye item that points outside its directory.
    BadGoodbyeItem {
        /// The item's backwards offset.
        offset: u64,
        /// The item's size.
        size: u64,
    },
    /// A goodbye tail with the wrong marker, size or entry offset.
    BadGoodbyeTail,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        write!(f, "at byte {}: ", self.offset)?;
        match self.kind {
            Truncated => f.write_str("archive is truncated"),
            UnknownRecord(t) => write!(f, "unknown record type {t:#x}"),
            UnexpectedRecord(t) => write!(f, "unexpected {} record", record_name(t)),
            BadRecordSize { kind, size } => {
                write!(f, "{} record has invalid size {size}", record_name(kind))
            }
            UnknownFeatureFlags(v) => write!(f, "unknown feature flags {v:#x}"),
            FlagsNotNormalized(v) => write!(f, "feature flags {v:#x} are not normalized"),
            FeatureFlagsMismatch { expected, found } => {
                write!(
                    f,
                    "feature flags {found:#x} differ from the archive's {expected:#x}"
                )
            }
            FeatureDisabled(t) => write!(f, "{} record but its feature is off", record_name(t)),
            NotAllowedForFileType(t) => {
                write!(
                    f,
                    "{} record not allowed for this file type",
                    record_name(t)
                )
            }
            BadMode(m) => write!(f, "invalid mode {m:#o}"),
            BadEntryFlags(v) => write!(f, "invalid entry flags {v:#x}"),
            BadUid(v) => write!(f, "invalid uid {v}"),
            BadGid(v) => write!(f, "invalid gid {v}"),
            BadMtime(v) => write!(f, "mtime {v} does not match the time granularity"),
            RootNotDirectory => f.write_str("the root is not a directory"),
            TooDeep => write!(f, "more than {MAX_DEPTH} levels below the root"),
            BadFilename => f.write_str("invalid file name"),
            BadUserName => f.write_str("invalid user or group name"),
            BadXattrName => f.write_str("invalid xattr name"),
            NotSorted(t) => write!(f, "{} records are not sorted", record_name(t)),
            BadAclPermissions(p) => write!(f, "invalid ACL permissions {p:#x}"),
            MissingAclGroupObj => f.write_str("named ACL entries without ACL_GROUP_OBJ"),
            MissingAclDefaultMask => f.write_str("named default ACL entries without a mask"),
            MissingUserOrGroup => f.write_str("USER or GROUP record missing"),
            BadSelinuxLabel => f.write_str("invalid SELinux label"),
            BadQuotaProjid(v) => write!(f, "invalid project id {v}"),
            BadSymlinkTarget => f.write_str("invalid symlink target"),
            BadDevice { major, minor } => write!(f, "invalid device {major}:{minor}"),
            BadGoodbyeSize { size, expected } => {
                write!(f, "GOODBYE size {size}, expected {expected}")
            }
            BadGoodbyeItem { offset, size } => {
                write!(
                    f,
                    "goodbye item (offset {offset}, size {size}) outside its directory"
                )
            }
            BadGoodbyeTail => f.write_str("invalid goodbye tail"),
        }
    }
}

impl core::error::Error for DecodeError {}
