//! Creating the nodes of an extraction: directories, files (under a temporary name, renamed
//! into place), symlinks and special files, and `--delete`.

use super::{Dir, Extractor, Fresh, Leaf, os, parent_of, tmp_name};
use crate::tree::events::Flow;
use crate::tree::sys::Node;
use crate::tree::{Result, TreeError};
use otasync_core::catar::{FileType, Metadata};
use rustix::fs::{self as rfs, AtFlags, Dev, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

const CREATE: OFlags = OFlags::CREATE
    .union(OFlags::EXCL)
    .union(OFlags::WRONLY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);
const OPEN_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Extractor<'_> {
    /// The parent directory fd of the current in-scope node.
    fn parent(&self) -> Result<BorrowedFd<'_>> {
        self.parent_fd()
            .ok_or_else(|| TreeError::archive(&self.fs_path(), "parent directory not extracted"))
    }

    /// Refuses to replace an existing node of another type (casync: EEXIST).
    fn check_existing(&self, ty: FileType) -> Result<bool> {
        let parent = self.parent()?;
        if self.parent_fresh().created {
            return Ok(false);
        }
        match rfs::statat(parent, os(&self.name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing = FileType::from_mode(st.st_mode.into());
                if existing != Some(ty) {
                    return Err(self.err(Errno::EXIST));
                }
                Ok(true)
            }
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// At a FILENAME or GOODBYE: the pending node is a directory (enter it) or a FIFO/socket.
    pub(super) fn close_pending(&mut self) -> Result<Flow> {
        let Some(meta) = self.cur.take() else {
            return Ok(Flow::Continue);
        };
        if FileType::from_mode(meta.entry.mode.into()) == Some(FileType::Directory) {
            let dir = if self.in_scope() {
                Some(self.open_dir(meta)?)
            } else {
                None
            };
            self.dirs.push(dir);
            self.lens.push(self.path.len());
            return Ok(Flow::Continue);
        }
        if self.in_scope() {
            self.node(meta, 0)?;
        }
        self.end_leaf()
    }

    fn open_dir(&mut self, meta: Metadata) -> Result<Dir> {
        let (fd, created, blank, passes_nothing_on) = if self.sub.is_empty() && self.path.is_empty()
        {
            let fd = rfs::openat(&self.target_fd, ".", OPEN_DIR, Mode::empty())
                .map_err(|e| self.err(e))?;
            let fresh = self.target_fresh;
            let passes = fresh.passes_nothing_on && self.apply.wants_no_chattr(&meta);
            (fd, fresh.created, false, passes)
        } else {
            let parent = self.parent()?;
            let in_parent = self.parent_fresh();
            let existed = self.check_existing(FileType::Directory)?;
            let created = !existed
                && match rfs::mkdirat(parent, os(&self.name), Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(self.err(e)),
                };
            let fd = rfs::openat(parent, os(&self.name), OPEN_DIR, Mode::empty())
                .map_err(|e| self.err(e))?;
            let blank = created && in_parent.passes_nothing_on;
            let passes = match blank {
                true => self.apply.wants_no_chattr(&meta),
                // The early chattr flags set below are inherited too.
                false => {
                    Fresh::of(fd.as_fd(), created).passes_nothing_on
                        && self.apply.wants_no_chattr(&meta)
                }
            };
            (fd, created, blank, passes)
        };
        self.apply
            .early_chattr(fd.as_fd(), &meta)
            .map_err(|e| self.err(e))?;
        self.report.entries += 1;
        Ok(Dir {
            fd,
            meta: Some(meta),
            path: self.fs_path(),
            names: Vec::new(),
            created,
            blank,
            passes_nothing_on,
        })
    }

    /// A directory is complete: delete what the archive lacks, then apply its metadata.
    pub(super) fn finish_dir(&mut self, mut dir: Dir) -> Result<()> {
        if self.opts.delete && !dir.created {
            dir.names.sort_unstable();
            self.delete_extra(&dir)?;
        }
        if let Some(meta) = dir.meta.take() {
            let node = Node::Fd(dir.fd.as_fd());
            let blank = dir.blank;
            let existing = match dir.created {
                true => Ok(()),
                false => self.apply.existing_xattrs(node, &meta),
            };
            existing
                .and_then(|()| self.apply.apply(node, &meta, FileType::Directory, blank))
                .and_then(|()| self.apply.late_chattr(dir.fd.as_fd(), &meta, blank))
                .map_err(|e| TreeError::io(&dir.path, e))?;
        }
        Ok(())
    }

    pub(super) fn start_file(&mut self, meta: Metadata) -> Result<()> {
        self.check_existing(FileType::Regular)?;
        let tmp = tmp_name(&self.name);
        let fd = rfs::openat(self.parent()?, os(&tmp), CREATE, Mode::from_raw_mode(0o600))
            .map_err(|e| self.err(e))?;
        let leaf = Leaf {
            tmp,
            fd: Some(fd),
            meta,
        };
        self.leaf = Some(leaf);
        let leaf = self.leaf.as_ref().unwrap_or_else(|| unreachable!());
        if let Some(fd) = &leaf.fd {
            self.apply
                .early_chattr(fd.as_fd(), &leaf.meta)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub(super) fn finish_file(&mut self) -> Result<()> {
        let Some(leaf) = self.leaf.take() else {
            return Ok(());
        };
        let Some(fd) = leaf.fd else { return Ok(()) };
        let blank = self.parent_fresh().passes_nothing_on;
        let r = self
            .apply
            .apply(Node::Fd(fd.as_fd()), &leaf.meta, FileType::Regular, blank);
        self.place(&leaf.tmp, r)?;
        self.apply
            .late_chattr(fd.as_fd(), &leaf.meta, blank)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Renames the temporary `tmp` into place (or removes it when `r` failed).
    fn place(&mut self, tmp: &[u8], r: std::io::Result<()>) -> Result<()> {
        let parent = self.parent()?;
        let r = r.and_then(|()| {
            rfs::renameat(parent, os(tmp), parent, os(&self.name)).map_err(Into::into)
        });
        if let Err(e) = r {
            let _ = rfs::unlinkat(parent, os(tmp), AtFlags::empty());
            return Err(self.err(e));
        }
        self.report.entries += 1;
        Ok(())
    }

    pub(super) fn symlink(&mut self, meta: Metadata, target: &[u8]) -> Result<()> {
        self.check_existing(FileType::Symlink)?;
        let tmp = tmp_name(&self.name);
        let parent = self.parent()?;
        rfs::symlinkat(os(target), parent, os(&tmp)).map_err(|e| self.err(e))?;
        let blank = self.parent_fresh().passes_nothing_on;
        let parent = parent_of(&self.dirs, &self.target_fd, self.path == self.sub)
            .unwrap_or_else(|| unreachable!());
        let r = self
            .apply
            .apply(Node::At(parent, &tmp), &meta, FileType::Symlink, blank);
        self.place(&tmp, r)
    }

    /// Creates a device, FIFO or socket node.
    pub(super) fn node(&mut self, meta: Metadata, dev: Dev) -> Result<()> {
        let Some(ty) = FileType::from_mode(meta.entry.mode.into()) else {
            return Ok(());
        };
        self.check_existing(ty)?;
        let rty = match ty {
            FileType::BlockDevice => rfs::FileType::BlockDevice,
            FileType::CharDevice => rfs::FileType::CharacterDevice,
            FileType::Fifo => rfs::FileType::Fifo,
            FileType::Socket => rfs::FileType::Socket,
            _ => return Ok(()),
        };
        let tmp = tmp_name(&self.name);
        let parent = self.parent()?;
        match rfs::mknodat(parent, os(&tmp), rty, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(Errno::PERM) if ty.is_device() => {
                self.apply.skipped.devices += 1;
                return Ok(());
            }
            Err(e) => return Err(self.err(e)),
        }
        let blank = self.parent_fresh().passes_nothing_on;
        let parent = parent_of(&self.dirs, &self.target_fd, self.path == self.sub)
            .unwrap_or_else(|| unreachable!());
        let r = self.apply.apply(Node::At(parent, &tmp), &meta, ty, blank);
        self.place(&tmp, r)
    }

    /// A non-directory node has ended: back to its parent's path.
    pub(super) fn end_leaf(&mut self) -> Result<Flow> {
        let done = self.path == self.sub;
        let parent = self.lens.last().copied().unwrap_or(0);
        self.path.truncate(parent);
        Ok(if done { Flow::Stop } else { Flow::Continue })
    }

    /// `--delete`: removes the entries of `dir` the archive does not have.
    fn delete_extra(&self, dir: &Dir) -> Result<()> {
        let mut extra = Vec::new();
        for entry in rfs::Dir::read_from(&dir.fd).map_err(|e| TreeError::io(&dir.path, e.into()))? {
            let entry = entry.map_err(|e| TreeError::io(&dir.path, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"."
                && name != b".."
                && dir.names.binary_search_by(|n| n[..].cmp(name)).is_err()
            {
                extra.push(name.to_vec());
            }
        }
        for name in extra {
            remove_tree(&dir.fd, &name, 0)
                .map_err(|e| TreeError::io(&dir.path.join(os(&name)), e))?;
        }
        Ok(())
    }
}

/// Removes the target directory a failed extraction created: emptied through `dir`, the fd
/// held on it all along (a path could lead elsewhere by now), then removed by `path` only if
/// that still names the same directory.
pub(super) fn remove_created(path: &std::path::Path, dir: &OwnedFd) -> std::io::Result<()> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    for name in names {
        remove_tree(dir, &name, 0)?;
    }
    let held = rfs::fstat(dir)?;
    let named = rfs::statat(rfs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
    if (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino) {
        return Err(std::io::Error::other("it was moved; left in place"));
    }
    rfs::unlinkat(rfs::CWD, path, AtFlags::REMOVEDIR).map_err(Into::into)
}

/// Removes `name` in `dir`, recursively, never following symlinks.
fn remove_tree(dir: &OwnedFd, name: &[u8], depth: usize) -> std::io::Result<()> {
    match rfs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if depth > 256 {
        return Err(Errno::LOOP.into());
    }
    let sub = rfs::openat(dir, os(name), OPEN_DIR, Mode::empty())?;
    // Its entries can be removed even if the archive made it read-only (owner only: root
    // needs no permission bits).
    let _ = rfs::fchmod(&sub, Mode::from_raw_mode(0o700));
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_tree(&sub, &n, depth + 1)?;
    }
    rfs::unlinkat(dir, os(name), AtFlags::REMOVEDIR).map_err(Into::into)
}
