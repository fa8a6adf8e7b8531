//! Record type constants, record size bounds and the little helpers both directions share
//! (casync `caformat.h`, spec §4.1).

/// Size of every record header: `u64 size` (header included) and `u64 type`.
pub const HEADER_SIZE: u64 = 16;

/// General stat data of a node: feature flags, mode, flags, uid, gid, mtime (`CA_FORMAT_ENTRY`).
pub const CA_FORMAT_ENTRY: u64 = 0x1396fabcea5bbb51;
/// Owner name + NUL (`CA_FORMAT_USER`).
pub const CA_FORMAT_USER: u64 = 0xf453131aaeeaccb3;
/// Group name + NUL (`CA_FORMAT_GROUP`).
pub const CA_FORMAT_GROUP: u64 = 0x25eb6ac969396a52;
/// Extended attribute: name + NUL + raw value (`CA_FORMAT_XATTR`).
pub const CA_FORMAT_XATTR: u64 = 0xb8157091f80bc486;
/// Named user entry of the access ACL: uid, permissions, optional name + NUL (`CA_FORMAT_ACL_USER`).
pub const CA_FORMAT_ACL_USER: u64 = 0x297dc88b2ef12faf;
/// Named group entry of the access ACL: gid, permissions, optional name + NUL (`CA_FORMAT_ACL_GROUP`).
pub const CA_FORMAT_ACL_GROUP: u64 = 0x36f2acb56cb3dd0b;
/// Owning-group permissions of an access ACL with a mask (`CA_FORMAT_ACL_GROUP_OBJ`).
pub const CA_FORMAT_ACL_GROUP_OBJ: u64 = 0x23047110441f38f3;
/// Default ACL: user_obj, group_obj, other and mask permissions (`CA_FORMAT_ACL_DEFAULT`).
pub const CA_FORMAT_ACL_DEFAULT: u64 = 0xfe3eeda6823c8cd0;
/// Named user entry of the default ACL, laid out as ACL_USER (`CA_FORMAT_ACL_DEFAULT_USER`).
pub const CA_FORMAT_ACL_DEFAULT_USER: u64 = 0xbdf03df9bd010a91;
/// Named group entry of the default ACL, laid out as ACL_GROUP (`CA_FORMAT_ACL_DEFAULT_GROUP`).
pub const CA_FORMAT_ACL_DEFAULT_GROUP: u64 = 0xa0cb1168782d1f51;
/// SELinux label + NUL (`CA_FORMAT_SELINUX`).
pub const CA_FORMAT_SELINUX: u64 = 0x46faf0602fd26c59;
/// Raw `security.capability` value of a regular file (`CA_FORMAT_FCAPS`).
pub const CA_FORMAT_FCAPS: u64 = 0xf7267db0afed0629;
/// ext4/XFS project quota id, never 0 (`CA_FORMAT_QUOTA_PROJID`).
pub const CA_FORMAT_QUOTA_PROJID: u64 = 0x161baf2d8772a72b;
/// Symlink target + NUL (`CA_FORMAT_SYMLINK`).
pub const CA_FORMAT_SYMLINK: u64 = 0x664a6fb6830e0d6c;
/// Device major and minor of a block or character device (`CA_FORMAT_DEVICE`).
pub const CA_FORMAT_DEVICE: u64 = 0xac3dace369dfe643;
/// File contents; the record size is 16 + file size (`CA_FORMAT_PAYLOAD`).
pub const CA_FORMAT_PAYLOAD: u64 = 0x8b9e1d93d6dcffc9;
/// Name of the directory child that follows, + NUL (`CA_FORMAT_FILENAME`).
pub const CA_FORMAT_FILENAME: u64 = 0x6dbb6ebcb3161f0b;
/// End of a directory: the lookup table of its children, then the tail (`CA_FORMAT_GOODBYE`).
pub const CA_FORMAT_GOODBYE: u64 = 0xdfd35c5e8327c403;
/// Last u64 of every GOODBYE record (`CA_FORMAT_GOODBYE_TAIL_MARKER`).
pub const CA_FORMAT_GOODBYE_TAIL_MARKER: u64 = 0x57446fa533702943;

