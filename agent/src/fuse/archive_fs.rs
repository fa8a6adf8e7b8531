//! The read-only file system `mount` serves: an [`Archive`]'s nodes as inodes. The kernel's
//! references to inodes (lookups minus forgets) keep decoded nodes alive; a directory keeps its
//! decoded children until it is itself forgotten.

use super::archive::{Archive, Kind, Node, ROOT_INO};
use super::attr::{TTL, errno, file_attr, reply_read, reply_xattr};
use super::prelist::Lister;
use super::push::Pusher;
use super::source::Access;
use fuser::{
    Errno, FileHandle, FileType as FuseType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyXattr, Request,
};
use otasync_core::catar::FileType;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

/// `FS_IOC_GETFLAGS` (`_IOR('f', 1, long)`), as 64-bit programs send it.
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_IOC32_GETFLAGS` (`_IOR('f', 1, int)`).
const FS_IOC32_GETFLAGS: u32 = 0x8004_6601;

/// Largest read served at once (the kernel asks for at most its `max_pages`).
const MAX_READ: usize = 1 << 20;

/// The decoded children of a directory, in archive order.
type Children = Arc<[Arc<Node>]>;

/// An archive as a FUSE file system.
pub(crate) struct ArchiveFs {
    archive: Arc<Archive>,
    /// Puts the files after one being read into the kernel's cache (none: reads only).
    push: Option<Pusher>,
    /// Lists directories ahead of a program walking the tree (none: only when asked).
    lister: Option<Lister>,
    /// Inodes the kernel holds, with its lookup counts (the root is never forgotten).
    inodes: Mutex<BTreeMap<u64, (Arc<Node>, u64)>>,
    /// Directories being listed: the children (by index) in the last reply of each, which the
    /// kernel has taken in once it asks for the entries after them.
    replied: Mutex<HashMap<u64, Range<usize>>>,
    /// The kernel opens files and directories without asking (saves two requests per file).
    no_open: bool,
    /// Likewise for directories.
    no_opendir: bool,
}

impl ArchiveFs {
    /// Serves `archive`, with `push` reading ahead of programs going through directories and
    /// `lister` listing ahead of them.
    pub(crate) fn new(archive: Arc<Archive>, push: Option<Pusher>, lister: Option<Lister>) -> Self {
        let root = Arc::clone(archive.root());
        Self {
            archive,
            push,
            lister,
            inodes: Mutex::new(BTreeMap::from([(ROOT_INO, (root, 1))])),
            replied: Mutex::default(),
            no_open: false,
            no_opendir: false,
        }
    }

    fn node(&self, ino: INodeNo) -> Result<Arc<Node>, Errno> {
        self.inodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino.0)
            .map(|(node, _)| Arc::clone(node))
            .ok_or(Errno::ENOENT)
    }

    /// A directory and its children, for a listing from entry `offset`: entry 0 is the
    /// directory as ".", entry 1 the directory again as ".." (shown with its `parent`'s inode
    /// number; the kernel resolves ".." itself), entry `i + 2` child `i`.
    fn listing(&self, ino: INodeNo, offset: u64) -> Result<(Arc<Node>, Children), Errno> {
        let dir = self.node(ino)?;
        let children = self.archive.children(&dir).map_err(|e| {
            log::warn!("listing {}: {e}", String::from_utf8_lossy(&dir.name));
            errno(&e)
        })?;
        if offset == 0
            && let Some(lister) = &self.lister
        {
            lister.listing(&dir, &children);
        }
        Ok((dir, children))
    }

    /// `file` is being read from its start: the pusher reads ahead through the files after it
    /// that the kernel knows, and a walk's contents are decoded ahead.
    fn reading(&self, file: &Node) {
        if let Some(lister) = &self.lister {
            lister.reading();
        }
        let Some(push) = &self.push else {
            return;
        };
        let Some((start, end)) = push.reading(file) else {
            return;
        };
        let inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        push.push(inodes.range(start + 1..=end).map(|(_, (node, _))| node));
    }

    /// A listing of `dir` continues at entry `offset` (or ends there): the kernel has taken in
    /// the entries of the previous reply, so the pusher may have their files now. Entries
    /// `replied` are those of this reply.
    fn listing_goes_on(
        &self,
        dir: u64,
        children: &[Arc<Node>],
        offset: u64,
        replied: Range<usize>,
    ) {
        let Some(push) = &self.push else {
            return;
        };
        let mut listings = self.replied.lock().unwrap_or_else(|p| p.into_inner());
        let before = match replied.is_empty() {
            true => listings.remove(&dir),
            false => listings.insert(dir, replied),
        };
        drop(listings);
        // Entries 0 and 1 are "." and "..".
        if let Some(before) = before
            && before.end as u64 == offset
        {
            let taken = before.start.max(2) - 2..before.end.saturating_sub(2);
            if let Some(files) = children.get(taken) {
                push.listed(files);
            }
        }
    }

    /// Counts one more kernel reference to `node`.
    fn remember(&self, node: &Arc<Node>) {
        self.inodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node.ino)
            .or_insert_with(|| (Arc::clone(node), 0))
            .1 += 1;
    }
}

/// The FUSE type of a node.
fn fuse_type(ty: FileType) -> FuseType {
    match ty {
        FileType::Directory => FuseType::Directory,
        FileType::Regular => FuseType::RegularFile,
        FileType::Symlink => FuseType::Symlink,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::Socket => FuseType::Socket,
    }
}

fn attr(node: &Node) -> fuser::FileAttr {
    let rdev = match node.kind {
        Kind::Device { major, minor } => Some((major, minor)),
        _ => None,
    };
    file_attr(
        node.ino,
        fuse_type(node.file_type()),
        node.entry.mode,
        node.size(),
        (node.uid, node.gid),
        node.entry.mtime,
        rdev,
    )
}

impl Filesystem for ArchiveFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        super::attr::tune(config);
        // Names and attributes with the listing: no LOOKUP per entry afterwards.
        if config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS)
            .is_err()
        {
            log::debug!("the kernel lacks READDIRPLUS");
        }
        let kernel = config.capabilities();
        self.no_open = kernel.contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        self.no_opendir = kernel.contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.node(parent).and_then(|dir| {
            self.archive
                .lookup(&dir, name.as_bytes())
                .map_err(|e| errno(&e))?
                .ok_or(Errno::ENOENT)
        });
        match found {
            Ok(node) => {
                self.remember(&node);
                reply.entry(&TTL, &attr(&node), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino.0 == ROOT_INO {
            return;
        }
        let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, count)) = inodes.get_mut(&ino.0) {
            *count = count.saturating_sub(nlookup);
            if *count == 0 {
                inodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(node) => reply.attr(&TTL, &attr(&node)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).map(|n| n.kind.clone()) {
            Ok(Kind::Symlink(target)) => reply.data(&target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if self.no_open {
            // The kernel then opens files itself, keeping their page cache (FOPEN_KEEP_CACHE);
            // the read-only mount refuses writing.
            return reply.error(Errno::ENOSYS);
        }
        match self.node(ino) {
            // The archive never changes: the page cache stays valid across opens.
            Ok(_) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush, ever: the kernel stops asking.
        reply.error(Errno::ENOSYS);
    }

    /// `FS_IOC_GETFLAGS` (`lsattr`): the archived chattr flags; no other ioctl.
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        if cmd != FS_IOC_GETFLAGS && cmd != FS_IOC32_GETFLAGS {
            return reply.error(Errno::ENOTTY);
        }
        match self.node(ino) {
            Ok(node) => {
                let mut out = crate::tree::feature_to_chattr(node.entry.flags)
                    .to_ne_bytes()
                    .to_vec();
                out.resize((out_size as usize).clamp(4, 8), 0);
                reply.ioctl(0, &out);
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            // The kernel then opens directories itself, caching them (FOPEN_CACHE_DIR).
            return reply.error(Errno::ENOSYS);
        }
        match self.node(ino) {
            Ok(node) if node.file_type() == FileType::Directory => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        if offset == 0 {
            self.reading(&node);
        }
        reply_read(
            reply,
            size,
            MAX_READ,
            |buf| self.archive.read(&node, offset, buf, Access::Program),
            || String::from_utf8_lossy(&node.name).into_owned(),
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (dir, children) = match self.listing(ino, offset) {
            Ok(listing) => listing,
            Err(e) => return reply.error(e),
        };
        for i in offset as usize..children.len() + 2 {
            let (entry, node, name): (u64, &Node, &[u8]) = match i {
                0 => (dir.ino, &dir, b"."),
                1 => (dir.parent, &dir, b".."),
                _ => (children[i - 2].ino, &children[i - 2], &children[i - 2].name),
            };
            // The offset given with an entry is where the next listing starts.
            let kind = fuse_type(node.file_type());
            if reply.add(INodeNo(entry), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (dir, children) = match self.listing(ino, offset) {
            Ok(listing) => listing,
            Err(e) => return reply.error(e),
        };
        let mut end = offset as usize;
        for i in offset as usize..children.len() + 2 {
            let (node, name): (&Arc<Node>, &[u8]) = match i {
                0 => (&dir, b"."),
                1 => (&dir, b".."),
                _ => (&children[i - 2], &children[i - 2].name),
            };
            let mut attr = attr(node);
            if i == 1 {
                attr.ino = INodeNo(dir.parent);
            }
            let name = OsStr::from_bytes(name);
            if reply.add(attr.ino, i as u64 + 1, name, &TTL, &attr, Generation(0)) {
                break;
            }
            end = i + 1;
            if i >= 2 {
                // The kernel counts a lookup for every entry it was given but "." and "..".
                self.remember(node);
            }
        }
        reply.ok();
        self.listing_goes_on(ino.0, &children, offset, offset as usize..end);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.archive.size().div_ceil(4096);
        reply.statfs(blocks, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.node(ino) {
            Ok(node) => {
                match node
                    .xattrs
                    .iter()
                    .find(|(n, _)| n.as_slice() == name.as_bytes())
                {
                    Some((_, value)) => reply_xattr(reply, value, size),
                    None => reply.error(Errno::NO_XATTR),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.node(ino) {
            Ok(node) => {
                let mut names = Vec::new();
                for (name, _) in &node.xattrs {
                    names.extend_from_slice(name);
                    names.push(0);
                }
                reply_xattr(reply, &names, size);
            }
            Err(e) => reply.error(e),
        }
    }
}
