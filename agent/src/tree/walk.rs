//! Walking a directory tree into a catar stream exactly as `casync make` does (spec §4).

use super::exclude::Rules;
use super::ids::IdShift;
use super::sys::{self, Names, Node};
use super::{Result, TreeError, acl};
use otasync_core::catar::{EncodeError, Encoder, FileType, Metadata};
use otasync_core::flags::*;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What [`encode_tree`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalkStats {
    /// Nodes archived, the root included.
    pub(crate) entries: u64,
    /// Bytes of file contents archived.
    pub(crate) payload_bytes: u64,
    /// Bytes of archive written.
    pub(crate) archive_bytes: u64,
}

/// The chattr feature bits.
const CHATTR: u64 = 0x3ff0000;
/// Read buffer for file contents.
const READ_SIZE: usize = 128 * 1024;

type Enc<'w> = Encoder<&'w mut dyn FnMut(&[u8]) -> io::Result<()>>;

/// Writes the tree at `root` (a directory; symlinks to one are followed) as a catar stream with
/// `feature_flags` (known and normalized) to `out`, byte-identical to `casync make`.
pub(crate) fn encode_tree<W: Write + ?Sized>(
    root: &Path,
    feature_flags: u64,
    ids: Option<IdShift>,
    out: &mut W,
) -> Result<WalkStats> {
    let io_err = |e: io::Error| TreeError::io(root, e);
    let fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| io_err(e.into()))?;
    let st = rfs::fstat(&fd).map_err(|e| io_err(e.into()))?;
    let magic = sys::fs_magic(&fd).map_err(io_err)?;
    let mut walker = Walker {
        flags: feature_flags,
        ids,
        names: Names::default(),
        buf: vec![0; READ_SIZE],
        stats: WalkStats::default(),
        path: root.to_path_buf(),
    };
    let chattr = walker.chattr(&fd).map_err(io_err)?;
    let meta = walker
        .metadata(&st, Node::Fd(fd.as_fd()), FileType::Directory, chattr)
        .map_err(io_err)?;
    let mut written = 0u64;
    let mut sink = |b: &[u8]| {
        written += b.len() as u64;
        out.write_all(b)
    };
    let sink: &mut dyn FnMut(&[u8]) -> io::Result<()> = &mut sink;
    let mut enc: Enc<'_> =
        Encoder::new(sink, feature_flags, &meta).map_err(|e| walker.enc_err(e))?;
    walker.stats.entries = 1;
    let rules = walker.load_rules(&fd, Rules::default())?;
    if !sys::is_virtual_fs(magic) {
        walker.walk_dir(&mut enc, &fd, st.st_dev, magic, &rules)?;
    }
    enc.end_directory().map_err(|e| walker.enc_err(e))?;
    let mut stats = walker.stats;
    drop(enc);
    stats.archive_bytes = written;
    Ok(stats)
}

struct Walker {
    flags: u64,
    /// `--uid-shift`: the ids are stored shifted.
    ids: Option<IdShift>,
    names: Names,
    buf: Vec<u8>,
    stats: WalkStats,
    /// Path of the node being worked on, for messages.
    path: PathBuf,
}

impl Walker {
    fn enc_err(&self, e: EncodeError<io::Error>) -> TreeError {
        match e {
            EncodeError::Sink(e) => TreeError::io(Path::new("archive output"), e),
            EncodeError::Format(k) => TreeError::Encode {
                path: self.path.clone(),
                reason: k.to_string(),
            },
        }
    }

    fn io_err(&self, e: impl Into<io::Error>) -> TreeError {
        TreeError::io(&self.path, e.into())
    }

    /// chattr flags, read when the archive wants them or excludes nodump files.
    fn chattr(&self, fd: &OwnedFd) -> io::Result<u32> {
        if self.flags & (CHATTR | EXCLUDE_NODUMP) == 0 {
            return Ok(0);
        }
        sys::get_chattr(fd)
    }

