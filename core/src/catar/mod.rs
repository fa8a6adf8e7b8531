//! The catar archive format (casync `caformat.h`, `caencoder.c`, `cadecoder.c`; spec §4):
//! a streaming [`Encoder`] and a sans-IO [`Decoder`], both without I/O and byte-compatible with
//! casync.
//!
//! An archive is a sequence of records `{u64 size; u64 type; payload}` (little-endian, `size`
//! counts the 16-byte header, no padding). The root is a directory; each node is:
//!
//! ```text
//! node := ENTRY [USER] [GROUP] XATTR* ACL_USER* ACL_GROUP* [ACL_GROUP_OBJ] [ACL_DEFAULT]
//!         ACL_DEFAULT_USER* ACL_DEFAULT_GROUP* [SELINUX] [FCAPS] [QUOTA_PROJID]
//!         ( PAYLOAD(+data)            regular file
//!         | SYMLINK                   symlink
//!         | DEVICE                    block/char device
//!         | (FILENAME node)* GOODBYE  directory, children sorted by strcmp
//!         | nothing )                 fifo, socket
//! ```
//!
//! ENTRY carries the archive-wide feature flags, mode, chattr/FAT flags, uid, gid and mtime
//! (ns). GOODBYE ends a directory with a SipHash-keyed binary-search table of its children
//! ([`goodbye`]), whose tail makes random access from the end possible.

mod decode_error;
mod decoder;
mod encode_meta;
mod encoder;
pub mod format;
pub mod goodbye;
mod grammar;
mod meta;
mod records;
mod rules;

pub use decode_error::{DecodeError, DecodeErrorKind};
pub use decoder::{Decoder, Event, Step};
pub use encoder::{EncodeError, EncodeErrorKind, Encoder, Sink};
pub use meta::{
    Acl, AclDefault, AclEntry, Entry, FileType, Metadata, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO,
    S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
pub use rules::type_enabled;

use crate::flags;

/// The deepest node below the root: casync's encoder and decoder keep a stack of 64 nodes, so
/// a path of 63 components is the longest (deeper fails `casync make` with E2BIG).
pub const MAX_DEPTH: usize = 63;

/// Checks archive feature flags, failing with `unknown(f)` for bits casync does not know and
/// with `not_normalized(f)` for flags that are not normalized.
fn validate_archive_flags<K>(
    f: u64,
    unknown: fn(u64) -> K,
    not_normalized: fn(u64) -> K,
) -> Result<(), K> {
    if !flags::are_known(f) {
        Err(unknown(f))
    } else if !flags::is_normalized(f) {
        Err(not_normalized(f))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod tests;
