//! casync's feature flags (`caformat.h`, spec §3): which metadata an archive carries, how
//! trees were filtered, and which digest names chunks. The same u64 sits in the index header
//! and in every ENTRY record of an archive.

/// Store uid/gid, each at most 0xFFFF (`CA_FORMAT_WITH_16BIT_UIDS`).
pub const WITH_16BIT_UIDS: u64 = 0x1;
/// Store full 32-bit uid/gid (`CA_FORMAT_WITH_32BIT_UIDS`).
pub const WITH_32BIT_UIDS: u64 = 0x2;
/// USER/GROUP records and names in ACL entries (`CA_FORMAT_WITH_USER_NAMES`).
pub const WITH_USER_NAMES: u64 = 0x4;
/// mtime rounded down to 1 s (`CA_FORMAT_WITH_SEC_TIME`).
pub const WITH_SEC_TIME: u64 = 0x8;
/// mtime rounded down to 1 µs (`CA_FORMAT_WITH_USEC_TIME`).
pub const WITH_USEC_TIME: u64 = 0x10;
/// mtime in nanoseconds (`CA_FORMAT_WITH_NSEC_TIME`).
pub const WITH_NSEC_TIME: u64 = 0x20;
/// mtime rounded down to 2 s, as FAT keeps it (`CA_FORMAT_WITH_2SEC_TIME`).
pub const WITH_2SEC_TIME: u64 = 0x40;
/// Only "writable or not" of the mode (`CA_FORMAT_WITH_READ_ONLY`).
pub const WITH_READ_ONLY: u64 = 0x80;
/// The full 07777 mode bits (`CA_FORMAT_WITH_PERMISSIONS`).
pub const WITH_PERMISSIONS: u64 = 0x100;
/// Include symlinks (`CA_FORMAT_WITH_SYMLINKS`).
pub const WITH_SYMLINKS: u64 = 0x200;
/// Include block and character devices (`CA_FORMAT_WITH_DEVICE_NODES`).
pub const WITH_DEVICE_NODES: u64 = 0x400;
/// Include FIFOs (`CA_FORMAT_WITH_FIFOS`).
pub const WITH_FIFOS: u64 = 0x800;
/// Include AF_UNIX socket nodes (`CA_FORMAT_WITH_SOCKETS`).
pub const WITH_SOCKETS: u64 = 0x1000;
/// FAT hidden attribute (`CA_FORMAT_WITH_FLAG_HIDDEN`).
pub const WITH_FLAG_HIDDEN: u64 = 0x2000;
/// FAT system attribute (`CA_FORMAT_WITH_FLAG_SYSTEM`).
pub const WITH_FLAG_SYSTEM: u64 = 0x4000;
/// FAT archive attribute (`CA_FORMAT_WITH_FLAG_ARCHIVE`).
pub const WITH_FLAG_ARCHIVE: u64 = 0x8000;
/// chattr +a (`CA_FORMAT_WITH_FLAG_APPEND`).
pub const WITH_FLAG_APPEND: u64 = 0x10000;
/// chattr +A (`CA_FORMAT_WITH_FLAG_NOATIME`).
pub const WITH_FLAG_NOATIME: u64 = 0x20000;
/// chattr +c (`CA_FORMAT_WITH_FLAG_COMPR`).
pub const WITH_FLAG_COMPR: u64 = 0x40000;
/// chattr +C (`CA_FORMAT_WITH_FLAG_NOCOW`).
pub const WITH_FLAG_NOCOW: u64 = 0x80000;
/// chattr +d (`CA_FORMAT_WITH_FLAG_NODUMP`).
pub const WITH_FLAG_NODUMP: u64 = 0x100000;
/// chattr +D (`CA_FORMAT_WITH_FLAG_DIRSYNC`).
pub const WITH_FLAG_DIRSYNC: u64 = 0x200000;
/// chattr +i (`CA_FORMAT_WITH_FLAG_IMMUTABLE`).
pub const WITH_FLAG_IMMUTABLE: u64 = 0x400000;
/// chattr +S (`CA_FORMAT_WITH_FLAG_SYNC`).
pub const WITH_FLAG_SYNC: u64 = 0x800000;
/// chattr +m (`CA_FORMAT_WITH_FLAG_NOCOMP`).
pub const WITH_FLAG_NOCOMP: u64 = 0x1000000;
/// chattr +P (`CA_FORMAT_WITH_FLAG_PROJINHERIT`).
pub const WITH_FLAG_PROJINHERIT: u64 = 0x2000000;
/// The directory is a btrfs subvolume (`CA_FORMAT_WITH_SUBVOLUME`).
pub const WITH_SUBVOLUME: u64 = 0x4000000;
/// The subvolume is read-only (`CA_FORMAT_WITH_SUBVOLUME_RO`).
pub const WITH_SUBVOLUME_RO: u64 = 0x8000000;
/// `user.*` and `trusted.*` xattrs (`CA_FORMAT_WITH_XATTRS`).
pub const WITH_XATTRS: u64 = 0x10000000;
/// POSIX ACLs (`CA_FORMAT_WITH_ACL`).
pub const WITH_ACL: u64 = 0x20000000;
/// SELinux labels (`CA_FORMAT_WITH_SELINUX`).
pub const WITH_SELINUX: u64 = 0x40000000;
/// File capabilities (`CA_FORMAT_WITH_FCAPS`).
pub const WITH_FCAPS: u64 = 0x80000000;
/// ext4/XFS project quota ids (`CA_FORMAT_WITH_QUOTA_PROJID`).
pub const WITH_QUOTA_PROJID: u64 = 0x100000000;
/// `.caexclude` files were honoured (`CA_FORMAT_EXCLUDE_FILE`).
pub const EXCLUDE_FILE: u64 = 0x1000000000000000;
/// Chunk and archive digests are SHA-512/256; SHA-256 when clear (`CA_FORMAT_SHA512_256`).
pub const SHA512_256: u64 = 0x2000000000000000;
/// Submounts were left out (`CA_FORMAT_EXCLUDE_SUBMOUNTS`).
pub const EXCLUDE_SUBMOUNTS: u64 = 0x4000000000000000;
/// Files with chattr +d were left out (`CA_FORMAT_EXCLUDE_NODUMP`).
pub const EXCLUDE_NODUMP: u64 = 0x8000000000000000;

