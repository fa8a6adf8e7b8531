//! Read-ahead across files for `mount`: a program that starts reading a file will likely read
//! the files after it in archive order next (`cp -r`, `tar`, `find | xargs cat` go through
//! directories in listing order, which is archive order). A thread decodes the files (up to
//! [`MAX_FILE`]) that follow, among those the kernel knows (listed or looked up: their inodes
//! exist), and puts their contents into the kernel's page cache (FUSE_NOTIFY_STORE), so that
//! reading them costs no request at all. Files the kernel learns of later, from a listing, are
//! pushed once it has taken them in, when they lie not too far after the file being read
//! (`find -exec cat {} +` lists the next directories while no file is read). Nothing is pushed
//! for a listing alone (`ls -lR` of a mount backed by a remote store fetches no file contents),
//! and each file is pushed at most once, and not at all once a program has read it itself.

use super::archive::{Archive, Kind, Node};
use super::source::Access;
use fuser::{INodeNo, Notifier};
use std::io;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// Files larger than this are left to the kernel's read-ahead (which sends large requests):
/// pushing one would fill the kernel's cache far ahead of the reader.
const MAX_FILE: u64 = 64 << 20;
/// Archive bytes searched for known files after one a program starts reading.
const AHEAD: u64 = 32 << 20;
/// Archive bytes after the file being read whose files are pushed as a listing makes them known.
const LISTED_AHEAD: u64 = 256 << 20;
/// Bytes in one store notification.
const PIECE: usize = 1 << 20;
/// Batches of files waiting to be pushed.
const BATCHES: usize = 1024;

/// A file's progress towards the kernel's cache: untouched, queued for pushing, or read by a
/// program (which a queued push then skips).
#[derive(Default)]
pub(crate) struct PushState(AtomicU8);

const UNTOUCHED: u8 = 0;
const QUEUED: u8 = 1;
const READ: u8 = 2;

