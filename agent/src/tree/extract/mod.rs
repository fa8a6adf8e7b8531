//! Restoring a catar stream into a directory, as `casync extract` does (spec §8.3), safely:
//! every node is reached with `*at()` calls relative to directory fds we hold, never
//! following a symlink (from the archive or already on disk); names come checked from the
//! decoder (no `/`, `.`, `..`), so nothing is written outside the target directory.

use crate::tree::events::{Flow, for_each_event};
mod nodes;

use crate::tree::meta_apply::{Applier, Skipped};

use crate::tree::scan::{normalize_subpath, within};
use crate::tree::{Result, TreeError};
use otasync_core::catar::{Event, Metadata};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How to extract.
#[derive(Clone, Debug)]
pub(crate) struct ExtractOptions {
    /// Extract only this subtree (as a child of the target directory); empty for all.
    pub(crate) subpath: Vec<u8>,
    /// The `--with`/`--without` mask replayed with the archive's flags (all WITH bits by
    /// default).
    pub(crate) mask: u64,
    /// Remove entries of existing directories that the archive does not have (`--delete`).
    pub(crate) delete: bool,
    /// `--uid-shift`/`--uid-range`: where archive ids go on this host.
    pub(crate) ids: Option<crate::tree::IdShift>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            subpath: Vec::new(),
            mask: 0x1_ffff_ffff,
            delete: false,
            ids: None,
        }
    }
}

/// What [`extract_tree`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExtractReport {
    /// Nodes created or updated.
    pub(crate) entries: u64,
    /// File content bytes written.
    pub(crate) bytes: u64,
    /// What could not be restored without privileges (or without file system support).
    pub(crate) skipped: Skipped,
}

/// A directory being extracted: its fd, and the metadata applied when it is complete.
struct Dir {
    fd: OwnedFd,
    meta: Option<Metadata>,
    path: PathBuf,
    /// Names the archive has in it (only kept for `delete`).
    names: Vec<Vec<u8>>,
    /// Made by this run: it holds nothing the archive did not put there.
    created: bool,
    /// Made by this run in a directory that passes nothing on (see [`Fresh`]).
    blank: bool,
    /// New nodes in it start without an ACL or chattr flag.
    passes_nothing_on: bool,
}

/// What is known of a directory's contents before extraction writes into it; the syscalls
/// that look for (or clear) what a new node could have are skipped where nothing can be.
#[derive(Clone, Copy)]
struct Fresh {
    /// Made by this run: nothing in it to check for or replace.
    created: bool,
    /// Has no default ACL and no inheritable chattr flag.
    passes_nothing_on: bool,
}

impl Fresh {
    /// Looks at an existing directory (or one created outside the archive's walk).
    fn of(dir: BorrowedFd<'_>, created: bool) -> Self {
        let default_acl = crate::tree::sys::Node::Fd(dir)
            .get_xattr(crate::tree::acl::DEFAULT_XATTR.as_bytes())
            .map_or(true, |acl| acl.is_some());
        let flags = crate::tree::sys::get_chattr(dir)
            .map_or(true, |f| crate::tree::sys::chattr_to_feature(f) != 0);
        Self {
            created,
            passes_nothing_on: !default_acl && !flags,
        }
    }
}

/// A non-directory being extracted.
struct Leaf {
    tmp: Vec<u8>,
    fd: Option<OwnedFd>,
    meta: Metadata,
}

struct Extractor<'o> {
    opts: &'o ExtractOptions,
    sub: Vec<u8>,
    apply: Applier,
    /// The path of the current node inside the archive.
    path: Vec<u8>,
    dirs: Vec<Option<Dir>>,
    /// Archive path lengths of the open directories.
    lens: Vec<usize>,
    /// Node whose metadata is being read.
    cur: Option<Metadata>,
    name: Vec<u8>,
    leaf: Option<Leaf>,
    /// Payload bytes still to come.
    left: u64,
    target_fd: OwnedFd,
    /// What is known of the target directory.
    target_fresh: Fresh,
    report: ExtractReport,
}

