//! The value rules of spec §4.3–§4.6, shared by both directions: the encoder normalizes with
//! them and the decoder accepts a value exactly when normalizing it would not change it.

use super::format::{
    ACL_PERMISSION_EXECUTE, ACL_PERMISSION_READ, ACL_PERMISSION_WRITE, FILENAME_MAX_LEN,
    NAME_MAX_LEN, XATTR_NAME_MAX_LEN,
};
use super::meta::{FileType, S_IFLNK, S_IFMT};
use crate::flags::*;

/// All feature bits that name FAT attributes (`CA_FORMAT_WITH_FAT_ATTRS`).
const FAT_ATTRS: u64 = WITH_FLAG_HIDDEN | WITH_FLAG_SYSTEM | WITH_FLAG_ARCHIVE;
/// All feature bits that name chattr flags (`CA_FORMAT_WITH_CHATTR`).
const CHATTR: u64 = 0x3ff0000;
/// The numeric uid bits.
const NUMERIC_IDS: u64 = WITH_16BIT_UIDS | WITH_32BIT_UIDS;

/// True when the archive stores numeric uids/gids.
pub(crate) fn has_numeric_ids(flags: u64) -> bool {
    flags & NUMERIC_IDS != 0
}

/// A FILENAME: non-empty, at most 255 bytes, no `/` or NUL, not `.` or `..`.
pub(crate) fn valid_filename(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= FILENAME_MAX_LEN
        && !name.iter().any(|&b| b == b'/' || b == 0)
        && name != b"."
        && name != b".."
}

/// A USER/GROUP (or ACL) name: `[A-Za-z_][A-Za-z0-9_-]*`, at most 255 bytes, not `root`.
pub(crate) fn valid_user_name(name: &[u8]) -> bool {
    let Some((&first, rest)) = name.split_first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_')
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.len() <= NAME_MAX_LEN
        && name != b"root"
}

/// An xattr name casync accepts (`ca_xattr_name_is_valid`): its first dot is neither its first
/// nor its last byte, at most 255 bytes, no NUL.
pub(crate) fn valid_xattr_name(name: &[u8]) -> bool {
    let dot = name.iter().position(|&b| b == b'.');
    matches!(dot, Some(d) if d > 0 && d + 1 < name.len())
        && name.len() <= XATTR_NAME_MAX_LEN
        && !name.contains(&0)
}

/// The xattrs casync stores: valid names in the `user.` and `trusted.` namespaces.
pub(crate) fn stored_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") || name.starts_with(b"trusted.")) && valid_xattr_name(name)
}

/// A NUL-free, non-empty string of at most `max` bytes (symlink targets, SELinux labels).
pub(crate) fn valid_c_string(s: &[u8], max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.contains(&0)
}

/// A uid/gid as stored in ENTRY and ACL records.
pub(crate) fn valid_id(flags: u64, id: u64) -> bool {
    if flags & WITH_16BIT_UIDS != 0 {
        id < 0xffff
    } else if flags & WITH_32BIT_UIDS != 0 {
        id < 0xffff_ffff && id != 0xffff
    } else {
        id == 0
    }
}

/// ACL permission bits.
pub(crate) fn valid_permissions(p: u64) -> bool {
    p & !(ACL_PERMISSION_READ | ACL_PERMISSION_WRITE | ACL_PERMISSION_EXECUTE) == 0
}

/// True when an archive with these feature flags may hold nodes of this type at all (symlinks,
/// devices, FIFOs and sockets each need their WITH bit); a tree walker leaves the others out.
pub fn type_enabled(flags: u64, ty: FileType) -> bool {
    let bit = match ty {
        FileType::Directory | FileType::Regular => return true,
        FileType::Symlink => WITH_SYMLINKS,
        FileType::BlockDevice | FileType::CharDevice => WITH_DEVICE_NODES,
        FileType::Fifo => WITH_FIFOS,
        FileType::Socket => WITH_SOCKETS,
    };
    flags & bit != 0
}

/// The mode casync stores for `mode` (`ca_encoder_fixup_mode`).
pub(crate) fn normalize_mode(flags: u64, mode: u32) -> u32 {
    let ty = mode & S_IFMT;
    let dir = FileType::from_mode(mode.into()) == Some(FileType::Directory);
    let (full, read_only) = if dir { (0o777, 0o555) } else { (0o666, 0o444) };
    if ty == S_IFLNK {
        S_IFLNK | 0o777
    } else if flags & (WITH_PERMISSIONS | WITH_ACL) != 0 {
        mode & (S_IFMT | 0o7777)
    } else if flags & WITH_READ_ONLY != 0 && mode & 0o222 == 0 {
        ty | read_only
    } else {
        ty | full
    }
}