impl PushState {
    /// Queues the file unless it was queued or read already; true if it was.
    fn queue(&self) -> bool {
        self.0
            .compare_exchange(UNTOUCHED, QUEUED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The queue had no room: the file may be queued again.
    fn unqueue(&self) {
        let _ = self
            .0
            .compare_exchange(QUEUED, UNTOUCHED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A program reads the file itself.
    fn read(&self) {
        self.0.store(READ, Ordering::Relaxed);
    }

    /// True once a program has read the file.
    fn is_read(&self) -> bool {
        self.0.load(Ordering::Relaxed) == READ
    }
}

/// Where the notifier arrives once the session exists (the file system is built before it).
pub(crate) type NotifierSlot = Arc<OnceLock<Notifier>>;

/// Hands files to the pushing thread; dropped (when the file system is), it waits for the
/// thread to finish the file at hand and end.
pub(crate) struct Pusher {
    /// `None` once dropping.
    queue: Option<SyncSender<Vec<Arc<Node>>>>,
    thread: Option<JoinHandle<()>>,
    /// Files handed to the kernel (which drops those whose inode it has forgotten).
    pushed: Arc<AtomicU64>,
    /// Archive offset of the file a program last started to read (0: none yet).
    reader: AtomicU64,
    /// Where the last search for known files after a file being read ended.
    searched: AtomicU64,
}

impl Pusher {
    /// Starts the pushing thread; it pushes nothing until `notifier` is set.
    pub(crate) fn start(archive: Arc<Archive>, notifier: NotifierSlot) -> io::Result<Self> {
        let (queue, batches) = sync_channel(BATCHES);
        let pushed = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&pushed);
        let thread = std::thread::Builder::new()
            .name("push".into())
            .spawn(move || push_batches(&archive, &notifier, &batches, &count))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            pushed,
            reader: AtomicU64::new(0),
            searched: AtomicU64::new(0),
        })
    }

    /// The count of files pushed so far (it goes on counting while the thread runs).
    pub(crate) fn pushed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pushed)
    }

    /// A program starts reading `file` (which then needs no push): the range of inode numbers
    /// whose known files should be pushed now, unless that range was searched already.
    pub(crate) fn reading(&self, file: &Node) -> Option<(u64, u64)> {
        file.push.read();
        let ino = file.ino;
        self.reader.store(ino, Ordering::Relaxed);
        if self.searched.load(Ordering::Relaxed) >= ino.saturating_add(AHEAD / 2) {
            return None;
        }
        let end = ino.saturating_add(AHEAD);
        let start = self.searched.fetch_max(end, Ordering::Relaxed).max(ino);
        (start < end).then_some((start, end))
    }

    /// The kernel has taken in `files` from a listing (in archive order): those close enough
    /// after the file being read are queued.
    pub(crate) fn listed(&self, files: &[Arc<Node>]) {
        let reader = self.reader.load(Ordering::Relaxed);
        if reader == 0 {
            return;
        }
        let end = reader.saturating_add(LISTED_AHEAD);
        let first = files.partition_point(|node| node.ino <= reader);
        let last = files.partition_point(|node| node.ino <= end);
        self.push(files[first..last.max(first)].iter());
    }

    /// True for a node worth pushing: a non-empty regular file of at most [`MAX_FILE`] bytes.
    fn wanted(node: &Node) -> bool {
        matches!(node.kind, Kind::File { size, .. } if (1..=MAX_FILE).contains(&size))
    }

    /// Queues those of `nodes` (in archive order) worth pushing and not pushed yet.
    pub(crate) fn push<'a>(&self, nodes: impl Iterator<Item = &'a Arc<Node>>) {
        let Some(queue) = &self.queue else {
            return;
        };
        let files: Vec<Arc<Node>> = nodes
            .filter(|node| Self::wanted(node) && node.push.queue())
            .map(Arc::clone)
            .collect();
        if files.is_empty() {
            return;
        }
        // A full queue means the thread is far behind: those files are read the ordinary way,
        // or pushed when found again.
        if let Err(e) = queue.try_send(files) {
            let (std::sync::mpsc::TrySendError::Full(files)
            | std::sync::mpsc::TrySendError::Disconnected(files)) = e;
            for node in files {
                node.push.unqueue();
            }
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The pushing thread: each file's contents into the kernel's cache, piece by piece.
fn push_batches(
    archive: &Archive,
    notifier: &OnceLock<Notifier>,
    batches: &Receiver<Vec<Arc<Node>>>,
    pushed: &AtomicU64,
) {
    super::background::work_ahead();
    let mut buf = vec![0; PIECE];
    for batch in batches {
        let Some(notifier) = notifier.get() else {
            continue;
        };
        // The small files' chunks are decoded side by side first (in this thread: the prefetch
        // workers' queue may hold far more distant chunks); larger files a piece at a time.
        let small: Vec<Arc<Node>> = batch
            .iter()
            .filter(|node| node.size() <= PIECE as u64)
            .cloned()
            .collect();
        archive.fetch_files(&small);
        for node in batch {
            if node.push.is_read() {
                // The program got there first.
                continue;
            }
            match push_file(archive, notifier, &node, &mut buf) {
                Ok(()) => {
                    pushed.fetch_add(1, Ordering::Relaxed);
                }
                // A chunk that cannot be had now: a read of the file will say why.
                Err(Failed::Reading(e)) => {
                    log::debug!("read-ahead of {}: {e}", String::from_utf8_lossy(&node.name));
                }
                Err(Failed::Storing(e)) => {
                    // The kernel refuses stores: reads go on working without them.
                    log::info!("read-ahead into the kernel's cache stopped: {e}");
                    return;
                }
            }
        }
    }
}

/// Why a file was not pushed.
enum Failed {
    /// Its contents could not be read from the archive.
    Reading(io::Error),
    /// The kernel refused them.
    Storing(io::Error),
}

fn push_file(
    archive: &Archive,
    notifier: &Notifier,
    node: &Node,
    buf: &mut [u8],
) -> Result<(), Failed> {
    let size = node.size();
    let mut offset = 0;
    while offset < size {
        if size > PIECE as u64 {
            archive.fetch(node, offset..offset + PIECE as u64);
        }
        let n = archive
            .read(node, offset, buf, Access::Hinted)
            .map_err(Failed::Reading)?;
        if n == 0 {
            break;
        }
        // (fuser reports an inode the kernel no longer has as success.)
        notifier
            .store(INodeNo(node.ino), offset, &buf[..n])
            .map_err(Failed::Storing)?;
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::archive::testing::{open, plain};
    use otasync_core::catar::{Encoder, S_IFDIR, S_IFREG};

    /// An archive of `dir/` with 50 small files and one empty file.
    fn archive() -> Archive {
        let dir = plain(S_IFDIR | 0o755);
        let mut enc = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &dir).unwrap();
        enc.directory(b"dir", &dir).unwrap();
        enc.file(b"empty", &plain(S_IFREG | 0o644), 0).unwrap();
        for i in 0..50 {
            let name = format!("f{i:02}");
            enc.file(name.as_bytes(), &plain(S_IFREG | 0o644), 3)
                .unwrap();
            enc.payload(&name.as_bytes()[..3]).unwrap();
        }
        enc.end_directory().unwrap();
        open(&enc.finish().unwrap()).unwrap()
    }

    /// Which of `files` were queued or read.
    fn flags(files: &[Arc<Node>]) -> Vec<bool> {
        files
            .iter()
            .map(|f| f.push.0.load(Ordering::Relaxed) != UNTOUCHED)
            .collect()
    }

    #[test]
    fn listed_files_are_queued_only_after_the_file_being_read() {
        let archive = Arc::new(archive());
        let dir = archive.lookup(archive.root(), b"dir").unwrap().unwrap();
        let files = archive.children(&dir).unwrap();
        let pusher = Pusher::start(Arc::clone(&archive), NotifierSlot::default()).unwrap();
        // A listing alone queues nothing.
        pusher.listed(&files);
        assert!(flags(&files).iter().all(|&f| !f));
        // A program reads f10: the files after it are queued as a listing makes them known;
        // those before it, f10 itself (read already) and the empty file are not.
        let reading = &files[11];
        assert_eq!(
            pusher.reading(reading),
            Some((reading.ino, reading.ino + AHEAD))
        );
        // The same neighbourhood is not searched twice.
        assert_eq!(pusher.reading(reading), None);
        pusher.listed(&files);
        let mut expected = vec![false; 11];
        expected.extend([true; 40]);
        assert_eq!(flags(&files), expected);
        assert!(files[11].push.is_read() && !files[12].push.is_read());
        // A program reading a queued file first: the push skips it.
        files[12].push.read();
        assert!(!files[12].push.queue());
    }
}
