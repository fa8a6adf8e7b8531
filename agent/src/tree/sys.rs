//! Small system helpers: xattrs of a node (through its fd, or through `/proc/self/fd` for nodes
//! that cannot be opened), chattr flags, user and group names, file system magics.

use rustix::fs::{self as rfs, IFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A node whose xattrs are read or written: an open fd, or a name in an open directory (for
/// symlinks, devices, FIFOs and sockets), reached through `/proc/self/fd` without following a
/// symlink in the last component.
#[derive(Clone, Copy)]
pub(crate) enum Node<'a> {
    /// The node's own fd (a regular file or directory).
    Fd(BorrowedFd<'a>),
    /// `name` in the directory `dir`.
    At(BorrowedFd<'a>, &'a [u8]),
}

impl Node<'_> {
    fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        p.push(OsStr::from_bytes(name));
        p
    }

    /// Names of all xattrs (NUL-separated list split up).
    pub(crate) fn list_xattrs(self) -> io::Result<Vec<Vec<u8>>> {
        let mut buf = Vec::new();
        for _ in 0..8 {
            let size = match self {
                Node::Fd(fd) => rfs::flistxattr_query(fd),
                Node::At(d, n) => rfs::llistxattr_query(Self::proc_path(d, n)),
            };
            let size = match size {
                Ok(s) => s,
                Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            buf.resize(size, 0);
            let got = match self {
                Node::Fd(fd) => rfs::flistxattr(fd, &mut buf[..]),
                Node::At(d, n) => rfs::llistxattr(Self::proc_path(d, n), &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf
                        .split(|&b| b == 0)
                        .filter(|s| !s.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect());
                }
                Err(Errno::RANGE) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::RANGE.into())
    }

    /// One xattr's value; `None` when it does not exist (or xattrs are unsupported).
    pub(crate) fn get_xattr(self, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let name = OsStr::from_bytes(name);
        let mut buf = Vec::new();
        for _ in 0..8 {
            let size = match self {
                Node::Fd(fd) => rfs::fgetxattr_query(fd, name),
                Node::At(d, n) => rfs::lgetxattr_query(Self::proc_path(d, n), name),
            };
            let size = match size {
                Ok(s) => s,
                Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            buf.resize(size, 0);
            let got = match self {
                Node::Fd(fd) => rfs::fgetxattr(fd, name, &mut buf[..]),
                Node::At(d, n) => rfs::lgetxattr(Self::proc_path(d, n), name, &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(Errno::RANGE) => continue,
                Err(Errno::NODATA) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::RANGE.into())
    }

    /// Sets an xattr.
    pub(crate) fn set_xattr(self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let name = OsStr::from_bytes(name);
        let flags = rfs::XattrFlags::empty();
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, flags),
            Node::At(d, n) => rfs::lsetxattr(Self::proc_path(d, n), name, value, flags),
        }
        .map_err(Into::into)
    }

    /// Removes an xattr (absent is fine).
    pub(crate) fn remove_xattr(self, name: &[u8]) -> io::Result<()> {
        let name = OsStr::from_bytes(name);
        let r = match self {
            Node::Fd(fd) => rfs::fremovexattr(fd, name),
            Node::At(d, n) => rfs::lremovexattr(Self::proc_path(d, n), name),
        };
        match r {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// chattr bits (`FS_*_FL`) and the feature-flag bits of the same meaning (spec §3.1).
const CHATTR_MAP: [(u32, u64); 10] = [
    (0x20, otasync_core::flags::WITH_FLAG_APPEND),
    (0x80, otasync_core::flags::WITH_FLAG_NOATIME),
    (0x4, otasync_core::flags::WITH_FLAG_COMPR),
    (0x80_0000, otasync_core::flags::WITH_FLAG_NOCOW),
    (0x40, otasync_core::flags::WITH_FLAG_NODUMP),
    (0x1_0000, otasync_core::flags::WITH_FLAG_DIRSYNC),
    (0x10, otasync_core::flags::WITH_FLAG_IMMUTABLE),
    (0x8, otasync_core::flags::WITH_FLAG_SYNC),
    (0x400, otasync_core::flags::WITH_FLAG_NOCOMP),
    (0x2000_0000, otasync_core::flags::WITH_FLAG_PROJINHERIT),
];

/// `FS_NODUMP_FL`.
pub(crate) const FS_NODUMP_FL: u32 = 0x40;

/// The chattr bits set on extract right after creating the node, before writing data
/// (NOATIME, COMPR, NOCOW, NOCOMP, PROJINHERIT; spec §8.3).
pub(crate) const EARLY_CHATTR: u32 = 0x80 | 0x4 | 0x80_0000 | 0x400 | 0x2000_0000;

/// Translates chattr bits into feature-flag bits.
pub(crate) fn chattr_to_feature(fl: u32) -> u64 {
    CHATTR_MAP
        .iter()
        .filter(|(c, _)| fl & c != 0)
        .fold(0, |acc, (_, f)| acc | f)
}

/// Translates feature-flag bits into chattr bits.
pub(crate) fn feature_to_chattr(f: u64) -> u32 {
    CHATTR_MAP
        .iter()
        .filter(|(_, b)| f & b != 0)
        .fold(0, |acc, (c, _)| acc | c)
}

/// FS_IOC_GETFLAGS; 0 where the file system or node type has none.
pub(crate) fn get_chattr(fd: impl AsFd) -> io::Result<u32> {
    match rfs::ioctl_getflags(fd) {
        Ok(f) => Ok(f.bits()),
        Err(Errno::NOTTY | Errno::BADF | Errno::NOTSUP | Errno::INVAL) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// FS_IOC_SETFLAGS, keeping the bits we do not manage.
pub(crate) fn set_chattr(fd: impl AsFd, bits: u32, managed: u32) -> io::Result<()> {
    let fd = fd.as_fd();
    let old = get_chattr(fd)?;
    let new = (old & !managed) | (bits & managed);
    if new == old {
        return Ok(());
    }
    rfs::ioctl_setflags(fd, IFlags::from_bits_retain(new)).map_err(Into::into)
}

/// `statfs` magics of virtual kernel file systems whose contents casync does not archive
/// (spec §4.6).
const VIRTUAL_FS: [u64; 18] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x1cd1,      // devpts
    0x6462_6720, // debugfs
    0x7363_6673, // securityfs
    0x6265_6570, // configfs
    0xde5e_81e4, // efivarfs
    0x4249_4e4d, // binfmt_misc
    0x9584_58f6, // hugetlbfs
    0x1980_0202, // mqueue
    0x6e66_7364, // nfsd
    0x6165_676c, // pstore
    0x6759_6969, // rpc_pipefs
    0xf97c_ff8c, // selinuxfs
    0x4341_5d53, // smackfs
    0x6573_5543, // fusectl
];

/// True for a virtual kernel file system.
pub(crate) fn is_virtual_fs(magic: u64) -> bool {
    VIRTUAL_FS.contains(&magic)
}

/// The `statfs` magic of the file system holding `fd`.
pub(crate) fn fs_magic(fd: impl AsFd) -> io::Result<u64> {
    Ok(rfs::fstatfs(fd)?.f_type as u64)
}

/// Cached uid/gid ↔ name lookups in the passwd and group databases.
#[derive(Default)]
pub(crate) struct Names {
    users: HashMap<u32, Option<Vec<u8>>>,
    groups: HashMap<u32, Option<Vec<u8>>>,
    uids: HashMap<Vec<u8>, Option<u32>>,
    gids: HashMap<Vec<u8>, Option<u32>>,
}

impl Names {
    /// The name of a user (`group == false`) or group id, if the host knows it.
    pub(crate) fn name(&mut self, group: bool, id: u32) -> Option<Vec<u8>> {
        use nix::unistd::{Gid, Group, Uid, User};
        let map = if group {
            &mut self.groups
        } else {
            &mut self.users
        };
        map.entry(id)
            .or_insert_with(|| {
                if group {
                    Group::from_gid(Gid::from_raw(id))
                        .ok()
                        .flatten()
                        .map(|g| g.name.into_bytes())
                } else {
                    User::from_uid(Uid::from_raw(id))
                        .ok()
                        .flatten()
                        .map(|u| u.name.into_bytes())
                }
            })
            .clone()
    }

    /// The id of a user or group name, if the host knows it.
    pub(crate) fn id(&mut self, group: bool, name: &[u8]) -> Option<u32> {
        use nix::unistd::{Group, User};
        let map = if group {
            &mut self.gids
        } else {
            &mut self.uids
        };
        *map.entry(name.to_vec()).or_insert_with(|| {
            let name = std::str::from_utf8(name).ok()?;
            if group {
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
            } else {
                User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chattr_mapping() {
        assert_eq!(chattr_to_feature(0x80), 0x20000);
        assert_eq!(chattr_to_feature(0x40 | 0x10), 0x100000 | 0x400000);
        assert_eq!(feature_to_chattr(0x3ff0000), 0x2081_04fc);
        for (c, f) in CHATTR_MAP {
            assert_eq!(feature_to_chattr(chattr_to_feature(c)), c);
            assert_eq!(chattr_to_feature(feature_to_chattr(f)), f);
        }
    }
}
