//! Turning catar events into nodes with full paths, payload digests and hardlink digests:
//! what casync's `list`, `mtree`, `stat` and `digest` see of an archive.

use super::events::{Flow, Position, for_each_event};
use super::{Result, TreeError};
use otasync_core::catar::{Entry, Event, FileType, format::CA_FORMAT_ENTRY};
use otasync_core::digest::Hasher;
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io::Read;
use std::path::Path;

/// One node of the archive.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    /// Path relative to the archive root, components joined by `/`; empty for the root.
    pub(crate) path: Vec<u8>,
    /// The ENTRY.
    pub(crate) entry: Entry,
    /// Archive offset of the ENTRY record.
    pub(crate) offset: u64,
    /// USER and GROUP names.
    pub(crate) user: Option<Vec<u8>>,
    /// See `user`.
    pub(crate) group: Option<Vec<u8>>,
    /// XATTR records.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Symlink target.
    pub(crate) target: Option<Vec<u8>>,
    /// Device numbers.
    pub(crate) device: Option<(u64, u64)>,
    /// File size.
    pub(crate) size: Option<u64>,
    /// Project quota id.
    pub(crate) projid: Option<u32>,
}

impl Node {
    /// The node's type.
    pub(crate) fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.entry.mode.into())
    }
}

/// What the scanner reports.
pub(crate) enum Stage<'a> {
    /// A node's metadata is complete (for files, before the contents).
    Header(&'a Node),
    /// A node is complete: the payload digest (regular files, and block devices as casync
    /// reports them), the hardlink digest (ENTRY through the end of the node, non-directories)
    /// and, for the subpath node, the digest of all its bytes.
    Done {
        /// The node.
        node: &'a Node,
        /// Digest of the contents.
        payload: Option<ChunkId>,
        /// Digest of the node's records, FILENAME excluded (non-directories).
        hardlink: Option<ChunkId>,
        /// Digest of the node's whole serialization (the subpath node only).
        subtree: Option<ChunkId>,
    },
}

/// Splits a SUBPATH argument into normalized bytes (`./a//b/` → `a/b`; `.` or `` → root).
pub(crate) fn normalize_subpath(subpath: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = subpath
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts.join(&b'/')
}

/// True when `path` is `sub` or below it.
pub(crate) fn within(path: &[u8], sub: &[u8]) -> bool {
    sub.is_empty()
        || path == sub
        || (path.len() > sub.len() && path.starts_with(sub) && path[sub.len()] == b'/')
}

struct Scanner<'f> {
    sub: Vec<u8>,
    digests: bool,
    on: &'f mut dyn FnMut(Stage<'_>, &Position) -> Result<Flow>,
    algo: Option<DigestAlgorithm>,
    path: Vec<u8>,
    /// Path lengths and ENTRYs of the open directories.
    dirs: Vec<(usize, Entry, u64)>,
    /// Node whose metadata is being read.
    cur: Option<Node>,
    /// The non-directory node whose contents are being read.
    file: Option<Node>,
    payload: Option<Hasher>,
    hardlink: Option<Hasher>,
    subtree: Option<Hasher>,
    /// Depth of the subpath directory in `dirs` while its subtree is hashed.
    subtree_depth: Option<usize>,
    /// Bytes of steps that completed no event yet.
    pending: Vec<u8>,
    found: bool,
    /// Payload bytes still to come.
    left: u64,
}

