//! Random access to a catar archive through its goodbye tables (spec §4.7), for `mount`.
//!
//! Nothing is decoded up front. The root is read from the start of the archive; a directory's
//! children are found from its GOODBYE record, whose tail is the directory's last 24 bytes and
//! whose items give each child's FILENAME offset, size and name hash. A child is decoded on its
//! own when it is first looked up: only its FILENAME, ENTRY and metadata records are read, up to
//! its PAYLOAD, SYMLINK or DEVICE record or its first child. Payloads are read where they are.
//!
//! Children are decoded with core's [`Decoder`], which only accepts whole archives: each is fed
//! after the root's ENTRY and metadata records (the "prefix"), so it is checked exactly as if it
//! were the first child of the root. Inode numbers are the offsets of the nodes' FILENAME
//! records (1 for the root), stable and unique.

use super::push::PushState;
use super::source::{Access, ReadAt};
use crate::tree::acl;
use otasync_core::catar::format::{
    CA_FORMAT_GOODBYE, CA_FORMAT_GOODBYE_TAIL_MARKER, GOODBYE_ITEM_SIZE, HEADER_SIZE, goodbye_size,
};
use otasync_core::catar::goodbye::name_hash;
use otasync_core::catar::{
    AclEntry, DecodeError, Decoder, Entry, Event, FileType, Metadata, S_IFMT,
};
use otasync_core::flags::{
    WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_ACL, WITH_FCAPS, WITH_SELINUX, WITH_USER_NAMES,
    WITH_XATTRS,
};
use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};

/// Inode number of the root directory (FUSE's).
pub(crate) const ROOT_INO: u64 = 1;

/// Most bytes of one node's records before its contents or children (ENTRY, xattrs, ACLs…).
const MAX_NODE_METADATA: u64 = 16 << 20;

/// Most children one directory may have here (its goodbye table is read whole).
const MAX_DIR_ENTRIES: u64 = 1 << 22;

/// Bytes read first while decoding a node's records (they rarely take more).
const FIRST_STEP: usize = 1024;
/// Bytes read at a time after the first step while decoding a node's records.
const READ_STEP: usize = 16 * 1024;
/// Archive bytes over which a listing loads the chunks holding entries before decoding them.
const FETCH_SPAN: u64 = 8 << 20;

/// What a node is, with where its contents are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory: its ENTRY's offset, the offset of its first FILENAME (or of its GOODBYE
    /// when empty), and the end of its GOODBYE.
    Directory {
        /// Archive offset of the ENTRY record.
        entry: u64,
        /// Archive offset of the first child's FILENAME, or of the GOODBYE.
        children: u64,
        /// Archive offset just past the GOODBYE.
        end: u64,
    },
    /// A regular file.
    File {
        /// Archive offset of the contents.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A block or character device.
    Device {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
}

/// One child as its directory's goodbye table lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    /// Hash of the name.
    hash: u64,
    /// Archive offset of the FILENAME record.
    start: u64,
    /// Bytes from the FILENAME to the end of the child.
    size: u64,
}

/// What is known of a directory's children, filled in as they are asked for.
#[derive(Default)]
struct DirCache {
    /// The goodbye table, in its binary-search-tree order.
    table: Option<Arc<[Item]>>,
    /// Every child, decoded, in archive order.
    children: Option<Arc<[Arc<Node>]>>,
}

/// A decoded node: its metadata as the mount shows it, and where its contents are.
pub(crate) struct Node {
    /// Inode number: the archive offset of the FILENAME record, or [`ROOT_INO`].
    pub(crate) ino: u64,
    /// The parent directory's inode number (the root's own for the root).
    pub(crate) parent: u64,
    /// The file name (empty for the root).
    pub(crate) name: Vec<u8>,
    /// The ENTRY record.
    pub(crate) entry: Entry,
    /// Owner as this host numbers it.
    pub(crate) uid: u32,
    /// Group as this host numbers it.
    pub(crate) gid: u32,
    /// Extended attributes as `getxattr` returns them: the archive's `user.*`/`trusted.*`,
    /// `security.capability`, `security.selinux` and the ACLs in the kernel's binary format.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Type and contents.
    pub(crate) kind: Kind,
    /// Whether the contents were queued for the kernel's cache, or read by a program.
    pub(crate) push: PushState,
    dir: Mutex<DirCache>,
}