/// ACL permission bit: read (`CA_FORMAT_ACL_PERMISSION_READ`).
pub const ACL_PERMISSION_READ: u64 = 4;
/// ACL permission bit: write (`CA_FORMAT_ACL_PERMISSION_WRITE`).
pub const ACL_PERMISSION_WRITE: u64 = 2;
/// ACL permission bit: execute (`CA_FORMAT_ACL_PERMISSION_EXECUTE`).
pub const ACL_PERMISSION_EXECUTE: u64 = 1;

/// Size of an ENTRY record.
pub const ENTRY_SIZE: u64 = HEADER_SIZE + 6 * 8;
/// Size of the fixed part (header, id, permissions) of the ACL user/group records.
pub const ACL_ENTRY_FIXED_SIZE: u64 = HEADER_SIZE + 2 * 8;
/// Size of an ACL_GROUP_OBJ record.
pub const ACL_GROUP_OBJ_SIZE: u64 = HEADER_SIZE + 8;
/// Size of an ACL_DEFAULT record.
pub const ACL_DEFAULT_SIZE: u64 = HEADER_SIZE + 4 * 8;
/// Size of a QUOTA_PROJID record.
pub const QUOTA_PROJID_SIZE: u64 = HEADER_SIZE + 8;
/// Size of a DEVICE record.
pub const DEVICE_SIZE: u64 = HEADER_SIZE + 2 * 8;
/// Size of one goodbye item, and of the goodbye tail.
pub const GOODBYE_ITEM_SIZE: u64 = 24;

/// Longest user or group name (`LOGIN_NAME_MAX` - 1).
pub const NAME_MAX_LEN: usize = 255;
/// Longest file name (`NAME_MAX`).
pub const FILENAME_MAX_LEN: usize = 255;
/// Longest xattr name (xattr(7)).
pub const XATTR_NAME_MAX_LEN: usize = 255;
/// Largest xattr value (`XATTR_SIZE_MAX`).
pub const XATTR_VALUE_MAX_LEN: usize = 65536;
/// Longest symlink target (`PATH_MAX` - 1).
pub const SYMLINK_MAX_LEN: usize = 4095;
/// Longest SELinux label.
pub const SELINUX_MAX_LEN: usize = 4095;
/// Largest fcaps value.
pub const FCAPS_MAX_LEN: usize = 65536;

const H: u64 = HEADER_SIZE;

/// The inclusive `(min, max)` record sizes of the records whose whole body is held in memory
/// while decoding; `None` for PAYLOAD and GOODBYE, which stream, and for unknown types.
/// Checked on the header, before anything is buffered.
pub fn size_bounds(kind: u64) -> Option<(u64, u64)> {
    let name = |max: usize| (H + 2, H + max as u64 + 1);
    Some(match kind {
        CA_FORMAT_ENTRY => (ENTRY_SIZE, ENTRY_SIZE),
        CA_FORMAT_USER | CA_FORMAT_GROUP => name(NAME_MAX_LEN),
        // Namespace, dot, one character and NUL.
        CA_FORMAT_XATTR => (
            H + 4,
            H + (XATTR_NAME_MAX_LEN + 1 + XATTR_VALUE_MAX_LEN) as u64,
        ),
        CA_FORMAT_ACL_USER
        | CA_FORMAT_ACL_GROUP
        | CA_FORMAT_ACL_DEFAULT_USER
        | CA_FORMAT_ACL_DEFAULT_GROUP => (
            ACL_ENTRY_FIXED_SIZE,
            ACL_ENTRY_FIXED_SIZE + NAME_MAX_LEN as u64 + 1,
        ),
        CA_FORMAT_ACL_GROUP_OBJ => (ACL_GROUP_OBJ_SIZE, ACL_GROUP_OBJ_SIZE),
        CA_FORMAT_ACL_DEFAULT => (ACL_DEFAULT_SIZE, ACL_DEFAULT_SIZE),
        CA_FORMAT_SELINUX => name(SELINUX_MAX_LEN),
        CA_FORMAT_FCAPS => (H, H + FCAPS_MAX_LEN as u64),
        CA_FORMAT_QUOTA_PROJID => (QUOTA_PROJID_SIZE, QUOTA_PROJID_SIZE),
        CA_FORMAT_SYMLINK => name(SYMLINK_MAX_LEN),
        CA_FORMAT_DEVICE => (DEVICE_SIZE, DEVICE_SIZE),
        CA_FORMAT_FILENAME => name(FILENAME_MAX_LEN),
        _ => return None,
    })
}