/// Decodes `input` and reports the nodes at and below `subpath` (normalized) to `on`; with
/// `digests`, payload, hardlink and subtree digests are computed. Fails with
/// [`TreeError::NotFound`] when no node has that path.
pub(crate) fn scan<R: Read>(
    input: R,
    name: &Path,
    subpath: &[u8],
    digests: bool,
    mut on: impl FnMut(Stage<'_>, &Position) -> Result<Flow>,
) -> Result<()> {
    let mut s = Scanner {
        sub: normalize_subpath(subpath),
        digests,
        on: &mut on,
        algo: None,
        path: Vec::new(),
        dirs: Vec::new(),
        cur: None,
        file: None,
        payload: None,
        hardlink: None,
        subtree: None,
        subtree_depth: None,
        pending: Vec::new(),
        found: false,
        left: 0,
    };
    let mut stopped = false;
    for_each_event(input, name, |event, raw, pos| {
        let Some(event) = event else {
            s.pending.extend_from_slice(raw);
            return Ok(Flow::Continue);
        };
        let flow = s.event(event, raw, pos)?;
        s.pending.clear();
        stopped = flow == Flow::Stop;
        Ok(flow)
    })?;
    if !s.found {
        let shown = String::from_utf8_lossy(&s.sub).into_owned();
        return Err(TreeError::NotFound(shown.into()));
    }
    let _ = stopped;
    Ok(())
}

impl Scanner<'_> {
    fn hasher(&self) -> Option<Hasher> {
        self.digests.then(|| self.algo.unwrap_or_default().hasher())
    }

    fn feed(&mut self, raw: &[u8], with_pending: bool) {
        for h in [&mut self.hardlink, &mut self.subtree]
            .into_iter()
            .flatten()
        {
            if with_pending {
                h.update(&self.pending);
            }
            h.update(raw);
        }
    }

    fn emit(&mut self, stage: Stage<'_>, pos: &Position) -> Result<Flow> {
        (self.on)(stage, pos)
    }

    fn event(&mut self, event: Event<&[u8]>, raw: &[u8], pos: &Position) -> Result<Flow> {
        if self.algo.is_none() && pos.flags != 0 {
            self.algo = Some(DigestAlgorithm::from_flags(pos.flags));
        }
        match event {
            Event::Entry(entry) => {
                let in_scope = within(&self.path, &self.sub);
                let node = Node {
                    path: self.path.clone(),
                    entry,
                    offset: pos.end - 64,
                    ..Node::default()
                };
                if in_scope {
                    self.found |= self.path == self.sub;
                    let is_dir = node.file_type() == Some(FileType::Directory);
                    if !is_dir {
                        self.hardlink = self.hasher();
                    }
                    if self.path == self.sub && is_dir {
                        self.subtree = self.hasher();
                        self.subtree_depth = Some(self.dirs.len());
                    }
                    // The ENTRY record, rebuilt (its first bytes may have come in an earlier
                    // step).
                    let mut rec = Vec::with_capacity(64);
                    for v in [
                        64,
                        CA_FORMAT_ENTRY,
                        pos.flags,
                        entry.mode.into(),
                        entry.flags,
                    ] {
                        rec.extend_from_slice(&u64::to_le_bytes(v));
                    }
                    for v in [entry.uid.into(), entry.gid.into(), entry.mtime] {
                        rec.extend_from_slice(&u64::to_le_bytes(v));
                    }
                    self.feed(&rec, false);
                }
                self.cur = Some(node);
                return Ok(Flow::Continue);
            }
            Event::User(u) => self.with_cur(|n| n.user = Some(u.to_vec())),
            Event::Group(g) => self.with_cur(|n| n.group = Some(g.to_vec())),
            Event::Xattr { name, value } => {
                self.with_cur(|n| n.xattrs.push((name.to_vec(), value.to_vec())))
            }
            Event::QuotaProjid(p) => self.with_cur(|n| n.projid = Some(p)),
            Event::Symlink(t) => self.with_cur(|n| n.target = Some(t.to_vec())),
            Event::Device { major, minor } => self.with_cur(|n| n.device = Some((major, minor))),
            Event::Payload { size } => self.with_cur(|n| n.size = Some(size)),
            _ => {}
        }
        if !matches!(event, Event::Filename(_) | Event::EndDirectory) {
            self.feed(raw, true);
        }
        match event {
            Event::Symlink(_) | Event::Device { .. } => {
                let flow = self.header(pos)?;
                if flow == Flow::Stop {
                    return Ok(flow);
                }
                self.finish_file(pos)
            }
            Event::Payload { size } => {
                self.payload = self.hasher();
                self.left = size;
                let flow = self.header(pos)?;
                if flow == Flow::Stop || size > 0 {
                    return Ok(flow);
                }
                self.finish_file(pos)
            }
            Event::PayloadData(data) => {
                if let Some(h) = &mut self.payload {
                    h.update(data);
                }
                self.left = self.left.saturating_sub(data.len() as u64);
                if self.left == 0 {
                    return self.finish_file(pos);
                }
                Ok(Flow::Continue)
            }
            Event::Filename(name) => {
                let flow = self.close_pending(pos)?;
                if flow == Flow::Stop {
                    return Ok(flow);
                }
                self.feed(raw, true);
                if !self.path.is_empty() {
                    self.path.push(b'/');
                }
                self.path.extend_from_slice(name);
                Ok(Flow::Continue)
            }
            Event::EndDirectory => {
                let flow = self.close_pending(pos)?;
                if flow == Flow::Stop {
                    return Ok(flow);
                }
                self.feed(raw, true);
                let (len, entry, offset) = self.dirs.pop().unwrap_or_default();
                self.path.truncate(len);
                let dir = Node {
                    path: self.path.clone(),
                    entry,
                    offset,
                    ..Node::default()
                };
                let subtree = if self.subtree_depth == Some(self.dirs.len()) {
                    self.subtree_depth = None;
                    self.subtree.take().map(Hasher::finalize)
                } else {
                    None
                };
                // Back to the parent's path.
                let parent = self.dirs.last().map_or(0, |d| d.0);
                let flow = if within(&dir.path, &self.sub) {
                    let stage = Stage::Done {
                        node: &dir,
                        payload: None,
                        hardlink: None,
                        subtree,
                    };
                    self.emit(stage, pos)?
                } else {
                    Flow::Continue
                };
                self.path.truncate(parent);
                if dir.path == self.sub {
                    return Ok(Flow::Stop);
                }
                Ok(flow)
            }
            _ => Ok(Flow::Continue),
        }
    }

    fn with_cur(&mut self, f: impl FnOnce(&mut Node)) {
        if let Some(n) = &mut self.cur {
            f(n);
        }
    }

    /// Reports the header of the node whose metadata just ended.
    fn header(&mut self, pos: &Position) -> Result<Flow> {
        let Some(node) = self.cur.take() else {
            return Ok(Flow::Continue);
        };
        let flow = if within(&node.path, &self.sub) {
            self.emit(Stage::Header(&node), pos)?
        } else {
            Flow::Continue
        };
        if node.file_type() == Some(FileType::Directory) {
            self.dirs.push((node.path.len(), node.entry, node.offset));
        } else {
            self.file = Some(node);
        }
        Ok(flow)
    }

    /// At a FILENAME or GOODBYE: ends a FIFO/socket, or reports a directory's header.
    fn close_pending(&mut self, pos: &Position) -> Result<Flow> {
        if self.cur.is_none() {
            return Ok(Flow::Continue);
        }
        let flow = self.header(pos)?;
        if flow == Flow::Stop || self.file.is_none() {
            return Ok(flow);
        }
        self.finish_file(pos)
    }

    fn finish_file(&mut self, pos: &Position) -> Result<Flow> {
        let Some(node) = self.file.take() else {
            return Ok(Flow::Continue);
        };
        let ty = node.file_type();
        let mut payload = self.payload.take().map(Hasher::finalize);
        if ty == Some(FileType::BlockDevice) {
            payload = self.hasher().map(Hasher::finalize);
        }
        let hardlink = self.hardlink.take().map(Hasher::finalize);
        let parent = self.dirs.last().map_or(0, |d| d.0);
        let flow = if within(&node.path, &self.sub) {
            self.emit(
                Stage::Done {
                    node: &node,
                    payload,
                    hardlink,
                    subtree: None,
                },
                pos,
            )?
        } else {
            Flow::Continue
        };
        self.path.truncate(parent);
        if node.path == self.sub {
            return Ok(Flow::Stop);
        }
        Ok(flow)
    }
}
