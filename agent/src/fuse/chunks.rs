//! The stream an index describes, read at any offset: the offset is mapped to its chunk by a
//! binary search over the chunk ends, and the chunk is taken from the in-memory cache, else
//! from a seed (its bytes re-hashed), else from the stores (decoded and verified). Reads that
//! go forward make worker threads fetch the next chunks ahead of the reader.

use super::memcache::{ChunkData, Claim, MemoryCache, Slot};
use super::source::{Access, ReadAt};
use crate::compression::Decompressor;
use crate::digest_batch::digest_each;
use crate::seed::SeedSet;
use crate::store::{Found, StoreChain};
use otasync_core::ChunkId;
use otasync_core::index::ChunkEntry;
use otasync_core::{DigestAlgorithm, Index};
use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;

/// Default byte budget of the in-memory chunk cache.
pub(crate) const DEFAULT_MEMORY_CACHE: usize = 128 << 20;

/// Chunks a thread fetches from local stores and then checks side by side (multi-buffer
/// hashing, [`digest_each`]).
pub(crate) const CHECK_TOGETHER: usize = 8;

/// Bytes fetched ahead of a reader going forward through a blob.
pub(crate) const BLOB_READ_AHEAD: u64 = 16 << 20;

/// How far (in chunks) past the last chunk read a read still counts as going forward (the
/// kernel sends read-ahead requests out of order).
const FORWARD_SLACK: usize = 64;
/// How far (in chunks) behind it a read still counts as the same reader.
const BACKWARD_SLACK: usize = 8;
/// Chunks a forward reader's read-ahead is extended by at least (unless it caught up).
const TOP_UP: usize = 2 * CHECK_TOGETHER;
/// Chunks the prefetch queue holds at least (a listing hints at all its entries' chunks at once).
const QUEUED: usize = 256;
/// Readers going forward that are told apart (a program, and `mount`'s own read-ahead).
const STREAMS: usize = 4;

/// How a [`ChunkedBlob`] behaves.
pub(crate) struct BlobSettings {
    /// Byte budget of the in-memory chunk cache.
    pub(crate) memory_cache: usize,
    /// Threads fetching chunks ahead of sequential readers (0: none).
    pub(crate) prefetch_threads: usize,
    /// Chunks a thread has fetched and not yet checked, at most ([`CHECK_TOGETHER`]; 1 for
    /// remote stores, whose chunks then go into the cache as soon as each arrives).
    pub(crate) check_together: usize,
    /// Bytes fetched ahead of a reader going forward.
    pub(crate) read_ahead: u64,
}

/// Where chunks came from, for the statistics printed at the end.
#[derive(Debug, Default)]
pub(crate) struct BlobStats {
    /// Chunks read from a seed.
    pub(crate) from_seeds: AtomicU64,
    /// Chunks fetched from a store.
    pub(crate) from_stores: AtomicU64,
    /// Chunks that failed to load.
    pub(crate) failed: AtomicU64,
    /// Chunks loaded by the prefetch workers (included in the counts above).
    pub(crate) prefetched: AtomicU64,
}

/// What the readers and the prefetch workers share.
struct Shared {
    chunks: Vec<ChunkEntry>,
    digest: DigestAlgorithm,
    stores: StoreChain,
    seeds: SeedSet,
    cache: MemoryCache,
    stats: BlobStats,
}

/// The blob or archive stream of an index, read lazily chunk by chunk.
pub(crate) struct ChunkedBlob {
    shared: Arc<Shared>,
    /// Queue of chunk numbers for the prefetch workers (none without workers).
    prefetch: Option<SyncSender<usize>>,
    workers: Vec<JoinHandle<()>>,
    /// Chunks ahead of a forward reader.
    window: usize,
    /// Chunks a thread fetches and then checks together, at most.
    together: usize,
    /// The readers going forward.
    streams: Mutex<Streams>,
}

/// Where each of a few forward readers is; the one used least recently gives way to a new one.
#[derive(Default)]
struct Streams {
    cursors: [Cursor; STREAMS],
    /// Reads so far (the clock of `used`).
    tick: u64,
}