impl Node {
    /// The node's file type.
    pub(crate) fn file_type(&self) -> FileType {
        match &self.kind {
            Kind::Directory { .. } => FileType::Directory,
            Kind::File { .. } => FileType::Regular,
            Kind::Symlink(_) => FileType::Symlink,
            Kind::Device { .. } if self.entry.mode & S_IFMT == otasync_core::catar::S_IFBLK => {
                FileType::BlockDevice
            }
            Kind::Device { .. } => FileType::CharDevice,
            Kind::Fifo => FileType::Fifo,
            Kind::Socket => FileType::Socket,
        }
    }

    /// The file size `stat` reports.
    pub(crate) fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { size, .. } => *size,
            Kind::Symlink(target) => target.len() as u64,
            _ => 0,
        }
    }
}

/// Host user and group ids of names, looked up once each.
#[derive(Default)]
struct Names(HashMap<(bool, Vec<u8>), Option<u32>>);

impl Names {
    fn id(&mut self, group: bool, name: &[u8]) -> Option<u32> {
        *self.0.entry((group, name.to_vec())).or_insert_with(|| {
            let name = std::str::from_utf8(name).ok()?;
            if group {
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
            } else {
                nix::unistd::User::from_name(name)
                    .ok()
                    .flatten()
                    .map(|u| u.uid.as_raw())
            }
        })
    }
}

/// A catar archive opened for random access.
pub(crate) struct Archive {
    source: Arc<dyn ReadAt>,
    flags: u64,
    /// The root's ENTRY and metadata records, fed before a child's records.
    prefix: Vec<u8>,
    root: Arc<Node>,
    /// Decoded nodes still in use, by inode number, so that every path to one shares it.
    live: Mutex<LiveNodes>,
    names: Mutex<Names>,
}

struct LiveNodes {
    nodes: HashMap<u64, Weak<Node>>,
    /// Size at which dead entries are swept out next.
    sweep_at: usize,
}

/// An error for a malformed archive.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Collects the records of one node from decoder events.
#[derive(Default)]
struct Builder {
    /// A FILENAME comes first (every node but the root).
    named: bool,
    name: Option<Vec<u8>>,
    entry: Option<(Entry, u64)>,
    meta: Metadata,
    kind: Option<Kind>,
}

impl Builder {
    /// Takes one event at archive offset `at` (its record's start), with `after` the offset
    /// past what has been decoded; true when the node's metadata is complete.
    fn event(&mut self, event: Event<Vec<u8>>, at: u64, after: u64, end: u64) -> io::Result<bool> {
        let meta = &mut self.meta;
        match event {
            Event::Filename(name) if self.named && self.name.is_none() => {
                self.name = Some(name);
            }
            Event::Filename(_) | Event::EndDirectory => {
                let Some((entry, entry_at)) = self.entry else {
                    return Err(invalid(format!("no ENTRY before offset {at}")));
                };
                self.kind = Some(match FileType::from_mode(entry.mode.into()) {
                    Some(FileType::Directory) => Kind::Directory {
                        entry: entry_at,
                        children: at,
                        end,
                    },
                    Some(FileType::Socket) => Kind::Socket,
                    _ => Kind::Fifo,
                });
                return Ok(true);
            }
            Event::Entry(entry) if self.entry.is_none() && (self.name.is_some() || !self.named) => {
                self.entry = Some((entry, at));
                meta.entry = entry;
            }
            Event::User(name) => meta.user = Some(name),
            Event::Group(name) => meta.group = Some(name),
            Event::Xattr { name, value } => meta.xattrs.push((name, value)),
            Event::AclUser(e) => meta.acl.users.push(e),
            Event::AclGroup(e) => meta.acl.groups.push(e),
            Event::AclGroupObj(p) => meta.acl.group_obj = Some(p),
            Event::AclDefault(d) => meta.acl.default = Some(d),
            Event::AclDefaultUser(e) => meta.acl.default_users.push(e),
            Event::AclDefaultGroup(e) => meta.acl.default_groups.push(e),
            Event::Selinux(label) => meta.selinux = Some(label),
            Event::Fcaps(caps) => meta.fcaps = Some(caps),
            Event::QuotaProjid(id) => meta.quota_projid = id,
            Event::Symlink(target) => {
                self.kind = Some(Kind::Symlink(target));
                return Ok(true);
            }
            Event::Device { major, minor } => {
                self.kind = Some(Kind::Device { major, minor });
                return Ok(true);
            }
            Event::Payload { size } => {
                if after.checked_add(size).is_none_or(|e| e > end) {
                    return Err(invalid(format!(
                        "the file at offset {at} runs past its end"
                    )));
                }
                self.kind = Some(Kind::File {
                    offset: after,
                    size,
                });
                return Ok(true);
            }
            _ => return Err(invalid(format!("unexpected record at offset {at}"))),
        }
        Ok(false)
    }