/// The ENTRY flags casync stores for a node of type `ty` whose attributes are `attrs`.
pub(crate) fn normalize_entry_flags(flags: u64, ty: FileType, attrs: u64) -> u64 {
    let allowed = match ty {
        FileType::Directory => FAT_ATTRS | CHATTR | WITH_SUBVOLUME | WITH_SUBVOLUME_RO,
        FileType::Regular => FAT_ATTRS | CHATTR,
        _ => 0,
    };
    attrs & allowed & flags
}

/// The granularity of stored mtimes in ns, or `None` when the archive stores no time.
///
/// casync's decoder checks µs times with `% 1_000_000` (a bug that makes such archives
/// unreadable, spec §4.3); both directions here use the documented 1000 ns.
pub(crate) fn time_granularity(flags: u64) -> Option<u64> {
    if flags & WITH_NSEC_TIME != 0 {
        Some(1)
    } else if flags & WITH_USEC_TIME != 0 {
        Some(1_000)
    } else if flags & WITH_SEC_TIME != 0 {
        Some(1_000_000_000)
    } else if flags & WITH_2SEC_TIME != 0 {
        Some(2_000_000_000)
    } else {
        None
    }
}

/// The mtime casync stores: rounded down to the granularity, 0 without a time flag.
pub(crate) fn normalize_mtime(flags: u64, mtime: u64) -> u64 {
    time_granularity(flags).map_or(0, |g| mtime / g * g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catar::meta::{S_IFDIR, S_IFREG};

    #[test]
    fn modes() {
        let f = S_IFREG | 0o4755;
        assert_eq!(normalize_mode(0, f), S_IFREG | 0o666);
        assert_eq!(normalize_mode(WITH_PERMISSIONS, f), f);
        assert_eq!(normalize_mode(WITH_ACL, f), f);
        assert_eq!(normalize_mode(WITH_READ_ONLY, f), S_IFREG | 0o666);
        assert_eq!(
            normalize_mode(WITH_READ_ONLY, S_IFREG | 0o444),
            S_IFREG | 0o444
        );
        assert_eq!(
            normalize_mode(WITH_READ_ONLY, S_IFDIR | 0o500),
            S_IFDIR | 0o555
        );
        assert_eq!(normalize_mode(0, S_IFDIR | 0o700), S_IFDIR | 0o777);
        assert_eq!(
            normalize_mode(WITH_PERMISSIONS, S_IFLNK | 0o700),
            S_IFLNK | 0o777
        );
    }

    #[test]
    fn times() {
        let t = 1_577_934_245_123_456_789;
        assert_eq!(normalize_mtime(WITH_NSEC_TIME, t), t);
        assert_eq!(
            normalize_mtime(WITH_USEC_TIME, t),
            1_577_934_245_123_456_000
        );
        assert_eq!(normalize_mtime(WITH_SEC_TIME, t), 1_577_934_245_000_000_000);
        assert_eq!(
            normalize_mtime(WITH_2SEC_TIME, t),
            1_577_934_244_000_000_000
        );
        assert_eq!(normalize_mtime(0, t), 0);
    }

    #[test]
    fn names() {
        assert!(valid_filename(b"a") && valid_filename(b"...") && !valid_filename(b".."));
        assert!(!valid_filename(b"") && !valid_filename(b"a/b") && !valid_filename(b"a\0"));
        assert!(!valid_filename(&[b'x'; 256]) && valid_filename(&[b'x'; 255]));
        assert!(valid_user_name(b"_a-1") && !valid_user_name(b"1a") && !valid_user_name(b"root"));
        assert!(!valid_user_name(b"") && !valid_user_name(b"a.b") && !valid_user_name(b"0"));
        assert!(
            valid_xattr_name(b"user.a.") && !valid_xattr_name(b".a") && !valid_xattr_name(b"a.")
        );
        assert!(stored_xattr(b"trusted.x") && !stored_xattr(b"security.capability"));
        assert!(!stored_xattr(b"user."));
    }

    #[test]
    fn ids() {
        assert!(valid_id(WITH_16BIT_UIDS, 65534) && !valid_id(WITH_16BIT_UIDS, 65535));
        assert!(valid_id(WITH_32BIT_UIDS, 65536) && !valid_id(WITH_32BIT_UIDS, 65535));
        assert!(!valid_id(WITH_32BIT_UIDS, 0xffff_ffff) && !valid_id(0, 1) && valid_id(0, 0));
    }
}