#[derive(Clone, Copy, Default)]
struct Cursor {
    /// The furthest chunk this reader asked for.
    last: usize,
    /// The furthest chunk queued for prefetching on its behalf.
    queued: usize,
    /// When it last read.
    used: u64,
}

thread_local! {
    /// Each thread's zstd context and buffer for stored chunks.
    static SCRATCH: RefCell<(Decompressor, Vec<u8>)> = RefCell::new((Decompressor::default(), Vec::new()));
}

impl Shared {
    fn start(&self, i: usize) -> u64 {
        match i {
            0 => 0,
            _ => self.chunks[i - 1].end,
        }
    }

    /// Chunk `i`, from the cache or loaded into it.
    fn chunk(&self, i: usize) -> io::Result<ChunkData> {
        let id = self.chunks[i].id;
        let len = (self.chunks[i].end - self.start(i)) as usize;
        match self.cache.claim(&id, len) {
            Claim::Ready(data) => Ok(data),
            Claim::Loading(slot) => slot.wait(),
            Claim::Mine(slot) => self.finish(i, &slot, self.load(i, len)),
        }
    }

    /// Reads chunk `i` of `len` bytes from a seed or the stores, verified.
    fn load(&self, i: usize, len: usize) -> io::Result<Vec<u8>> {
        let id = self.chunks[i].id;
        // One byte more: the decompressor needs it to tell "too large" from "exactly right".
        let mut out = Vec::with_capacity(len + 1);
        if let Some(at) = self.seeds.locate(&id) {
            match self.seeds.read(at, len, &mut out) {
                Ok(()) if crate::sha512_stream::digest(self.digest, &out) == id => {
                    self.stats.from_seeds.fetch_add(1, Ordering::Relaxed);
                    return Ok(out);
                }
                Ok(()) => log::info!(
                    "chunk {id} in seed {} has changed: fetched instead",
                    self.seeds.name(at.seed)
                ),
                Err(e) => log::warn!("reading seed {}: {e}", self.seeds.name(at.seed)),
            }
        }
        SCRATCH.with_borrow_mut(|(decompressor, stored)| {
            let mut problems = None;
            self.stores
                .fetch_verified(
                    &id,
                    len,
                    self.digest,
                    0,
                    decompressor,
                    stored,
                    &mut out,
                    &mut problems,
                )
                .map_err(|e| io::Error::other(e.to_string()))
        })?;
        self.stats.from_stores.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}

/// A chunk fetched and decoded, not yet checked against its id.
struct Unchecked {
    i: usize,
    slot: Arc<Slot>,
    data: Vec<u8>,
    /// The store it came from with its stored form (when the disk cache keeps it), or `None`
    /// for a seed.
    from: Option<(Found, Vec<u8>)>,
}

impl AsRef<[u8]> for Unchecked {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Shared {
    /// Loads the chunks `next` names that nobody has or is loading: each is fetched and
    /// decoded, then checked side by side with others ([`digest_each`]), at most `together`
    /// at a time, and goes into the cache as soon as its check is done. `next` is told when no
    /// chunk is in progress (it may then wait for one); `None` at that point ends the loading,
    /// and otherwise means none is at hand now. A chunk that fails the check (or to fetch)
    /// takes the careful path of [`Self::load`] instead.
    fn load_each(&self, together: usize, mut next: impl FnMut(bool) -> Option<usize>) {
        digest_each(
            self.digest,
            together,
            |idle| loop {
                let i = next(idle)?;
                // (A chunk in the cache keeps its place in the eviction order.)
                if i < self.chunks.len()
                    && !self.cache.contains(&self.chunks[i].id)
                    && let Some(chunk) = self.fetch_unchecked(i)
                {
                    return Some(chunk);
                }
            },
            |chunk, id| self.check(chunk, id),
        );
    }