    /// The node once its bytes ran out: complete only for FIFOs and sockets, which have no
    /// record after their metadata.
    fn finish(self, start: u64) -> io::Result<(Option<Vec<u8>>, Metadata, Kind)> {
        let kind = match (self.kind, self.entry) {
            (Some(kind), _) => kind,
            (None, Some((entry, _))) => match FileType::from_mode(entry.mode.into()) {
                Some(FileType::Fifo) => Kind::Fifo,
                Some(FileType::Socket) => Kind::Socket,
                _ => return Err(invalid(format!("the node at offset {start} is truncated"))),
            },
            (None, None) => return Err(invalid(format!("no ENTRY at offset {start}"))),
        };
        Ok((self.name, self.meta, kind))
    }
}

impl Archive {
    /// Opens the archive in `source`: reads the root's records and checks that the archive
    /// ends with the root's goodbye tail.
    pub(crate) fn open(source: Arc<dyn ReadAt>) -> io::Result<Self> {
        let mut archive = Self {
            source,
            flags: 0,
            prefix: Vec::new(),
            root: Arc::new(Node {
                ino: ROOT_INO,
                parent: ROOT_INO,
                name: Vec::new(),
                entry: Entry::default(),
                uid: 0,
                gid: 0,
                xattrs: Vec::new(),
                kind: Kind::Fifo,
                push: PushState::default(),
                dir: Mutex::default(),
            }),
            live: Mutex::new(LiveNodes {
                nodes: HashMap::new(),
                sweep_at: 1024,
            }),
            names: Mutex::default(),
        };
        let size = archive.source.size();
        let (flags, _, meta, kind) = archive.decode(0, size, false)?;
        let Kind::Directory { children, .. } = kind else {
            return Err(invalid("the archive's root is not a directory".into()));
        };
        archive.flags = flags;
        let mut prefix = vec![0u8; children as usize];
        archive
            .source
            .read_exact_at(0, &mut prefix, Access::Hinted)?;
        archive.prefix = prefix;
        archive.root = Arc::new(archive.node(ROOT_INO, ROOT_INO, Vec::new(), meta, kind));
        // The root's goodbye table must be where the archive ends (casync's random access).
        archive.table(&archive.root)?;
        Ok(archive)
    }

