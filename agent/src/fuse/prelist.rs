//! Listing ahead for `mount`: a program walking the tree (`find`, `ls -lR`, `du`, `cp -r`)
//! lists directories in archive order, each after its parent. Once the kernel lists a
//! directory whose parent it has listed (a walk), a thread decodes the children of the
//! subdirectories of both and of every directory listed after, and of theirs in turn, in
//! archive order, up to [`AHEAD`] bytes of archive past the furthest directory the kernel
//! has listed. The walk then finds those listings ready:
//! decoding a directory's entries fetches and decodes the chunks holding them (for small
//! files, their contents too), which the thread does while the walking program is busy
//! with what it has. A single listing (`ls DIR`) starts nothing.
//!
//! When the walk reads file contents too (`find -exec cat`, `tar`, `cp -r`), the thread then
//! decodes the archive itself ahead of it, [`WARM_AHEAD`] bytes past that directory, into the
//! chunk cache: what the walk reads next is decoded while the program is busy with files the
//! kernel has cached already, instead of while it waits.

use super::archive::{Archive, Kind, Node};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

/// Archive bytes past the furthest directory listed by the kernel within which directories
/// are listed ahead.
const AHEAD: u64 = 32 << 20;
/// Archive bytes past it whose chunks are decoded ahead, once no directory is left to list,
/// when the walk reads file contents: what it reads next. Half the chunk cache: the chunks
/// decoded ahead must stay there until they are read (with 3/4 of it, they are evicted first).
const WARM_AHEAD: u64 = super::chunks::DEFAULT_MEMORY_CACHE as u64 / 2;
/// Archive bytes decoded ahead in one go.
const WARM_STEP: u64 = 4 << 20;

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
    /// True once a program has read a file (the walk reads contents).
    reads: bool,
    /// Where the archive is decoded ahead up to.
    warmed: u64,
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

    /// The next archive bytes to decode ahead of a walk, if any are close enough to it.
    fn next_to_warm(&mut self) -> Option<Range<u64>> {
        if self.expanded.is_empty() || !self.reads {
            // No walk, or one that reads no contents (`ls -lR`, `find -name`).
            return None;
        }
        let start = self.warmed.max(self.position);
        let end = start
            .saturating_add(WARM_STEP)
            .min(self.position.saturating_add(WARM_AHEAD));
        (start < end).then(|| {
            self.warmed = end;
            start..end
        })
    }
}

/// What the listing thread does next.
enum Work {
    /// Lists a directory ahead.
    List(Weak<Node>),
    /// Decodes a stretch of the archive ahead.
    Warm(Range<u64>),
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

    /// A program starts reading a file: a walk reads contents, which are then decoded ahead.
    pub(crate) fn reading(&self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.reads {
            state.reads = true;
            self.shared.wake.notify_one();
        }
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
        let work = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if state.stop {
                    return;
                }
                if let Some(dir) = state.next() {
                    break Work::List(dir);
                }
                if let Some(range) = state.next_to_warm() {
                    break Work::Warm(range);
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let dir = match work {
            Work::List(dir) => dir,
            Work::Warm(range) => {
                archive.fetch_stream(range);
                continue;
            }
        };
        let Some(dir) = dir.upgrade() else {
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
        open(&archive_bytes()).unwrap()
    }

    /// The bytes of that archive.
    fn archive_bytes() -> Vec<u8> {
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
        enc.finish().unwrap()
    }

    /// An archive file that records the ranges fetched from it.
    struct Recording {
        file: crate::fuse::source::FileSource,
        fetched: Mutex<Vec<Range<u64>>>,
    }

    impl crate::fuse::source::ReadAt for Recording {
        fn read_at(
            &self,
            offset: u64,
            buf: &mut [u8],
            access: crate::fuse::source::Access,
        ) -> io::Result<usize> {
            self.file.read_at(offset, buf, access)
        }
        fn size(&self) -> u64 {
            self.file.size()
        }
        fn fetch(&self, ranges: &[Range<u64>]) {
            self.fetched.lock().unwrap().extend_from_slice(ranges);
        }
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

    #[test]
    fn a_walk_that_reads_is_decoded_ahead_within_bounds() {
        let mut bytes = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut bytes, &archive_bytes()).unwrap();
        let source = Arc::new(Recording {
            file: crate::fuse::source::FileSource::new(bytes).unwrap(),
            fetched: Mutex::default(),
        });
        let archive = Arc::new(Archive::open(Arc::clone(&source) as _).unwrap());
        let lister = Lister::start(Arc::clone(&archive)).unwrap();
        let warmed = || -> Vec<Range<u64>> {
            let fetched = source.fetched.lock().unwrap();
            fetched
                .iter()
                .filter(|r| r.end - r.start == WARM_STEP)
                .cloned()
                .collect()
        };
        let root = Arc::clone(archive.root());
        let a = child(&archive, &root, b"a");
        lister.listing(&root, &archive.children(&root).unwrap());
        lister.listing(&a, &archive.children(&a).unwrap());
        // A walk that reads nothing: nothing is decoded ahead.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !archive.has_children(&child(&archive, &root, b"d")) {
            assert!(Instant::now() < deadline, "d was not listed ahead");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            warmed().is_empty(),
            "decoded ahead of a walk that reads no file"
        );
        // A program reads a file: the archive after `a` is decoded ahead, WARM_AHEAD of it.
        lister.reading();
        let window = WARM_AHEAD / WARM_STEP;
        while (warmed().len() as u64) < window {
            assert!(
                Instant::now() < deadline,
                "not decoded ahead: {:?}",
                warmed()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let expected: Vec<Range<u64>> = (0..window)
            .map(|k| a.ino + k * WARM_STEP..a.ino + (k + 1) * WARM_STEP)
            .collect();
        assert_eq!(warmed(), expected);
    }
}