    /// Reads `.caexclude` in the directory `fd` (when the archive honours it) on top of the
    /// rules inherited from the parent.
    fn load_rules(&self, fd: &OwnedFd, mut rules: Rules) -> Result<Rules> {
        if self.flags & EXCLUDE_FILE == 0 {
            return Ok(rules);
        }
        let file = match rfs::openat(
            fd,
            ".caexclude",
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(f) => f,
            Err(rustix::io::Errno::NOENT) => return Ok(rules),
            Err(e) => return Err(TreeError::io(&self.path.join(".caexclude"), e.into())),
        };
        let mut text = Vec::new();
        io::Read::read_to_end(&mut std::fs::File::from(file), &mut text)
            .map_err(|e| TreeError::io(&self.path.join(".caexclude"), e))?;
        rules.add_file(&text).map_err(|reason| TreeError::Encode {
            path: self.path.join(".caexclude"),
            reason,
        })?;
        Ok(rules)
    }

    /// Host id `id` as the archive stores it (shifted with `--uid-shift`).
    fn archived_id(&self, id: u32) -> io::Result<u32> {
        match self.ids {
            None => Ok(id),
            Some(ids) => ids.encode(id).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("id {id} lies below --uid-shift={}", ids.shift),
                )
            }),
        }
    }

    /// The metadata of a node as casync reads it.
    fn metadata(
        &mut self,
        st: &rfs::Stat,
        node: Node<'_>,
        ty: FileType,
        chattr: u32,
    ) -> io::Result<Metadata> {
        let f = self.flags;
        let mut meta = Metadata::default();
        meta.entry.mode = st.st_mode;
        meta.entry.uid = self.archived_id(st.st_uid)?;
        meta.entry.gid = self.archived_id(st.st_gid)?;
        let (sec, nsec) = (st.st_mtime, st.st_mtime_nsec);
        // The field types differ between targets.
        #[allow(clippy::unnecessary_cast)]
        let nsec = nsec as u64;
        meta.entry.mtime = u64::try_from(sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec);
        if ty.has_attributes() {
            meta.entry.flags = sys::chattr_to_feature(chattr);
        }
        // casync names no owner of id 0 on this host (root); with --uid-shift, archive id 0
        // may well be named.
        if f & WITH_USER_NAMES != 0 {
            meta.user = (st.st_uid != 0)
                .then(|| self.names.name(false, st.st_uid))
                .flatten();
            meta.group = (st.st_gid != 0)
                .then(|| self.names.name(true, st.st_gid))
                .flatten();
        }
        let symlink = ty == FileType::Symlink;
        if f & WITH_XATTRS != 0 && !symlink {
            for name in node.list_xattrs()? {
                if !(name.starts_with(b"user.") || name.starts_with(b"trusted.")) {
                    continue;
                }
                if let Some(value) = node.get_xattr(&name)? {
                    meta.xattrs.push((name, value));
                }
            }
            meta.xattrs.sort_unstable();
        }
        if f & WITH_ACL != 0 && !symlink {
            let names = f & WITH_USER_NAMES != 0;
            let mut lookup = |group: bool, id: u32| self.names.name(group, id);
            if let Some(entries) = node
                .get_xattr(acl::ACCESS_XATTR.as_bytes())?
                .and_then(|v| acl::decode(&v))
            {
                let l: acl::NameLookup<'_> = if names { Some(&mut lookup) } else { None };
                acl::access_to_catar(&entries, &mut meta.acl, l);
            }
            if ty == FileType::Directory
                && let Some(entries) = node
                    .get_xattr(acl::DEFAULT_XATTR.as_bytes())?
                    .and_then(|v| acl::decode(&v))
            {
                let l: acl::NameLookup<'_> = if names { Some(&mut lookup) } else { None };
                acl::default_to_catar(&entries, &mut meta.acl, l);
            }
        }
        if f & WITH_SELINUX != 0 {
            meta.selinux = node.get_xattr(b"security.selinux")?.map(|mut v| {
                while v.last() == Some(&0) {
                    v.pop();
                }
                v
            });
            if meta.selinux.as_ref().is_some_and(Vec::is_empty) {
                meta.selinux = None;
            }
        }
        if f & WITH_FCAPS != 0 && ty == FileType::Regular {
            meta.fcaps = node.get_xattr(b"security.capability")?;
        }
        Ok(meta)
    }

    /// Archives the children of the directory `dir`.
    fn walk_dir<'w>(
        &mut self,
        enc: &mut Enc<'w>,
        dir: &OwnedFd,
        dev: u64,
        magic: u64,
        rules: &Rules,
    ) -> Result<()> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let entries = rfs::Dir::read_from(dir).map_err(|e| self.io_err(e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io_err(e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort_unstable();
        for name in names {
            self.path.push(OsStr::from_bytes(&name));
            let r = self.child(enc, dir, &name, dev, magic, rules);
            self.path.pop();
            r?;
        }
        Ok(())
    }

    fn child<'w>(
        &mut self,
        enc: &mut Enc<'w>,
        dir: &OwnedFd,
        name: &[u8],
        dev: u64,
        parent_magic: u64,
        rules: &Rules,
    ) -> Result<()> {
        let cname = OsStr::from_bytes(name);
        let st = rfs::statat(dir, cname, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.io_err(e))?;
        let Some(ty) = FileType::from_mode(st.st_mode.into()) else {
            return Ok(());
        };
        // 1. Types the archive leaves out.
        if !otasync_core::catar::type_enabled(self.flags, ty) {
            return Ok(());
        }
        let fd = if ty.has_attributes() {
            let mut o = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW;
            if ty == FileType::Directory {
                o |= OFlags::DIRECTORY;
            }
            Some(rfs::openat(dir, cname, o, Mode::empty()).map_err(|e| self.io_err(e))?)
        } else {
            None
        };
        let chattr = match &fd {
            Some(fd) => self.chattr(fd).map_err(|e| self.io_err(e))?,
            None => 0,
        };
        // 2. chattr +d.
        if self.flags & EXCLUDE_NODUMP != 0 && chattr & sys::FS_NODUMP_FL != 0 {
            return Ok(());
        }
        // 3. Submounts.
        if self.flags & EXCLUDE_SUBMOUNTS != 0 && ty == FileType::Directory && st.st_dev != dev {
            return Ok(());
        }
        // 4. .caexclude.
        let (excluded, sub_rules) = rules.test(name, ty == FileType::Directory);
        if excluded {
            return Ok(());
        }
        let magic = match &fd {
            Some(fd) if st.st_dev != dev => sys::fs_magic(fd).map_err(|e| self.io_err(e))?,
            _ => parent_magic,
        };
        let node = match &fd {
            Some(fd) => Node::Fd(fd.as_fd()),
            None => Node::At(dir.as_fd(), name),
        };
        let meta = self
            .metadata(&st, node, ty, chattr)
            .map_err(|e| self.io_err(e))?;
        self.stats.entries += 1;
        match ty {
            FileType::Directory => {
                let Some(fd) = fd else { return Ok(()) };
                enc.directory(name, &meta).map_err(|e| self.enc_err(e))?;
                let rules = self.load_rules(&fd, sub_rules)?;
                if !sys::is_virtual_fs(magic) {
                    self.walk_dir(enc, &fd, st.st_dev, magic, &rules)?;
                }
                enc.end_directory().map_err(|e| self.enc_err(e))?;
            }
            FileType::Regular => {
                let Some(fd) = fd else { return Ok(()) };
                let size = if sys::is_virtual_fs(magic) {
                    0
                } else {
                    st.st_size as u64
                };
                enc.file(name, &meta, size).map_err(|e| self.enc_err(e))?;
                self.copy_payload(enc, &fd, size)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, cname, Vec::new()).map_err(|e| self.io_err(e))?;
                enc.symlink(name, &meta, target.as_bytes())
                    .map_err(|e| self.enc_err(e))?;
            }
            FileType::BlockDevice | FileType::CharDevice => {
                let (major, minor) = (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
                enc.device(name, &meta, major.into(), minor.into())
                    .map_err(|e| self.enc_err(e))?;
            }
            FileType::Fifo | FileType::Socket => {
                enc.special(name, &meta).map_err(|e| self.enc_err(e))?;
            }
        }
        Ok(())
    }

    /// Streams `size` bytes of a file into the archive (holes read as zeros).
    fn copy_payload<'w>(&mut self, enc: &mut Enc<'w>, fd: &OwnedFd, size: u64) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match rustix::io::read(fd, &mut self.buf[..want]) {
                Ok(0) => {
                    return Err(self.io_err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being archived",
                    )));
                }
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(self.io_err(e)),
            };
            enc.payload(&self.buf[..n]).map_err(|e| self.enc_err(e))?;
            left -= n as u64;
            self.stats.payload_bytes += n as u64;
        }
        Ok(())
    }
}