    /// Size of the archive in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.source.size()
    }

    /// The root directory.
    pub(crate) fn root(&self) -> &Arc<Node> {
        &self.root
    }

    /// Decodes the node whose records are at `start..end` (a FILENAME first when `named`),
    /// until its metadata is complete. Returns the archive flags, the name, the metadata and
    /// the kind.
    fn decode(
        &self,
        start: u64,
        end: u64,
        named: bool,
    ) -> io::Result<(u64, Option<Vec<u8>>, Metadata, Kind)> {
        let mut decoder = Decoder::new();
        let base = self.prefix.len() as u64;
        let bad = |e: DecodeError| {
            let offset = (e.offset + start).saturating_sub(base);
            invalid(format!("invalid archive {}", DecodeError { offset, ..e }))
        };
        let mut at = 0;
        while at < self.prefix.len() {
            let (n, _) = decoder.next(&self.prefix[at..]).map_err(bad)?;
            at += n;
        }
        // Decoder positions are offsets in prefix + node; archive offsets are these.
        let archive_offset = |p: u64| start + (p - base);
        let mut builder = Builder {
            named,
            ..Builder::default()
        };
        let mut buf = vec![0u8; FIRST_STEP];
        let mut pos = start;
        while pos < end {
            if pos > start {
                buf.resize(READ_STEP, 0);
            }
            if pos - start > MAX_NODE_METADATA {
                return Err(invalid(format!(
                    "the node at offset {start} has more than {MAX_NODE_METADATA} bytes of metadata"
                )));
            }
            let want = buf.len().min((end - pos) as usize);
            self.source
                .read_exact_at(pos, &mut buf[..want], Access::Hinted)?;
            let mut used = 0;
            while used < want {
                let (n, event) = decoder.next(&buf[used..want]).map_err(bad)?;
                used += n;
                // Owned, so that the decoder can be asked where it stands.
                let Some(event) = event.map(|e| e.map(<[u8]>::to_vec)) else {
                    continue;
                };
                let event_at = archive_offset(decoder.event_offset());
                let after = archive_offset(decoder.position());
                if builder.event(event, event_at, after, end)? {
                    let flags = decoder.feature_flags().unwrap_or(0);
                    let (name, meta, kind) = builder.finish(start)?;
                    return Ok((flags, name, meta, kind));
                }
            }
            pos += want as u64;
        }
        let flags = decoder.feature_flags().unwrap_or(0);
        let (name, meta, kind) = builder.finish(start)?;
        Ok((flags, name, meta, kind))
    }

    /// The host id of an archived owner or ACL entry: by name when the archive has names
    /// the host knows, else the archived number.
    fn host_id(&self, group: bool, name: Option<&[u8]>, id: u32) -> u32 {
        if self.flags & WITH_USER_NAMES != 0
            && let Some(name) = name
            && let Some(id) = self
                .names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .id(group, name)
        {
            return id;
        }
        id
    }

    /// A node as the mount shows it.
    fn node(&self, ino: u64, parent: u64, name: Vec<u8>, meta: Metadata, kind: Kind) -> Node {
        let numeric = self.flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS) != 0;
        let owner = |group: bool, name: &Option<Vec<u8>>, id: u32| match (numeric, name) {
            // Without numbers, a missing name means root.
            (false, None) => 0,
            (_, name) => self.host_id(group, name.as_deref(), id),
        };
        let uid = owner(false, &meta.user, meta.entry.uid);
        let gid = owner(true, &meta.group, meta.entry.gid);
        let mut xattrs = Vec::new();
        if self.flags & WITH_XATTRS != 0 {
            xattrs.extend(meta.xattrs.iter().cloned());
        }
        if self.flags & WITH_FCAPS != 0
            && let Some(caps) = &meta.fcaps
        {
            xattrs.push((b"security.capability".to_vec(), caps.clone()));
        }
        if self.flags & WITH_SELINUX != 0
            && let Some(label) = &meta.selinux
        {
            let mut value = label.clone();
            value.push(0);
            xattrs.push((b"security.selinux".to_vec(), value));
        }
        if self.flags & WITH_ACL != 0 {
            let mut id_of =
                |group: bool, e: &AclEntry<Vec<u8>>| self.host_id(group, e.name.as_deref(), e.id);
            if let Some(entries) = acl::access_from_catar(&meta.acl, meta.entry.mode, &mut id_of) {
                xattrs.push((acl::ACCESS_XATTR.into(), acl::encode(&entries)));
            }
            if matches!(kind, Kind::Directory { .. })
                && let Some(entries) = acl::default_from_catar(&meta.acl, &mut id_of)
            {
                xattrs.push((acl::DEFAULT_XATTR.into(), acl::encode(&entries)));
            }
        }
        Node {
            ino,
            parent,
            name,
            entry: meta.entry,
            uid,
            gid,
            xattrs,
            kind,
            push: PushState::default(),
            dir: Mutex::default(),
        }
    }

    /// The goodbye table of `dir`, read (and checked) once.
    fn table(&self, dir: &Node) -> io::Result<Arc<[Item]>> {
        self.table_into(dir, &mut dir.dir.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The goodbye table of `dir`, from or into its `cache` (held locked by the caller).
    fn table_into(&self, dir: &Node, cache: &mut DirCache) -> io::Result<Arc<[Item]>> {
        let Kind::Directory {
            entry,
            children,
            end,
        } = dir.kind
        else {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        };
        if let Some(table) = &cache.table {
            return Ok(Arc::clone(table));
        }
        let bad = |what: &str| invalid(format!("directory at offset {entry}: {what}"));
        if end < children + goodbye_size(0) {
            return Err(bad("no room for a goodbye table"));
        }
        let mut tail = [0u8; 24];
        self.source
            .read_exact_at(end - 24, &mut tail, Access::Hinted)?;
        let (distance, size, marker) = (le64(&tail, 0), le64(&tail, 8), le64(&tail, 16));
        if marker != CA_FORMAT_GOODBYE_TAIL_MARKER {
            return Err(bad("no goodbye tail where the directory ends"));
        }
        let items = size.saturating_sub(goodbye_size(0)) / GOODBYE_ITEM_SIZE;
        if size != goodbye_size(items) || size > end - children || items > MAX_DIR_ENTRIES {
            return Err(bad("bad goodbye table size"));
        }
        let goodbye = end - size;
        if goodbye.checked_sub(distance) != Some(entry) {
            return Err(bad("the goodbye tail does not point back to the ENTRY"));
        }
        let mut bytes = vec![0u8; (size - GOODBYE_ITEM_SIZE) as usize];
        self.source
            .read_exact_at(goodbye, &mut bytes, Access::Hinted)?;
        if le64(&bytes, 0) != size || le64(&bytes, 8) != CA_FORMAT_GOODBYE {
            return Err(bad("bad goodbye record header"));
        }
        let room = goodbye - children;
        let table: Arc<[Item]> = bytes[HEADER_SIZE as usize..]
            .chunks_exact(GOODBYE_ITEM_SIZE as usize)
            .map(|item| {
                let (offset, size, hash) = (le64(item, 0), le64(item, 8), le64(item, 16));
                if offset > room || size > offset || size == 0 {
                    return Err(bad("goodbye item outside the directory"));
                }
                Ok(Item {
                    hash,
                    start: goodbye - offset,
                    size,
                })
            })
            .collect::<io::Result<_>>()?;
        cache.table = Some(Arc::clone(&table));
        Ok(table)
    }

    /// The child of `dir` that goodbye item `item` describes.
    fn child(&self, dir: &Node, item: Item) -> io::Result<Arc<Node>> {
        if let Some(node) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .get(&item.start)
            .and_then(Weak::upgrade)
        {
            return Ok(node);
        }
        let end = item.start + item.size;
        let (_, name, meta, kind) = self.decode(item.start, end, true)?;
        let name = name.ok_or_else(|| invalid(format!("no FILENAME at offset {}", item.start)))?;
        let node = Arc::new(self.node(item.start, dir.ino, name, meta, kind));
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(other) = live.nodes.get(&item.start).and_then(Weak::upgrade) {
            // Decoded by another thread meanwhile.
            return Ok(other);
        }
        live.nodes.insert(item.start, Arc::downgrade(&node));
        if live.nodes.len() >= live.sweep_at {
            live.nodes.retain(|_, n| n.strong_count() > 0);
            live.sweep_at = (live.nodes.len() * 2).max(1024);
        }
        Ok(node)
    }

    /// The child of `dir` called `name`, found through the goodbye table's name hashes.
    pub(crate) fn lookup(&self, dir: &Node, name: &[u8]) -> io::Result<Option<Arc<Node>>> {
        let table = self.table(dir)?;
        let hash = name_hash(name);
        let mut candidates = Vec::new();
        find_hash(&table, hash, 0, &mut candidates);
        for item in candidates {
            let child = self.child(dir, item)?;
            if child.name == name {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// Every child of `dir`, in archive order (decoded once, then kept while `dir` is; a
    /// second thread asking meanwhile waits for the first). The chunks holding the children's
    /// entries are loaded by this thread, [`FETCH_SPAN`] of archive at a time (checked side by
    /// side), before those entries are decoded; those past the first span are meanwhile asked
    /// of the prefetch workers.
    pub(crate) fn children(&self, dir: &Node) -> io::Result<Arc<[Arc<Node>]>> {
        let mut cache = dir.dir.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(children) = &cache.children {
            return Ok(Arc::clone(children));
        }
        let mut items = self.table_into(dir, &mut cache)?.to_vec();
        items.sort_unstable_by_key(|item| item.start);
        // What decoding each entry reads.
        let records: Vec<Range<u64>> = items
            .iter()
            .map(|item| item.start..item.start + item.size.min(FIRST_STEP as u64))
            .collect();
        // Where the entries within FETCH_SPAN of entry `first` end.
        let span_end = |first: usize| {
            let span = items[first].start.saturating_add(FETCH_SPAN);
            first + items[first..].partition_point(|item| item.start < span)
        };
        if !items.is_empty() {
            self.source.will_read(&records[span_end(0)..]);
        }
        let mut children = Vec::with_capacity(items.len());
        while children.len() < items.len() {
            let first = children.len();
            let end = span_end(first);
            self.source.fetch(&records[first..end]);
            for item in &items[first..end] {
                children.push(self.child(dir, *item)?);
            }
        }
        let children: Arc<[Arc<Node>]> = children.into();
        cache.children = Some(Arc::clone(&children));
        Ok(children)
    }

    /// True once the children of `dir` are decoded.
    #[cfg(test)]
    pub(crate) fn has_children(&self, dir: &Node) -> bool {
        dir.dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .children
            .is_some()
    }

    /// Reads file contents at `offset` into `buf`; fewer bytes only at the end of the file.
    pub(crate) fn read(
        &self,
        node: &Node,
        offset: u64,
        buf: &mut [u8],
        access: Access,
    ) -> io::Result<usize> {
        let Kind::File {
            offset: start,
            size,
        } = node.kind
        else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        let len = buf.len().min(size.saturating_sub(offset) as usize);
        self.source
            .read_exact_at(start + offset, &mut buf[..len], access)?;
        Ok(len)
    }

    /// Fetches the archive bytes `range` side by side (see [`ReadAt::fetch`]).
    pub(crate) fn fetch_stream(&self, range: Range<u64>) {
        self.source.fetch(std::slice::from_ref(&range));
    }

    /// Fetches the bytes `range` of `file`'s contents side by side (see [`ReadAt::fetch`]).
    pub(crate) fn fetch(&self, file: &Node, range: Range<u64>) {
        if let Kind::File { offset, size } = file.kind {
            let end = range.end.min(size);
            if range.start < end {
                let range = offset + range.start..offset + end;
                self.source.fetch(std::slice::from_ref(&range));
            }
        }
    }

    /// Fetches the whole contents of `files` side by side (see [`ReadAt::fetch`]).
    pub(crate) fn fetch_files(&self, files: &[Arc<Node>]) {
        let ranges: Vec<Range<u64>> = files
            .iter()
            .filter_map(|node| match node.kind {
                Kind::File { offset, size } => Some(offset..offset + size),
                _ => None,
            })
            .collect();
        self.source.fetch(&ranges);
    }
}

/// Collects the items with `hash` from the binary search tree in array form rooted at `i`
/// (children of `i` at `2i+1`, smaller, and `2i+2`, larger; equal hashes may be on both sides).
fn find_hash(table: &[Item], hash: u64, i: usize, out: &mut Vec<Item>) {
    let Some(item) = table.get(i) else {
        return;
    };
    if hash <= item.hash {
        find_hash(table, hash, 2 * i + 1, out);
    }
    if hash == item.hash {
        out.push(*item);
    }
    if hash >= item.hash {
        find_hash(table, hash, 2 * i + 2, out);
    }
}

/// Archives for the tests of the mount's modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::fuse::source::FileSource;

    /// Metadata of mode `mode`, everything else zero.
    pub(crate) fn plain(mode: u32) -> Metadata {
        Metadata {
            entry: Entry {
                mode,
                ..Entry::default()
            },
            ..Metadata::default()
        }
    }

    /// Opens the archive `bytes`, written to a temporary file.
    pub(crate) fn open(bytes: &[u8]) -> io::Result<Archive> {
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, bytes).unwrap();
        Archive::open(Arc::new(FileSource::new(file).unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::open;
    use super::*;
    use otasync_core::catar::{Acl, AclDefault, Encoder, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG};

    /// casync's default flags plus ACLs, numeric ids and xattrs.
    const FLAGS: u64 = 0xb0000001ffeffe26 | WITH_ACL;

    fn meta(mode: u32) -> Metadata {
        Metadata {
            entry: Entry {
                mode,
                uid: 1000,
                gid: 100,
                mtime: 1_577_934_245_123_456_789,
                ..Entry::default()
            },
            ..Metadata::default()
        }
    }

    /// An archive: many files in `big/`, a file with an xattr and ACL, a symlink, a FIFO and
    /// an empty directory.
    fn archive() -> Vec<u8> {
        let dir = meta(S_IFDIR | 0o755);
        let mut enc = Encoder::new(Vec::new(), FLAGS, &dir).unwrap();
        enc.directory(b"big", &dir).unwrap();
        for i in 0..300 {
            let name = format!("f{i:03}");
            enc.file(name.as_bytes(), &meta(S_IFREG | 0o644), name.len() as u64)
                .unwrap();
            enc.payload(name.as_bytes()).unwrap();
        }
        enc.end_directory().unwrap();
        enc.directory(b"empty", &dir).unwrap();
        enc.end_directory().unwrap();
        assert!(enc.special(b"fifo", &meta(S_IFIFO | 0o600)).unwrap());
        let mut file = meta(S_IFREG | 0o640);
        file.xattrs.push((b"user.k".to_vec(), b"v".to_vec()));
        file.acl = Acl {
            users: vec![AclEntry {
                id: 7,
                name: None,
                permissions: 6,
            }],
            group_obj: Some(4),
            ..Acl::default()
        };
        enc.file(b"hello", &file, 6).unwrap();
        enc.payload(b"hello\n").unwrap();
        assert!(
            enc.symlink(b"link", &meta(S_IFLNK | 0o777), b"hello")
                .unwrap()
        );
        let mut sub = meta(S_IFDIR | 0o750);
        sub.acl.default = Some(AclDefault {
            user_obj: 7,
            group_obj: 5,
            other: 0,
            mask: None,
        });
        enc.directory(b"sub", &sub).unwrap();
        enc.end_directory().unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn records_longer_than_the_first_read_are_decoded() {
        let dir = meta(S_IFDIR | 0o755);
        let mut enc = Encoder::new(Vec::new(), FLAGS, &dir).unwrap();
        let mut file = meta(S_IFREG | 0o644);
        let value: Vec<u8> = (0..3 * FIRST_STEP).map(|i| i as u8).collect();
        file.xattrs.push((b"user.big".to_vec(), value.clone()));
        let name = vec![b'n'; 200];
        enc.file(&name, &file, 2).unwrap();
        enc.payload(b"ok").unwrap();
        let archive = open(&enc.finish().unwrap()).unwrap();
        let root = Arc::clone(archive.root());
        let children = archive.children(&root).unwrap();
        assert_eq!(children.len(), 1);
        let node = archive.lookup(&root, &name).unwrap().unwrap();
        assert_eq!(node.xattrs, vec![(b"user.big".to_vec(), value)]);
        let mut buf = [0u8; 4];
        assert_eq!(
            archive.read(&node, 0, &mut buf, Access::Program).unwrap(),
            2
        );
        assert_eq!(&buf[..2], b"ok");
    }

    #[test]
    fn lookups_and_listings_through_goodbye_tables() {
        let archive = open(&archive()).unwrap();
        let root = Arc::clone(archive.root());
        assert_eq!(root.entry.mode, S_IFDIR | 0o755);
        let names: Vec<Vec<u8>> = archive
            .children(&root)
            .unwrap()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(
            names,
            [&b"big"[..], b"empty", b"fifo", b"hello", b"link", b"sub"]
        );
        let big = archive.lookup(&root, b"big").unwrap().unwrap();
        assert_eq!(archive.children(&big).unwrap().len(), 300);
        let f = archive.lookup(&big, b"f123").unwrap().unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(archive.read(&f, 0, &mut buf, Access::Program).unwrap(), 4);
        assert_eq!(&buf[..4], b"f123");
        assert_eq!(archive.read(&f, 2, &mut buf, Access::Program).unwrap(), 2);
        assert!(archive.lookup(&big, b"f300").unwrap().is_none());
        // The same node whichever way it was found.
        let again = &archive.children(&big).unwrap()[123];
        assert!(Arc::ptr_eq(&f, again));
        assert_eq!(f.parent, big.ino);

        let hello = archive.lookup(&root, b"hello").unwrap().unwrap();
        assert_eq!((hello.uid, hello.gid, hello.size()), (1000, 100, 6));
        assert_eq!(hello.entry.mtime, 1_577_934_245_123_456_789);
        let names: Vec<&[u8]> = hello.xattrs.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [&b"user.k"[..], b"system.posix_acl_access"]);
        let access = acl::decode(&hello.xattrs[1].1).unwrap();
        assert!(
            access
                .iter()
                .any(|e| e.tag == acl::USER && e.id == 7 && e.perm == 6)
        );
        let sub = archive.lookup(&root, b"sub").unwrap().unwrap();
        assert_eq!(sub.xattrs[0].0, b"system.posix_acl_default");
        assert!(archive.children(&sub).unwrap().is_empty());
        let link = archive.lookup(&root, b"link").unwrap().unwrap();
        assert_eq!(link.kind, Kind::Symlink(b"hello".to_vec()));
        let fifo = archive.lookup(&root, b"fifo").unwrap().unwrap();
        assert_eq!(fifo.file_type(), FileType::Fifo);
        assert!(archive.read(&fifo, 0, &mut buf, Access::Program).is_err());
        assert!(archive.children(&fifo).is_err());
    }

    #[test]
    fn damaged_archives_are_refused() {
        let bytes = archive();
        // Cut short: no goodbye tail at the end.
        assert!(open(&bytes[..bytes.len() - 1]).is_err());
        // Trailing bytes.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 24]);
        assert!(open(&longer).is_err());
        // A flipped byte in a child's ENTRY is found when the child is decoded.
        let archive = open(&bytes).unwrap();
        let root = Arc::clone(archive.root());
        let hello = archive.lookup(&root, b"hello").unwrap().unwrap();
        let mut broken = bytes.clone();
        let mode_at = (hello.ino + 22 + 16 + 8) as usize; // FILENAME "hello\0", header, flags
        assert_eq!(le64(&broken, mode_at), u64::from(S_IFREG | 0o640));
        broken[mode_at + 5] ^= 0xff;
        let archive = open(&broken).unwrap();
        let root = Arc::clone(archive.root());
        assert!(archive.lookup(&root, b"hello").is_err());
        assert!(archive.lookup(&root, b"link").unwrap().is_some());
        // A goodbye item pointing outside its directory.
        let mut broken = bytes.clone();
        let n = broken.len();
        let first_item = n - goodbye_size(6) as usize + 16;
        broken[first_item..first_item + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let archive = open(&broken);
        assert!(archive.is_err());
    }

    #[test]
    fn hash_search_finds_every_collision() {
        let sorted: Vec<Item> = [1u64, 5, 5, 5, 9, 12]
            .iter()
            .enumerate()
            .map(|(i, &hash)| Item {
                hash,
                start: i as u64,
                size: 1,
            })
            .collect();
        let mut table = Vec::new();
        otasync_core::catar::goodbye::make_bst(&sorted, &mut table);
        let mut found = Vec::new();
        find_hash(&table, 5, 0, &mut found);
        found.sort_unstable_by_key(|i| i.start);
        assert_eq!(found.iter().map(|i| i.start).collect::<Vec<_>>(), [1, 2, 3]);
        found.clear();
        find_hash(&table, 7, 0, &mut found);
        assert!(found.is_empty());
    }
}
