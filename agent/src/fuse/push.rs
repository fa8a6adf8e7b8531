//! Read-ahead across files for `mount`: a program that starts reading a file will likely read
//! the files after it in archive order next (`cp -r`, `tar`, `find | xargs cat` go through
//! directories in listing order, which is archive order). A thread decodes the small files
//! that follow, among those the kernel knows (listed or looked up: their inodes exist), and
//! puts their contents into the kernel's page cache (FUSE_NOTIFY_STORE), so that reading them
//! costs no request at all. Nothing is pushed for a listing alone (`ls -lR` of a mount backed
//! by a remote store fetches no file contents), and each range of files is queued once.

use super::archive::{Archive, Kind, Node};
use fuser::{INodeNo, Notifier};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// Files larger than this are left to the kernel's read-ahead (which sends large requests).
const MAX_FILE: u64 = 1 << 20;
/// Archive bytes pushed ahead of the file being read.
const AHEAD: u64 = 32 << 20;
/// Bytes in one store notification.
const PIECE: usize = 1 << 20;
/// Batches of files waiting to be pushed.
const QUEUED: usize = 4;

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
    /// Archive offset of the last file queued: reads going forward only queue what follows.
    frontier: AtomicU64,
}

impl Pusher {
    /// Starts the pushing thread; it pushes nothing until `notifier` is set.
    pub(crate) fn start(archive: Arc<Archive>, notifier: NotifierSlot) -> io::Result<Self> {
        let (queue, batches) = sync_channel(QUEUED);
        let pushed = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&pushed);
        let thread = std::thread::Builder::new()
            .name("push".into())
            .spawn(move || push_batches(&archive, &notifier, &batches, &count))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            pushed,
            frontier: AtomicU64::new(0),
        })
    }

    /// The count of files pushed so far (it goes on counting while the thread runs).
    pub(crate) fn pushed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pushed)
    }

    /// A file at archive offset `ino` is being read from its start: the range of inode
    /// numbers whose files should be pushed now, unless enough are queued already.
    pub(crate) fn window(&self, ino: u64) -> Option<(u64, u64)> {
        let frontier = self.frontier.load(Ordering::Relaxed);
        if frontier >= ino.saturating_add(AHEAD / 2) {
            return None;
        }
        let end = ino.saturating_add(AHEAD);
        let start = self.frontier.fetch_max(end, Ordering::Relaxed).max(ino);
        (start < end).then_some((start, end))
    }

    /// True for a node worth pushing: a small, non-empty regular file.
    pub(crate) fn wanted(node: &Node) -> bool {
        matches!(node.kind, Kind::File { size, .. } if (1..=MAX_FILE).contains(&size))
    }

    /// Queues `files` (in archive order) for the thread.
    pub(crate) fn push(&self, files: Vec<Arc<Node>>) {
        // A full queue means the thread is behind: those files are read the ordinary way.
        if let Some(queue) = &self.queue
            && !files.is_empty()
        {
            let _ = queue.try_send(files);
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
    let mut buf = vec![0; PIECE];
    for batch in batches {
        let Some(notifier) = notifier.get() else {
            continue;
        };
        for node in batch {
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
        let n = archive.read(node, offset, buf).map_err(Failed::Reading)?;
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