/// The size of a GOODBYE record with `items` items.
pub fn goodbye_size(items: u64) -> u64 {
    items
        .saturating_add(1)
        .saturating_mul(GOODBYE_ITEM_SIZE)
        .saturating_add(H)
}

/// casync's name of a record type, `None` for types casync does not know.
pub fn record_name(kind: u64) -> Option<&'static str> {
    Some(match kind {
        CA_FORMAT_ENTRY => "ENTRY",
        CA_FORMAT_USER => "USER",
        CA_FORMAT_GROUP => "GROUP",
        CA_FORMAT_XATTR => "XATTR",
        CA_FORMAT_ACL_USER => "ACL_USER",
        CA_FORMAT_ACL_GROUP => "ACL_GROUP",
        CA_FORMAT_ACL_GROUP_OBJ => "ACL_GROUP_OBJ",
        CA_FORMAT_ACL_DEFAULT => "ACL_DEFAULT",
        CA_FORMAT_ACL_DEFAULT_USER => "ACL_DEFAULT_USER",
        CA_FORMAT_ACL_DEFAULT_GROUP => "ACL_DEFAULT_GROUP",
        CA_FORMAT_SELINUX => "SELINUX",
        CA_FORMAT_FCAPS => "FCAPS",
        CA_FORMAT_QUOTA_PROJID => "QUOTA_PROJID",
        CA_FORMAT_SYMLINK => "SYMLINK",
        CA_FORMAT_DEVICE => "DEVICE",
        CA_FORMAT_PAYLOAD => "PAYLOAD",
        CA_FORMAT_FILENAME => "FILENAME",
        CA_FORMAT_GOODBYE => "GOODBYE",
        _ => return None,
    })
}

/// Reads the little-endian u64 at `at`; the caller guarantees `bytes.len() >= at + 8`.
pub(crate) fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Appends little-endian u64s.
pub(crate) fn put64(out: &mut alloc::vec::Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_spec() {
        assert_eq!(size_bounds(CA_FORMAT_USER), Some((18, 16 + 256)));
        assert_eq!(
            size_bounds(CA_FORMAT_XATTR).unwrap().1,
            16 + 255 + 1 + 65536
        );
        assert_eq!(size_bounds(CA_FORMAT_ACL_USER), Some((32, 32 + 256)));
        assert_eq!(size_bounds(CA_FORMAT_SELINUX).unwrap().1, 16 + 4096);
        assert_eq!(size_bounds(CA_FORMAT_FCAPS), Some((16, 16 + 65536)));
        assert_eq!(size_bounds(CA_FORMAT_SYMLINK).unwrap().1, 16 + 4096);
        assert_eq!(size_bounds(CA_FORMAT_FILENAME), Some((18, 16 + 256)));
        assert_eq!(size_bounds(CA_FORMAT_PAYLOAD), None);
        assert_eq!(goodbye_size(0), 40);
        assert_eq!(goodbye_size(2), 88);
        assert_eq!(record_name(CA_FORMAT_GOODBYE), Some("GOODBYE"));
        assert_eq!(record_name(1), None);
    }
}
