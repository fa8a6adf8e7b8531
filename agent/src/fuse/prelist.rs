//! Listing ahead for `mount`: a program walking the tree (`find`, `ls -lR`, `du`, `cp -r`)
//! lists directories in archive order, each after its parent. Once the kernel lists a
//! directory whose parent it has listed (a walk), a thread decodes the children of the
//! subdirectories it has been shown and of theirs in turn, in archive order, up to [`AHEAD`] bytes of archive past
//! the furthest directory the kernel has listed. The walk then finds those listings ready:
//! decoding a directory's entries fetches and decodes the chunks holding them (for small
//! files, their contents too), which the thread does while the walking program is busy
//! with what it has. A single listing (`ls DIR`) starts nothing.

use super::archive::{Archive, Kind, Node};
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

/// Archive bytes past the furthest directory listed by the kernel within which directories
/// are listed ahead.
const AHEAD: u64 = 32 << 20;

/// Lists directories ahead of a walk; dropped, it stops after the directory at hand.
pub(crate) struct Lister {
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
    listed: HashSet<u64>,
    /// The furthest of them in the archive.
    position: u64,
    stop: bool,
}

impl State {
    /// Queues the subdirectories among `children`.
    fn queue_subdirectories(&mut self, children: &[Arc<Node>]) {
        for child in children {
            if matches!(child.kind, Kind::Directory { .. }) && !self.listed.contains(&child.ino) {
                self.queue.insert(child.ino, Arc::downgrade(child));
            }
        }
    }

    /// The next directory to list ahead, if one is close enough to the walk.
    fn next(&mut self) -> Option<Weak<Node>> {
        while let Some(entry) = self.queue.first_entry() {
            let ino = *entry.key();
            // Behind the walk: listed already, or passed over.
            if ino <= self.position || self.listed.contains(&ino) {
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
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("list-ahead".into())
            .spawn(move || list_ahead(&archive, &theirs))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The kernel lists `dir`, whose children are `children`: when it is walking the tree,
    /// the subdirectories among them are listed ahead of it.
    pub(crate) fn listing(&self, dir: &Node, children: &[Arc<Node>]) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.listed.insert(dir.ino) {
            return;
        }
        state.position = state.position.max(dir.ino);
        if !state.listed.contains(&dir.parent) {
            return;
        }
        state.queue_subdirectories(children);
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