/// Every bit casync knows (`CA_FORMAT_FEATURE_FLAGS_MAX`); others mean "unsupported".
pub const FEATURE_FLAGS_MAX: u64 = 0xf0000001ffffffff;

const ANY_UIDS: u64 = WITH_16BIT_UIDS | WITH_32BIT_UIDS | WITH_USER_NAMES;

/// The flags a blob index made by `casync make` carries: exclude bits plus SHA-512/256.
pub const BLOB_INDEX_DEFAULT: u64 = EXCLUDE_NODUMP | EXCLUDE_FILE | SHA512_256;

/// The `--with=`/`--without=` names of the single feature bits (spec §3.1), in bit order.
pub const WITH_NAMES: [(&str, u64); 33] = [
    ("16bit-uids", WITH_16BIT_UIDS),
    ("32bit-uids", WITH_32BIT_UIDS),
    ("user-names", WITH_USER_NAMES),
    ("sec-time", WITH_SEC_TIME),
    ("usec-time", WITH_USEC_TIME),
    ("nsec-time", WITH_NSEC_TIME),
    ("2sec-time", WITH_2SEC_TIME),
    ("read-only", WITH_READ_ONLY),
    ("permissions", WITH_PERMISSIONS),
    ("symlinks", WITH_SYMLINKS),
    ("device-nodes", WITH_DEVICE_NODES),
    ("fifos", WITH_FIFOS),
    ("sockets", WITH_SOCKETS),
    ("flag-hidden", WITH_FLAG_HIDDEN),
    ("flag-system", WITH_FLAG_SYSTEM),
    ("flag-archive", WITH_FLAG_ARCHIVE),
    ("flag-append", WITH_FLAG_APPEND),
    ("flag-noatime", WITH_FLAG_NOATIME),
    ("flag-compr", WITH_FLAG_COMPR),
    ("flag-nocow", WITH_FLAG_NOCOW),
    ("flag-nodump", WITH_FLAG_NODUMP),
    ("flag-dirsync", WITH_FLAG_DIRSYNC),
    ("flag-immutable", WITH_FLAG_IMMUTABLE),
    ("flag-sync", WITH_FLAG_SYNC),
    ("flag-nocomp", WITH_FLAG_NOCOMP),
    ("flag-projinherit", WITH_FLAG_PROJINHERIT),
    ("subvolume", WITH_SUBVOLUME),
    ("subvolume-ro", WITH_SUBVOLUME_RO),
    ("xattrs", WITH_XATTRS),
    ("acl", WITH_ACL),
    ("selinux", WITH_SELINUX),
    ("fcaps", WITH_FCAPS),
    ("quota-projid", WITH_QUOTA_PROJID),
];