    /// Claims chunk `i` and fetches and decodes it, unless it is in the cache or being
    /// loaded, or fails to load (which the careful path then reports).
    fn fetch_unchecked(&self, i: usize) -> Option<Unchecked> {
        let id = self.chunks[i].id;
        let len = (self.chunks[i].end - self.start(i)) as usize;
        let Claim::Mine(slot) = self.cache.claim(&id, len) else {
            return None;
        };
        let mut data = Vec::with_capacity(len + 1);
        if let Some(at) = self.seeds.locate(&id)
            && self.seeds.read(at, len, &mut data).is_ok()
        {
            return Some(Unchecked {
                i,
                slot,
                data,
                from: None,
            });
        }
        let fetched = SCRATCH.with_borrow_mut(|(decompressor, stored)| {
            let mut problems = None;
            let found = self.stores.fetch_decoded(
                &id,
                len,
                0,
                decompressor,
                stored,
                &mut data,
                &mut problems,
            );
            // The stored form is copied only for the disk cache.
            found.map(|f| {
                f.map(|f| match self.stores.keeps(f) {
                    true => (f, stored.clone()),
                    false => (f, Vec::new()),
                })
            })
        });
        match fetched {
            Ok(Some(from)) => Some(Unchecked {
                i,
                slot,
                data,
                from: Some(from),
            }),
            // Missing or unreadable: the careful path reports it (and a reader that needs
            // the chunk tries again).
            _ => {
                let _ = self.finish(i, &slot, self.load(i, len));
                None
            }
        }
    }

