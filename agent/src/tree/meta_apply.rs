//! Applying a node's archived metadata on extract, in casync's order (spec §8.3): owner,
//! mode, ACLs, xattrs, fcaps, SELinux label, mtime; chattr flags after the rename. What an
//! unprivileged user (or the file system) cannot restore is counted, not fatal.

use super::acl;
use super::ids::IdShift;
use super::sys::{self, Names, Node};
use otasync_core::catar::{FileType, Metadata};
use otasync_core::flags::*;
use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// Counts of metadata that could not be restored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// chown refused (not root), or an owner name unknown here.
    pub(crate) ownership: u64,
    /// Device nodes not created (not root).
    pub(crate) devices: u64,
    /// Xattrs refused (`trusted.*` as non-root, `user.*` on special files, no support).
    pub(crate) xattrs: u64,
    /// ACLs refused.
    pub(crate) acls: u64,
    /// File capabilities refused (not root).
    pub(crate) fcaps: u64,
    /// SELinux labels refused.
    pub(crate) selinux: u64,
    /// chattr flags refused.
    pub(crate) chattr: u64,
    /// Project quota ids (not restored).
    pub(crate) quota_projid: u64,
}

impl Skipped {
    /// True when everything was restored.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.ownership, "ownerships"),
            (self.devices, "device nodes"),
            (self.xattrs, "xattrs"),
            (self.acls, "ACLs"),
            (self.fcaps, "file capabilities"),
            (self.selinux, "SELinux labels"),
            (self.chattr, "chattr flag sets"),
            (self.quota_projid, "project quota ids"),
        ];
        let list: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        write!(f, "not restored: {}", list.join(", "))
    }
}

fn osn(n: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(n)
}

/// True for errors meaning "not allowed or not supported here".
fn refused(e: Errno) -> bool {
    matches!(
        e,
        Errno::PERM | Errno::ACCESS | Errno::NOTSUP | Errno::NOTTY | Errno::INVAL | Errno::NOSYS
    )
}

const CHATTR: u64 = 0x3ff0000;
const TIMES: u64 = WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME;

/// Applies metadata with the replay flags of one archive.
pub(crate) struct Applier {
    /// The target directory (for messages).
    pub(crate) root: PathBuf,
    /// The replay flags (0 until the archive's flags are known).
    pub(crate) flags: u64,
    /// `--uid-shift`: archive ids are shifted into this host's range.
    ids: Option<IdShift>,
    names: Names,
    umask: u32,
    pub(crate) skipped: Skipped,
}

fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

impl Applier {
    /// Applies metadata under `root`, shifting archive ids with `ids`.
    pub(crate) fn new(root: &Path, ids: Option<IdShift>) -> Self {
        Self {
            root: root.to_path_buf(),
            flags: 0,
            ids,
            names: Names::default(),
            umask: current_umask(),
            skipped: Skipped::default(),
        }
    }

    pub(crate) fn set_flags(&mut self, archive: u64, mask: u64) {
        self.flags = replay_flags(archive, mask);
    }

    fn id(&mut self, group: bool, name: Option<&[u8]>, id: u32) -> Option<u32> {
        let f = self.flags;
        if f & WITH_USER_NAMES != 0
            && let Some(n) = name
            && let Some(id) = self.names.id(group, n)
        {
            return Some(id);
        }
        // A name this host knows wins; else the number, shifted with --uid-shift.
        let host = |id| self.ids.map_or(id, |ids| ids.decode(id));
        if f & (WITH_16BIT_UIDS | WITH_32BIT_UIDS) != 0 {
            return Some(host(id));
        }
        if f & WITH_USER_NAMES != 0 && name.is_none() {
            return Some(host(0));
        }
        None
    }

    fn mode(&self, meta: &Metadata, ty: FileType) -> u32 {
        let dir = ty == FileType::Directory;
        let default = (if dir { 0o777 } else { 0o666 }) & !self.umask;
        let m = meta.entry.mode;
        if self.flags & (WITH_PERMISSIONS | WITH_ACL) != 0 {
            m & 0o7777
        } else if self.flags & WITH_READ_ONLY != 0 && m & 0o222 == 0 {
            default & !0o222
        } else {
            default
        }
    }