/// The composite `--with=`/`--without=` names and their values (spec §3.1).
pub const COMPOSITE_NAMES: [(&str, u64); 8] = [
    ("best", 0x1fffffe26),
    ("unix", 0x1f09),
    ("fat", 0xe0c0),
    ("chattr", 0x3ff0000),
    ("fat-attrs", 0xe000),
    ("privileged", 0x1ec414407),
    ("fuse", 0x13fffffb),
    ("all", 0x1ffffffff),
];

/// The bits a `--with=`/`--without=` name stands for, single or composite.
pub fn from_name(name: &str) -> Option<u64> {
    WITH_NAMES
        .iter()
        .chain(&COMPOSITE_NAMES)
        .find(|(n, _)| *n == name)
        .map(|&(_, bits)| bits)
}

/// Widens a set of flags into a mask that keeps every bit it implies, for filtering what an
/// archive's metadata is replayed with (casync `ca_feature_flags_normalize_mask`, spec §3.2).
pub fn widen_mask(mut flags: u64) -> u64 {
    const UIDS: u64 = WITH_16BIT_UIDS | WITH_32BIT_UIDS;
    const TIMES: u64 = WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME;
    if flags & UIDS != 0 {
        flags |= UIDS;
    }
    if flags & TIMES != 0 {
        flags |= TIMES;
    }
    if flags & WITH_ACL != 0 {
        flags |= WITH_PERMISSIONS;
    }
    if flags & WITH_PERMISSIONS != 0 {
        flags |= WITH_READ_ONLY;
    }
    if flags & WITH_SUBVOLUME_RO != 0 {
        flags |= WITH_SUBVOLUME;
    }
    flags
}

/// The flags an archive's metadata is replayed with on extract, given the user's mask:
/// `normalize(widen(archive) & widen(mask))`.
pub fn replay_flags(archive: u64, mask: u64) -> u64 {
    normalize(widen_mask(archive) & widen_mask(mask))
}

/// True when no bit outside [`FEATURE_FLAGS_MAX`] is set.
pub fn are_known(flags: u64) -> bool {
    flags & !FEATURE_FLAGS_MAX == 0
}

/// Removes the redundancies casync removes (`ca_feature_flags_normalize`, spec §3.2).
pub fn normalize(mut flags: u64) -> u64 {
    if flags & WITH_ACL != 0 && flags & ANY_UIDS == 0 {
        flags |= WITH_32BIT_UIDS | WITH_USER_NAMES;
    }
    if flags & WITH_32BIT_UIDS != 0 {
        flags &= !WITH_16BIT_UIDS;
    }
    if flags & WITH_NSEC_TIME != 0 {
        flags &= !(WITH_USEC_TIME | WITH_SEC_TIME | WITH_2SEC_TIME);
    }
    if flags & WITH_USEC_TIME != 0 {
        flags &= !(WITH_SEC_TIME | WITH_2SEC_TIME);
    }
    if flags & WITH_SEC_TIME != 0 {
        flags &= !WITH_2SEC_TIME;
    }
    if flags & WITH_ACL != 0 {
        flags &= !(WITH_PERMISSIONS | WITH_READ_ONLY);
    }
    if flags & WITH_PERMISSIONS != 0 {
        flags &= !WITH_READ_ONLY;
    }
    if flags & EXCLUDE_NODUMP != 0 {
        flags &= !WITH_FLAG_NODUMP;
    }
    if flags & WITH_SUBVOLUME_RO != 0 {
        flags |= WITH_SUBVOLUME;
    }
    flags
}

