//! The metadata of one node: what the encoder takes and what the decoder reports.

use alloc::vec::Vec;

/// File-type bits of a mode (`S_IFMT`).
pub const S_IFMT: u32 = 0o170000;
/// Socket (`S_IFSOCK`).
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link (`S_IFLNK`).
pub const S_IFLNK: u32 = 0o120000;
/// Regular file (`S_IFREG`).
pub const S_IFREG: u32 = 0o100000;
/// Block device (`S_IFBLK`).
pub const S_IFBLK: u32 = 0o060000;
/// Directory (`S_IFDIR`).
pub const S_IFDIR: u32 = 0o040000;
/// Character device (`S_IFCHR`).
pub const S_IFCHR: u32 = 0o020000;
/// FIFO (`S_IFIFO`).
pub const S_IFIFO: u32 = 0o010000;

/// The kinds of node a catar archive holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A directory: FILENAME + node pairs, then GOODBYE.
    Directory,
    /// A regular file: a PAYLOAD record.
    Regular,
    /// A symbolic link: a SYMLINK record.
    Symlink,
    /// A block device: a DEVICE record.
    BlockDevice,
    /// A character device: a DEVICE record.
    CharDevice,
    /// A FIFO: no record after the metadata.
    Fifo,
    /// An AF_UNIX socket node: no record after the metadata.
    Socket,
}

impl FileType {
    /// The type named by the `S_IFMT` bits of `mode`, if any.
    pub fn from_mode(mode: u64) -> Option<Self> {
        Some(match (mode & u64::from(S_IFMT)) as u32 {
            S_IFDIR => Self::Directory,
            S_IFREG => Self::Regular,
            S_IFLNK => Self::Symlink,
            S_IFBLK => Self::BlockDevice,
            S_IFCHR => Self::CharDevice,
            S_IFIFO => Self::Fifo,
            S_IFSOCK => Self::Socket,
            _ => return None,
        })
    }

    /// True for block and character devices.
    pub fn is_device(self) -> bool {
        matches!(self, Self::BlockDevice | Self::CharDevice)
    }

    /// True for the types that may carry chattr/FAT flags and a quota project id.
    pub fn has_attributes(self) -> bool {
        matches!(self, Self::Directory | Self::Regular)
    }
}

/// The fields of an ENTRY record other than the archive-wide feature flags.
///
/// Given to the encoder these are the raw `stat` values, which it normalizes for the archive's
/// feature flags (spec §4.3); reported by the decoder they are exactly what the archive holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// File-type and permission bits (`st_mode`).
    pub mode: u32,
    /// chattr and FAT attributes, as the feature-flag bits of the same meaning
    /// (e.g. [`crate::flags::WITH_FLAG_NOATIME`] for chattr `+A`).
    pub flags: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time in nanoseconds since the epoch.
    pub mtime: u64,
}

/// A named ACL entry (ACL_USER, ACL_GROUP, ACL_DEFAULT_USER or ACL_DEFAULT_GROUP records).
///
/// The derived order is casync's: id, then no name before a name, then the name byte-wise,
/// then the permissions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry<B> {
    /// The uid or gid.
    pub id: u32,
    /// The user or group name, without NUL.
    pub name: Option<B>,
    /// Permission bits: read 4, write 2, execute 1.
    pub permissions: u64,
}

impl<B> AclEntry<B> {
    /// Converts the name with `f`.
    pub fn map<C>(self, f: impl FnOnce(B) -> C) -> AclEntry<C> {
        AclEntry {
            id: self.id,
            name: self.name.map(f),
            permissions: self.permissions,
        }
    }
}

/// The ACL_DEFAULT record: the base entries of a directory's default ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclDefault {
    /// Owner permissions.
    pub user_obj: u64,
    /// Owning-group permissions.
    pub group_obj: u64,
    /// Permissions of everybody else.
    pub other: u64,
    /// The mask, if the default ACL has one (`u64::MAX` on the wire when not).
    pub mask: Option<u64>,
}

/// A POSIX ACL beyond the mode bits, as casync stores it (spec §4.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    /// Named users of the access ACL, sorted.
    pub users: Vec<AclEntry<Vec<u8>>>,
    /// Named groups of the access ACL, sorted.
    pub groups: Vec<AclEntry<Vec<u8>>>,
    /// Owning-group permissions when the access ACL has a mask (the mode's group bits then
    /// hold the mask).
    pub group_obj: Option<u64>,
    /// Base entries of the default ACL (directories only).
    pub default: Option<AclDefault>,
    /// Named users of the default ACL, sorted.
    pub default_users: Vec<AclEntry<Vec<u8>>>,
    /// Named groups of the default ACL, sorted.
    pub default_groups: Vec<AclEntry<Vec<u8>>>,
}

/// Everything the encoder writes about one node besides its name and contents.
///
/// Records whose feature bit is off in the archive flags are left out, and so is what casync
/// never reads for the node's type: xattrs and ACLs of symlinks, default ACLs of non-directories,
/// fcaps of non-regular files, flags and project ids of anything but regular files and
/// directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The stat data.
    pub entry: Entry,
    /// Owner name as the host resolves the uid, if it does.
    pub user: Option<Vec<u8>>,
    /// Group name as the host resolves the gid, if it does.
    pub group: Option<Vec<u8>>,
    /// Extended attributes (name, value), sorted by name. Only `user.*` and `trusted.*` are stored.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The POSIX ACL.
    pub acl: Acl,
    /// SELinux label, without NUL.
    pub selinux: Option<Vec<u8>>,
    /// Raw `security.capability` value (regular files).
    pub fcaps: Option<Vec<u8>>,
    /// Project quota id; 0 means none.
    pub quota_projid: u32,
}