/// Extracts the catar stream `input` (called `name` in messages) into `target` (created if
/// missing), restoring what the archive holds and the replay flags allow. When it fails, a
/// target this call created is removed again: no partial tree is left where there was none.
/// (An existing target keeps what was already replaced, each file whole.)
pub(crate) fn extract_tree<R: Read>(
    input: R,
    name: &Path,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let created = match rfs::mkdir(target, Mode::from_raw_mode(0o755)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(TreeError::io(target, e.into())),
    };
    let target_fd = rfs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TreeError::io(target, e.into()))?;
    let held = target_fd.try_clone();
    let result = extract_into(input, name, target, target_fd, created, opts);
    if result.is_err() && created {
        let removed = held.and_then(|dir| nodes::remove_created(target, &dir));
        if let Err(e) = removed {
            log::warn!("removing the partial tree {}: {e}", target.display());
        }
    }
    result
}

/// [`extract_tree`] into `target`, open as `target_fd` (and `created` by this run).
fn extract_into<R: Read>(
    input: R,
    name: &Path,
    target: &Path,
    target_fd: OwnedFd,
    created: bool,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let target_fresh = Fresh::of(target_fd.as_fd(), created);
    let mut x = Extractor {
        opts,
        sub: normalize_subpath(&opts.subpath),
        apply: Applier::new(target, opts.ids),
        path: Vec::new(),
        dirs: Vec::new(),
        lens: Vec::new(),
        cur: None,
        name: Vec::new(),
        leaf: None,
        left: 0,
        target_fd,
        target_fresh,
        report: ExtractReport::default(),
    };
    let mut found = false;
    for_each_event(input, name, |event, _, pos| {
        let Some(event) = event else {
            return Ok(Flow::Continue);
        };
        if x.apply.flags == 0 && pos.flags != 0 {
            x.apply.set_flags(pos.flags, opts.mask);
        }
        found |= x.path == x.sub && matches!(event, Event::Entry(_));
        x.event(event, target)
    })?;
    if !found {
        let shown = String::from_utf8_lossy(&x.sub).into_owned();
        return Err(TreeError::NotFound(shown.into()));
    }
    x.report.skipped = x.apply.skipped.clone();
    Ok(x.report)
}