/// True when `flags` is already normalized (what index and archive readers require).
pub fn is_normalized(flags: u64) -> bool {
    normalize(flags) == flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casync_outputs_are_normalized() {
        // Flags seen in real casync output (spec §3.3).
        for flags in [
            0xb0000001ffeffe26,
            0xb000000000001f09,
            0xb000000000000000,
            0x30000001fffffe26,
            0x9000000000001f09,
            0xb000000020000006,
        ] {
            assert!(are_known(flags) && is_normalized(flags), "{flags:#x}");
        }
    }

    #[test]
    fn normalization_rules() {
        assert_eq!(
            normalize(WITH_ACL),
            WITH_ACL | WITH_32BIT_UIDS | WITH_USER_NAMES
        );
        assert_eq!(
            normalize(WITH_16BIT_UIDS | WITH_32BIT_UIDS),
            WITH_32BIT_UIDS
        );
        assert_eq!(normalize(WITH_NSEC_TIME | WITH_SEC_TIME), WITH_NSEC_TIME);
        assert_eq!(
            normalize(WITH_PERMISSIONS | WITH_READ_ONLY),
            WITH_PERMISSIONS
        );
        assert_eq!(normalize(EXCLUDE_NODUMP | WITH_FLAG_NODUMP), EXCLUDE_NODUMP);
        assert_eq!(
            normalize(WITH_SUBVOLUME_RO),
            WITH_SUBVOLUME_RO | WITH_SUBVOLUME
        );
        assert!(!are_known(1 << 40));
    }

    #[test]
    fn names() {
        let mut all = 0;
        for (i, (name, bit)) in WITH_NAMES.iter().enumerate() {
            assert_eq!(*bit, 1 << i, "{name}");
            assert_eq!(from_name(name), Some(*bit));
            all |= bit;
        }
        assert_eq!(from_name("all"), Some(all));
        assert_eq!(
            from_name("unix"),
            Some(
                WITH_16BIT_UIDS
                    | WITH_PERMISSIONS
                    | WITH_SEC_TIME
                    | WITH_SYMLINKS
                    | WITH_DEVICE_NODES
                    | WITH_FIFOS
                    | WITH_SOCKETS
            )
        );
        assert_eq!(from_name("fat-attrs"), Some(0xe000));
        assert_eq!(from_name("dir"), None);
        for (name, bits) in COMPOSITE_NAMES {
            assert!(bits & !all == 0, "{name}");
        }
        // What `casync make --with=X` stores (spec §3.3).
        let made = |with| normalize(with | EXCLUDE_NODUMP | EXCLUDE_FILE | SHA512_256);
        assert_eq!(made(from_name("unix").unwrap()), 0xb000000000001f09);
        assert_eq!(made(from_name("acl").unwrap()), 0xb000000020000006);
        assert_eq!(made(from_name("all").unwrap()), 0xb0000001ffeffe26);
    }

    #[test]
    fn widening() {
        assert_eq!(
            widen_mask(WITH_16BIT_UIDS),
            WITH_16BIT_UIDS | WITH_32BIT_UIDS
        );
        assert_eq!(
            widen_mask(WITH_2SEC_TIME),
            WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME
        );
        assert_eq!(
            widen_mask(WITH_ACL),
            WITH_ACL | WITH_PERMISSIONS | WITH_READ_ONLY
        );
        assert_eq!(
            widen_mask(WITH_SUBVOLUME_RO),
            WITH_SUBVOLUME_RO | WITH_SUBVOLUME
        );
        // Any time bit in the mask admits the archive's granularity; a mask of read-only
        // reduces full permissions to read-only.
        let archive = 0xb0000001ffeffe26;
        assert_eq!(replay_flags(archive, WITH_SEC_TIME), WITH_NSEC_TIME);
        assert_eq!(
            replay_flags(WITH_PERMISSIONS, WITH_READ_ONLY),
            WITH_READ_ONLY
        );
        assert_eq!(
            replay_flags(archive, from_name("all").unwrap()),
            archive & 0x1ffffffff
        );
    }
}
