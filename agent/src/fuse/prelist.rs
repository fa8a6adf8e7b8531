//! Listing ahead for `mount`: a program walking the tree (`find`, `ls -lR`, `du`, `cp -r`)
//! lists directories in archive order, each after its parent. Once the kernel lists a
//! directory whose parent it has listed (a walk), a thread decodes the children of the
//! subdirectories of both and of every directory listed after, and of theirs in turn, in
//! archive order, up to [`AHEAD`] bytes of archive past the furthest directory the kernel
//! has listed. The walk then finds those listings ready:
//! decoding a directory's entries fetches and decodes the chunks holding them (for small
//! files, their contents too), which the thread does while the walking program is busy
//! with what it has. A single listing (`ls DIR`) starts nothing.

use super::archive::{Archive, Kind, Node};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

/// Archive bytes past the furthest directory listed by the kernel within which directories
/// are listed ahead.
const AHEAD: u64 = 32 << 20;

/// Lists directories ahead of a walk; dropped, it stops after the directory at hand.
pub(crate) struct Lister {
    archive: Arc<Archive>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Directories to list ahead, by inode number (archive order).
    queue: BTreeMap<u64, Weak<Node>>,
    /// Directories the kernel has listed.
    listed: HashMap<u64, Weak<Node>>,
    /// Directories whose subdirectories have been queued.
    expanded: HashSet<u64>,
    /// The furthest of them in the archive.
    position: u64,
    stop: bool,
}

impl State {
    /// Queues the subdirectories among `children`.
    fn queue_subdirectories(&mut self, children: &[Arc<Node>]) {
        for child in children {
            if matches!(child.kind, Kind::Directory { .. }) && !self.listed.contains_key(&child.ino)
            {
                self.queue.insert(child.ino, Arc::downgrade(child));
            }
        }
    }

    /// The next directory to list ahead, if one is close enough to the walk.
    fn next(&mut self) -> Option<Weak<Node>> {
        while let Some(entry) = self.queue.first_entry() {
            let ino = *entry.key();
            // Behind the walk: listed already, or passed over.
            if ino <= self.position || self.listed.contains_key(&ino) {
                entry.remove();
                continue;
            }
            if ino > self.position.saturating_add(AHEAD) {
                return None;
            }
            return Some(entry.remove());
        }
        None
    }
}

impl Lister {
    /// Starts the listing thread.
    pub(crate) fn start(archive: Arc<Archive>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
        });
        let (theirs, their_archive) = (Arc::clone(&shared), Arc::clone(&archive));
        let thread = std::thread::Builder::new()
            .name("list-ahead".into())
            .spawn(move || list_ahead(&their_archive, &theirs))?;
        Ok(Self {
            archive,
            shared,
            thread: Some(thread),
        })
    }

    /// The kernel lists `dir`, whose children are `children`: when it is walking the tree,
    /// the subdirectories among them (and among its parent's) are listed ahead of it.
    pub(crate) fn listing(&self, dir: &Arc<Node>, children: &[Arc<Node>]) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.listed.insert(dir.ino, Arc::downgrade(dir)).is_some() {
            return;
        }
        state.position = state.position.max(dir.ino);
        // (The root is its own parent.)
        let parent = match state.listed.get(&dir.parent) {
            Some(parent) if dir.parent != dir.ino => parent.upgrade(),
            _ => return,
        };
        state.expanded.insert(dir.ino);
        state.queue_subdirectories(children);
        if let Some(parent) = parent
            && state.expanded.insert(parent.ino)
        {
            // Listed already: this only looks the children up.
            drop(state);
            let siblings = self.archive.children(&parent);
            state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(siblings) = siblings {
                state.queue_subdirectories(&siblings);
            }
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for Lister {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The listing thread: the queued directories close to the walk, one after the other.
fn list_ahead(archive: &Archive, shared: &Shared) {
    super::background::work_ahead();
    loop {
        let next = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if state.stop {
                    return;
                }
                if let Some(next) = state.next() {
                    break next;
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(dir) = next.upgrade() else {
            continue;
        };
        match archive.children(&dir) {
            Ok(children) => shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .queue_subdirectories(&children),
            // The kernel's own listing reports it.
            Err(e) => log::debug!("listing {} ahead: {e}", String::from_utf8_lossy(&dir.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::archive::testing::{open, plain};
    use otasync_core::catar::{Encoder, S_IFDIR, S_IFREG};
    use std::time::{Duration, Instant};

    /// An archive of `a/b/c/` and `a/f`, `d/`.
    fn archive() -> Archive {
        let dir = plain(S_IFDIR | 0o755);
        let mut enc = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &dir).unwrap();
        enc.directory(b"a", &dir).unwrap();
        enc.directory(b"b", &dir).unwrap();
        enc.directory(b"c", &dir).unwrap();
        enc.end_directory().unwrap();
        enc.end_directory().unwrap();
        enc.file(b"f", &plain(S_IFREG | 0o644), 1).unwrap();
        enc.payload(b"f").unwrap();
        enc.end_directory().unwrap();
        enc.directory(b"d", &dir).unwrap();
        enc.end_directory().unwrap();
        open(&enc.finish().unwrap()).unwrap()
    }

    fn child(archive: &Archive, dir: &Node, name: &[u8]) -> Arc<Node> {
        archive.lookup(dir, name).unwrap().unwrap()
    }

    #[test]
    fn a_walk_is_listed_ahead_and_a_single_listing_is_not() {
        let archive = Arc::new(archive());
        let lister = Lister::start(Arc::clone(&archive)).unwrap();
        let root = Arc::clone(archive.root());
        let a = child(&archive, &root, b"a");
        let b = child(&archive, &a, b"b");
        let c = child(&archive, &b, b"c");
        let d = child(&archive, &root, b"d");
        // The kernel lists the root alone: nothing below it is listed ahead.
        lister.listing(&root, &archive.children(&root).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!archive.has_children(&a) && !archive.has_children(&d));
        // Then `a`, a subdirectory of a listed one: a walk. Its subdirectories are listed
        // ahead, and theirs, in archive order.
        lister.listing(&a, &archive.children(&a).unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(archive.has_children(&b) && archive.has_children(&c)) {
            assert!(Instant::now() < deadline, "b and c were not listed ahead");
            std::thread::sleep(Duration::from_millis(5));
        }
        // `d`, shown in the root's listing before the walk began, is listed ahead too.
        while !archive.has_children(&d) {
            assert!(Instant::now() < deadline, "d was not listed ahead");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