    /// Owner, mode, ACLs, xattrs, fcaps, SELinux label and mtime of a node. A `blank` node was
    /// just created in a directory that passes nothing on: it has no ACL to remove.
    pub(crate) fn apply(
        &mut self,
        node: Node<'_>,
        meta: &Metadata,
        ty: FileType,
        blank: bool,
    ) -> io::Result<()> {
        let e = &meta.entry;
        let symlink = ty == FileType::Symlink;
        // 1. Owner.
        let uid = self.id(false, meta.user.as_deref(), e.uid);
        let gid = self.id(true, meta.group.as_deref(), e.gid);
        let any_ids = self.flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS | WITH_USER_NAMES) != 0;
        if any_ids && (uid.is_none() || gid.is_none()) {
            self.skipped.ownership += 1;
        }
        if uid.is_some() || gid.is_some() {
            let (u, g) = (uid.map(Uid::from_raw), gid.map(Gid::from_raw));
            let r = match node {
                Node::Fd(fd) => rfs::fchown(fd, u, g),
                Node::At(d, n) => rfs::chownat(d, osn(n), u, g, AtFlags::SYMLINK_NOFOLLOW),
            };
            match r {
                Ok(()) => {}
                Err(e) if refused(e) => self.skipped.ownership += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if symlink {
            return self.mtime(node, meta);
        }
        // 2. Mode.
        let mode = Mode::from_raw_mode(self.mode(meta, ty));
        match node {
            Node::Fd(fd) => rfs::fchmod(fd, mode),
            Node::At(d, n) => rfs::chmodat(d, osn(n), mode, AtFlags::empty()),
        }?;
        // 3. ACLs.
        if self.flags & WITH_ACL != 0 {
            self.acls(node, meta, ty, blank)?;
        }
        // 4. Xattrs.
        if self.flags & WITH_XATTRS != 0 {
            for (name, value) in &meta.xattrs {
                self.set(node, name, value, |s| &mut s.xattrs)?;
            }
        }
        // 5. fcaps.
        if let Some(caps) = meta
            .fcaps
            .as_deref()
            .filter(|_| self.flags & WITH_FCAPS != 0)
        {
            self.set(node, b"security.capability", caps, |s| &mut s.fcaps)?;
        }
        // 6. SELinux.
        if let Some(label) = meta
            .selinux
            .as_deref()
            .filter(|_| self.flags & WITH_SELINUX != 0)
        {
            let mut v = label.to_vec();
            v.push(0);
            self.set(node, b"security.selinux", &v, |s| &mut s.selinux)?;
        }
        if meta.quota_projid != 0 && self.flags & WITH_QUOTA_PROJID != 0 {
            self.skipped.quota_projid += 1;
        }
        // 7. mtime.
        self.mtime(node, meta)
    }

    fn set(
        &mut self,
        node: Node<'_>,
        name: &[u8],
        value: &[u8],
        count: fn(&mut Skipped) -> &mut u64,
    ) -> io::Result<()> {
        match node.set_xattr(name, value) {
            Ok(()) => Ok(()),
            Err(e) if refused(Errno::from_io_error(&e).unwrap_or(Errno::IO)) => {
                *count(&mut self.skipped) += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn remove(&mut self, node: Node<'_>, name: &[u8]) -> io::Result<()> {
        match node.remove_xattr(name) {
            Err(e) if refused(Errno::from_io_error(&e).unwrap_or(Errno::IO)) => Ok(()),
            r => r,
        }
    }

    fn acls(
        &mut self,
        node: Node<'_>,
        meta: &Metadata,
        ty: FileType,
        blank: bool,
    ) -> io::Result<()> {
        let mut ids = |group: bool, e: &otasync_core::catar::AclEntry<Vec<u8>>| {
            self.names_id(group, e.name.as_deref(), e.id)
        };
        let access = acl::access_from_catar(&meta.acl, meta.entry.mode, &mut ids);
        let default = if ty == FileType::Directory {
            acl::default_from_catar(&meta.acl, &mut ids)
        } else {
            None
        };
        // A node without an ACL in the archive loses one it inherited from a default ACL of
        // an existing directory.
        match access {
            Some(entries) => {
                let value = acl::encode(&entries);
                self.set(node, acl::ACCESS_XATTR.as_bytes(), &value, |s| &mut s.acls)?;
            }
            None if blank => {}
            None => self.remove(node, acl::ACCESS_XATTR.as_bytes())?,
        }
        match default {
            Some(entries) => {
                let value = acl::encode(&entries);
                self.set(node, acl::DEFAULT_XATTR.as_bytes(), &value, |s| &mut s.acls)?;
            }
            None if ty == FileType::Directory && !blank => {
                self.remove(node, acl::DEFAULT_XATTR.as_bytes())?;
            }
            None => {}
        }
        Ok(())
    }

    fn names_id(&mut self, group: bool, name: Option<&[u8]>, id: u32) -> u32 {
        name.filter(|_| self.flags & WITH_USER_NAMES != 0)
            .and_then(|n| self.names.id(group, n))
            .unwrap_or(id)
    }

    fn mtime(&mut self, node: Node<'_>, meta: &Metadata) -> io::Result<()> {
        if self.flags & TIMES == 0 {
            return Ok(());
        }
        let t = meta.entry.mtime;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: (t / 1_000_000_000) as i64,
                tv_nsec: (t % 1_000_000_000) as _,
            },
        };
        match node {
            Node::Fd(fd) => rfs::futimens(fd, &times),
            Node::At(d, n) => rfs::utimensat(d, osn(n), &times, AtFlags::SYMLINK_NOFOLLOW),
        }
        .map_err(Into::into)
    }

    /// Removes storable xattrs of an existing node that the archive does not have.
    pub(crate) fn existing_xattrs(&mut self, node: Node<'_>, meta: &Metadata) -> io::Result<()> {
        if self.flags & WITH_XATTRS == 0 {
            return Ok(());
        }
        for name in node.list_xattrs()? {
            let storable = name.starts_with(b"user.") || name.starts_with(b"trusted.");
            if storable && !meta.xattrs.iter().any(|(n, _)| *n == name) {
                node.remove_xattr(&name)?;
            }
        }
        Ok(())
    }

    fn chattr(&mut self, fd: BorrowedFd<'_>, meta: &Metadata, managed: u32) -> io::Result<()> {
        if managed == 0 {
            return Ok(());
        }
        let want = sys::feature_to_chattr(meta.entry.flags & self.flags);
        match sys::set_chattr(fd, want, managed) {
            Ok(()) => Ok(()),
            Err(e) if refused(Errno::from_io_error(&e).unwrap_or(Errno::IO)) => {
                if want & managed != 0 {
                    self.skipped.chattr += 1;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// chattr flags that must be set on the still-empty node.
    pub(crate) fn early_chattr(&mut self, fd: BorrowedFd<'_>, meta: &Metadata) -> io::Result<()> {
        let managed = sys::feature_to_chattr(self.flags & CHATTR) & sys::EARLY_CHATTR;
        if sys::feature_to_chattr(meta.entry.flags) & managed == 0 {
            return Ok(());
        }
        self.chattr(fd, meta, managed)
    }

    /// The other chattr flags, after the rename (a `blank` node has none to clear).
    pub(crate) fn late_chattr(
        &mut self,
        fd: BorrowedFd<'_>,
        meta: &Metadata,
        blank: bool,
    ) -> io::Result<()> {
        let managed = sys::feature_to_chattr(self.flags & CHATTR) & !sys::EARLY_CHATTR;
        if blank && self.wants_no_chattr(meta) {
            return Ok(());
        }
        self.chattr(fd, meta, managed)
    }

    /// True when the archive asks for no chattr flag on this node (none is replayed).
    pub(crate) fn wants_no_chattr(&self, meta: &Metadata) -> bool {
        sys::feature_to_chattr(meta.entry.flags & self.flags & CHATTR) == 0
    }
}