    /// Puts a fetched chunk whose digest is `id` into the cache, or loads it again carefully
    /// when that is not its id.
    fn check(&self, chunk: Unchecked, id: ChunkId) {
        let i = chunk.i;
        let result = if id == self.chunks[i].id {
            match &chunk.from {
                Some((found, stored)) => {
                    self.stores.remember(&id, *found, stored);
                    self.stats.from_stores.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.stats.from_seeds.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(chunk.data)
        } else {
            self.load(i, chunk.data.len())
        };
        self.stats.prefetched.fetch_add(1, Ordering::Relaxed);
        let _ = self.finish(i, &chunk.slot, result);
    }

    /// Ends the load of chunk `i` into `slot`.
    fn finish(&self, i: usize, slot: &Slot, result: io::Result<Vec<u8>>) -> io::Result<ChunkData> {
        let id = self.chunks[i].id;
        let result = result.map(Arc::new);
        if let Err(e) = &result {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            log::warn!("chunk {id}: {e}");
        }
        self.cache.fill(&id, slot, &result);
        result
    }
}

impl ChunkedBlob {
    /// The stream of `index`, read from `seeds` first and then `stores`.
    pub(crate) fn new(
        index: Index,
        stores: StoreChain,
        seeds: SeedSet,
        settings: &BlobSettings,
    ) -> io::Result<Self> {
        let window = (settings.read_ahead / index.header.sizes.avg.max(1)).max(2) as usize;
        let shared = Arc::new(Shared {
            digest: index.header.digest(),
            chunks: index.chunks,
            stores,
            seeds,
            cache: MemoryCache::new(settings.memory_cache),
            stats: BlobStats::default(),
        });
        let mut blob = Self {
            shared,
            prefetch: None,
            workers: Vec::new(),
            window,
            together: settings.check_together.max(1),
            streams: Mutex::new(Streams::default()),
        };
        if settings.prefetch_threads > 0 {
            let (sender, receiver) = sync_channel(window.max(QUEUED));
            let receiver = Arc::new(Mutex::new(receiver));
            for n in 0..settings.prefetch_threads {
                let shared = Arc::clone(&blob.shared);
                let receiver = Arc::clone(&receiver);
                let together = settings.check_together.max(1);
                let worker = std::thread::Builder::new()
                    .name(format!("prefetch-{n}"))
                    .spawn(move || prefetch_worker(&shared, &receiver, together))?;
                blob.workers.push(worker);
            }
            blob.prefetch = Some(sender);
        }
        Ok(blob)
    }

    /// Where the chunks came from so far.
    pub(crate) fn stats(&self) -> &BlobStats {
        &self.shared.stats
    }

    /// The stores chunks are fetched from.
    pub(crate) fn stores(&self) -> &StoreChain {
        &self.shared.stores
    }

    /// The chunk holding byte `offset` (which must be inside the stream).
    fn chunk_at(&self, offset: u64) -> usize {
        self.shared.chunks.partition_point(|c| c.end <= offset)
    }

    /// Queues the chunks after `i` for the workers when its reader is going forward.
    fn read_ahead(&self, i: usize) {
        let Some(queue) = &self.prefetch else {
            return;
        };
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.tick += 1;
        let tick = streams.tick;
        let near = |c: &Cursor| {
            c.used > 0
                && (c.last.saturating_sub(BACKWARD_SLACK)..=c.last + FORWARD_SLACK).contains(&i)
        };
        let Some(cursor) = streams.cursors.iter_mut().find(|c| near(c)) else {
            // A new reader (or one that jumped): it gets read-ahead once it goes forward.
            if let Some(oldest) = streams.cursors.iter_mut().min_by_key(|c| c.used) {
                *oldest = Cursor {
                    last: i,
                    queued: i,
                    used: tick,
                };
            }
            return;
        };
        cursor.used = tick;
        cursor.last = cursor.last.max(i);
        let last = self.shared.chunks.len() - 1;
        let end = (i + self.window).min(last);
        if cursor.queued > i && end < cursor.queued + TOP_UP && end < last {
            // Enough queued still: the queue is topped up several chunks at a time, which a
            // worker then checks side by side.
            return;
        }
        let from = cursor.queued.max(i) + 1;
        cursor.queued = cursor.queued.max(end);
        for next in from..=end {
            match queue.try_send(next) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    // Try again from here on the next read.
                    cursor.queued = next - 1;
                    break;
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
    }
}

/// Loads queued chunks into the cache until the queue closes, up to `together` at a time.
fn prefetch_worker(shared: &Shared, queue: &Mutex<Receiver<usize>>, together: usize) {
    super::background::work_ahead();
    shared.load_each(together, |idle| match idle {
        // Nothing in progress: wait for a chunk.
        true => queue.lock().unwrap_or_else(|p| p.into_inner()).recv().ok(),
        // Only one at hand: a worker holding the lock is waiting for the queue to fill (and
        // waiting for it here would keep this worker's chunks from readers).
        false => match queue.try_lock() {
            Ok(queue) => queue.try_recv().ok(),
            Err(TryLockError::Poisoned(queue)) => queue.into_inner().try_recv().ok(),
            Err(TryLockError::WouldBlock) => None,
        },
    });
}

impl Drop for ChunkedBlob {
    fn drop(&mut self) {
        self.prefetch = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl ReadAt for ChunkedBlob {
    fn read_at(&self, offset: u64, buf: &mut [u8], access: Access) -> io::Result<usize> {
        let size = self.size();
        let mut done = 0;
        while done < buf.len() && offset + (done as u64) < size {
            let at = offset + done as u64;
            let i = self.chunk_at(at);
            if access == Access::Program {
                // Queued first: the workers start on the next chunks while this one loads.
                self.read_ahead(i);
            }
            let data = self.shared.chunk(i)?;
            let within = (at - self.shared.start(i)) as usize;
            let n = (data.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Ok(done)
    }

    fn size(&self) -> u64 {
        self.shared.chunks.last().map_or(0, |c| c.end)
    }

    /// Queues the chunks holding `ranges` for the prefetch workers, as many as the queue
    /// takes without waiting (the reader loads the others itself).
    fn will_read(&self, ranges: &[Range<u64>]) {
        let Some(queue) = &self.prefetch else {
            return;
        };
        for i in self.chunks_in(ranges) {
            if self.shared.cache.contains(&self.shared.chunks[i].id) {
                continue;
            }
            if queue.try_send(i).is_err() {
                return;
            }
        }
    }

    /// Loads the chunks holding `ranges` in this thread (checked side by side), ahead of
    /// whatever the prefetch workers have queued.
    fn fetch(&self, ranges: &[Range<u64>]) {
        let mut chunks = self.chunks_in(ranges);
        self.shared.load_each(self.together, |_| chunks.next());
    }
}

impl ChunkedBlob {
    /// The chunks holding the bytes of `ranges` (ascending), each once.
    fn chunks_in<'a>(&'a self, ranges: &'a [Range<u64>]) -> impl Iterator<Item = usize> + 'a {
        let size = self.size();
        let mut next = 0;
        ranges
            .iter()
            .filter(move |r| r.start < size && !r.is_empty())
            .flat_map(move |range| {
                // Many entries share a chunk: each is looked at once.
                let first = self.chunk_at(range.start).max(next);
                let last = self.chunk_at(range.end.min(size) - 1);
                next = next.max(last + 1);
                first..=last
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::{Compression, Compressor};
    use crate::store::{ChunkSink, ChunkStore, LocalStore};
    use otasync_core::ChunkSizes;
    use otasync_core::index::IndexHeader;

    /// A blob of `n` chunks of `len` bytes each (chunk `i` filled with byte `i`), stored in a
    /// fresh local store, with SHA-256 chunk ids.
    fn blob(dir: &std::path::Path, n: u8, len: usize, threads: usize) -> ChunkedBlob {
        blob_with(dir, n, len, threads, DigestAlgorithm::Sha256)
    }

    /// The same with `digest` chunk ids.
    fn blob_with(
        dir: &std::path::Path,
        n: u8,
        len: usize,
        threads: usize,
        digest: DigestAlgorithm,
    ) -> ChunkedBlob {
        let store = LocalStore::new(dir);
        store.create().unwrap();
        let mut index = Index::new(IndexHeader {
            feature_flags: match digest {
                DigestAlgorithm::Sha512_256 => otasync_core::flags::SHA512_256,
                DigestAlgorithm::Sha256 => 0,
            },
            sizes: ChunkSizes {
                min: 64,
                avg: 64,
                max: 1 << 20,
            },
        });
        let (mut compressor, mut scratch) = (Compressor::new(3), Vec::new());
        for i in 0..n {
            let data = vec![i; len];
            let id = digest.digest(&data);
            store
                .put(
                    &id,
                    &data,
                    Compression::Zstd(3),
                    &mut compressor,
                    &mut scratch,
                )
                .unwrap();
            index.chunks.push(ChunkEntry {
                end: (usize::from(i) + 1) as u64 * len as u64,
                id,
            });
        }
        let stores = StoreChain::new(None, vec![Box::new(store) as Box<dyn ChunkStore>]);
        let settings = BlobSettings {
            memory_cache: 4 * len,
            prefetch_threads: threads,
            check_together: 3,
            read_ahead: 3 * len as u64,
        };
        ChunkedBlob::new(index, stores, SeedSet::empty(), &settings).unwrap()
    }

    #[test]
    fn reads_span_chunks_and_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        for threads in [0, 2] {
            let blob = blob(&dir.path().join(threads.to_string()), 20, 1000, threads);
            assert_eq!(blob.size(), 20_000);
            let mut buf = vec![0u8; 2500];
            assert_eq!(blob.read_at(1500, &mut buf, Access::Program).unwrap(), 2500);
            assert!(buf[..500].iter().all(|&b| b == 1));
            assert!(buf[500..1500].iter().all(|&b| b == 2));
            assert!(buf[1500..].iter().all(|&b| b == 3));
            // Forward reads through the whole blob, with prefetching.
            for (i, at) in (0..20_000).step_by(700).enumerate() {
                let n = blob.read_at(at, &mut buf[..700], Access::Program).unwrap();
                assert_eq!(n, 700.min(20_000 - at as usize), "read {i}");
                assert_eq!(buf[0], (at / 1000) as u8);
            }
            assert_eq!(blob.read_at(20_000, &mut buf, Access::Program).unwrap(), 0);
            assert_eq!(blob.read_at(19_999, &mut buf, Access::Program).unwrap(), 1);
        }
    }

    #[test]
    fn hinted_offsets_are_loaded_ahead_by_the_workers() {
        let dir = tempfile::tempdir().unwrap();
        let blob = blob(dir.path(), 20, 1000, 2);
        // Chunks 1 and 3 (two offsets in chunk 3), and an offset past the end (ignored).
        blob.will_read(&[1500..1501, 3000..3001, 3999..4000, 20_000..20_001]);
        let prefetched = || blob.stats().prefetched.load(Ordering::Relaxed);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while prefetched() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(prefetched(), 2, "the hinted chunks were not loaded ahead");
        let loaded = |i: usize| blob.shared.cache.contains(&blob.shared.chunks[i].id);
        assert!(
            loaded(1) && loaded(3),
            "the hinted chunks are not in the cache"
        );
        assert!(
            !loaded(0) && !loaded(2),
            "chunks nobody asked for were loaded"
        );
        let mut buf = [0u8; 10];
        assert_eq!(blob.read_at(3995, &mut buf, Access::Program).unwrap(), 10);
        assert_eq!(buf, [3, 3, 3, 3, 3, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn fetched_ranges_are_loaded_before_the_call_returns() {
        let dir = tempfile::tempdir().unwrap();
        // No workers: the caller loads them, three at a time at most (the cache holds four).
        let blob = blob(dir.path(), 20, 1000, 0);
        blob.fetch(&[1500..2500, 2600..2700, 9000..9001, 19_999..25_000]);
        let loaded = |i: usize| blob.shared.cache.contains(&blob.shared.chunks[i].id);
        let expected: Vec<bool> = (0..20).map(|i| [1, 2, 9, 19].contains(&i)).collect();
        assert_eq!((0..20).map(loaded).collect::<Vec<_>>(), expected);
        assert_eq!(blob.stats().from_stores.load(Ordering::Relaxed), 4);
        let mut buf = [0u8; 4];
        assert_eq!(blob.read_at(2998, &mut buf, Access::Hinted).unwrap(), 4);
        assert_eq!(buf, [2, 2, 3, 3]);
    }

    #[test]
    fn fetched_chunks_are_checked_side_by_side_and_a_wrong_one_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        for digest in [DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256] {
            let dir = dir.path().join(format!("{digest:?}"));
            // Three chunks in the lanes at a time, 20 in all (the cache holds four).
            let blob = blob_with(&dir, 20, 1000, 0, digest);
            // Chunk 7's file holds chunk 8's contents: it decodes, to the wrong bytes.
            let store = LocalStore::new(&dir);
            let path = |i: usize| store.chunk_path(&blob.shared.chunks[i].id, true);
            std::fs::copy(path(8), path(7)).unwrap();
            blob.fetch(std::slice::from_ref(&(0..20_000)));
            let stats = blob.stats();
            assert_eq!(stats.from_stores.load(Ordering::Relaxed), 19, "{digest:?}");
            assert_eq!(stats.failed.load(Ordering::Relaxed), 1, "{digest:?}");
            let mut buf = [0u8; 2];
            assert_eq!(blob.read_at(19_999, &mut buf, Access::Hinted).unwrap(), 1);
            assert_eq!(buf[0], 19);
            assert!(blob.read_at(7_000, &mut buf, Access::Hinted).is_err());
        }
    }

    #[test]
    fn a_corrupt_chunk_fails_the_read_not_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blob = blob(dir.path(), 4, 1000, 0);
        let store = LocalStore::new(dir.path());
        let victim = store.chunk_path(&blob.shared.chunks[2].id, true);
        let mut bytes = std::fs::read(&victim).unwrap();
        std::fs::remove_file(&victim).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&victim, bytes).unwrap();
        let mut buf = vec![0u8; 100];
        assert!(blob.read_at(2100, &mut buf, Access::Program).is_err());
        assert_eq!(blob.read_at(1100, &mut buf, Access::Program).unwrap(), 100);
        assert_eq!(blob.stats().failed.load(Ordering::Relaxed), 1);
    }
}