fn tmp_name(name: &[u8]) -> Vec<u8> {
    let r = crate::fsutil::random_u64();
    let mut t = b".#".to_vec();
    // casync uses `.#<name><random>`; long names would not fit NAME_MAX.
    if name.len() + 2 + 16 <= 255 {
        t.extend_from_slice(name);
    }
    t.extend_from_slice(format!("{r:016x}").as_bytes());
    t
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl Extractor<'_> {
    fn in_scope(&self) -> bool {
        within(&self.path, &self.sub)
    }

    fn err(&self, e: impl Into<std::io::Error>) -> TreeError {
        TreeError::io(&self.fs_path(), e.into())
    }

    /// The file system path of the current node (for messages).
    fn fs_path(&self) -> PathBuf {
        let mut p = self.apply.root.clone();
        let rel = if self.sub.is_empty() {
            &self.path[..]
        } else {
            let last = self
                .sub
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(0, |i| i + 1);
            self.path.get(last..).unwrap_or_default()
        };
        if !rel.is_empty() {
            p.push(os(rel));
        }
        p
    }

    /// The directory fd new children of the current node go into, if in scope.
    fn parent_fd(&self) -> Option<BorrowedFd<'_>> {
        parent_of(&self.dirs, &self.target_fd, self.path == self.sub)
    }

    /// What is known of the directory the current node goes into.
    fn parent_fresh(&self) -> Fresh {
        match self.dirs.last() {
            _ if self.path == self.sub => self.target_fresh,
            Some(Some(d)) => Fresh {
                created: d.created,
                passes_nothing_on: d.passes_nothing_on,
            },
            _ => Fresh {
                created: false,
                passes_nothing_on: false,
            },
        }
    }

    fn event(&mut self, event: Event<&[u8]>, _target: &Path) -> Result<Flow> {
        let meta = self.cur.as_mut();
        match event {
            Event::Entry(e) => {
                self.cur = Some(Metadata {
                    entry: e,
                    ..Metadata::default()
                });
            }
            Event::User(u) => meta.into_iter().for_each(|m| m.user = Some(u.to_vec())),
            Event::Group(g) => meta.into_iter().for_each(|m| m.group = Some(g.to_vec())),
            Event::Xattr { name, value } => meta
                .into_iter()
                .for_each(|m| m.xattrs.push((name.to_vec(), value.to_vec()))),
            Event::AclUser(a) => {
                if let Some(m) = meta {
                    m.acl.users.push(a.map(<[u8]>::to_vec));
                }
            }
            Event::AclGroup(a) => {
                if let Some(m) = meta {
                    m.acl.groups.push(a.map(<[u8]>::to_vec));
                }
            }
            Event::AclGroupObj(p) => meta.into_iter().for_each(|m| m.acl.group_obj = Some(p)),
            Event::AclDefault(d) => meta.into_iter().for_each(|m| m.acl.default = Some(d)),
            Event::AclDefaultUser(a) => {
                if let Some(m) = meta {
                    m.acl.default_users.push(a.map(<[u8]>::to_vec));
                }
            }
            Event::AclDefaultGroup(a) => {
                if let Some(m) = meta {
                    m.acl.default_groups.push(a.map(<[u8]>::to_vec));
                }
            }
            Event::Selinux(s) => meta.into_iter().for_each(|m| m.selinux = Some(s.to_vec())),
            Event::Fcaps(f) => meta.into_iter().for_each(|m| m.fcaps = Some(f.to_vec())),
            Event::QuotaProjid(p) => meta.into_iter().for_each(|m| m.quota_projid = p),
            Event::Symlink(t) => {
                if let Some(m) = self.cur.take()
                    && self.in_scope()
                {
                    self.symlink(m, t)?;
                }
                return self.end_leaf();
            }
            Event::Device { major, minor } => {
                if let Some(m) = self.cur.take()
                    && self.in_scope()
                {
                    self.node(m, rfs::makedev(major as u32, minor as u32))?;
                }
                return self.end_leaf();
            }
            Event::Payload { size } => {
                self.left = size;
                if let Some(m) = self.cur.take()
                    && self.in_scope()
                {
                    self.start_file(m)?;
                }
                if size == 0 {
                    self.finish_file()?;
                    return self.end_leaf();
                }
            }
            Event::PayloadData(data) => {
                if let Some(fd) = self.leaf.as_ref().and_then(|l| l.fd.as_ref()) {
                    write_all(fd, data).map_err(|e| TreeError::io(&self.fs_path(), e))?;
                    self.report.bytes += data.len() as u64;
                }
                self.left = self.left.saturating_sub(data.len() as u64);
                if self.left == 0 {
                    self.finish_file()?;
                    return self.end_leaf();
                }
            }
            Event::Filename(name) => {
                if self.close_pending()? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                if let Some(Some(d)) = self.dirs.last_mut()
                    && self.opts.delete
                    && !d.created
                {
                    d.names.push(name.to_vec());
                }
                if !self.path.is_empty() {
                    self.path.push(b'/');
                }
                self.path.extend_from_slice(name);
                self.name = name.to_vec();
            }
            Event::EndDirectory => {
                if self.close_pending()? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                let dir = self.dirs.pop().flatten();
                let len = self.lens.pop().unwrap_or(0);
                self.path.truncate(len);
                if let Some(dir) = dir {
                    self.finish_dir(dir)?;
                }
                let done = self.path == self.sub;
                let parent = self.lens.last().copied().unwrap_or(0);
                self.path.truncate(parent);
                if done {
                    return Ok(Flow::Stop);
                }
            }
            Event::EndArchive | Event::TrailingData => return Ok(Flow::Stop),
        }
        Ok(Flow::Continue)
    }
}

/// The directory new nodes go into: the target for the subpath node, else the innermost
/// extracted directory.
fn parent_of<'a>(
    dirs: &'a [Option<Dir>],
    target: &'a OwnedFd,
    at_sub: bool,
) -> Option<BorrowedFd<'a>> {
    if at_sub {
        Some(target.as_fd())
    } else {
        dirs.last()?.as_ref().map(|d| d.fd.as_fd())
    }
}

/// Writes all of `data` to `fd`.
fn write_all(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
