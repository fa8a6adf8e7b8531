//! The in-memory cache of decoded, verified chunks behind a mount: least recently used chunks
//! go first once the cache holds more than its byte budget. A chunk being loaded has a slot
//! already, so concurrent readers (and prefetchers) of the same chunk wait for one load instead
//! of repeating it.

use otasync_core::ChunkId;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Condvar, Mutex};

/// Decoded bytes of a chunk, shared by every reader.
pub(crate) type ChunkData = Arc<Vec<u8>>;

/// What a slot holds.
enum State {
    /// A thread is loading the chunk.
    Loading,
    /// The chunk's bytes.
    Ready(ChunkData),
    /// The load failed (the slot is already out of the cache; a later read tries again).
    Failed(io::ErrorKind, String),
}

/// One chunk's place in the cache.
pub(crate) struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

impl Slot {
    /// Waits until the chunk is loaded (or failed to load).
    pub(crate) fn wait(&self) -> io::Result<ChunkData> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*state {
                State::Loading => {
                    state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                State::Ready(data) => return Ok(Arc::clone(data)),
                State::Failed(kind, message) => return Err(io::Error::new(*kind, message.clone())),
            }
        }
    }

    fn ready(&self) -> Option<ChunkData> {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready(data) => Some(Arc::clone(data)),
            _ => None,
        }
    }

    fn is_loading(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Loading
        )
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.ready.notify_all();
    }
}

/// What [`MemoryCache::claim`] found.
pub(crate) enum Claim {
    /// The chunk is in the cache.
    Ready(ChunkData),
    /// Another thread is loading it: wait on the slot.
    Loading(Arc<Slot>),
    /// Nobody has it: the caller loads it and calls [`MemoryCache::fill`].
    Mine(Arc<Slot>),
}

struct Entry {
    slot: Arc<Slot>,
    /// Position in the use order.
    tick: u64,
    /// Bytes the chunk takes.
    bytes: usize,
}

struct Inner {
    entries: HashMap<ChunkId, Entry>,
    /// Chunks by last use, oldest first.
    order: BTreeMap<u64, ChunkId>,
    tick: u64,
    bytes: usize,
}

/// A byte-bounded LRU cache of chunks.
pub(crate) struct MemoryCache {
    inner: Mutex<Inner>,
    budget: usize,
}

impl MemoryCache {
    /// An empty cache holding at most about `budget` bytes of chunks (chunks being loaded may
    /// exceed it for a moment).
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
            }),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks chunk `id` (of `bytes` bytes) up, claiming a slot to load it into when it is
    /// neither cached nor being loaded.
    pub(crate) fn claim(&self, id: &ChunkId, bytes: usize) -> Claim {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.entries.get_mut(id) {
            let old = std::mem::replace(&mut entry.tick, tick);
            let slot = Arc::clone(&entry.slot);
            inner.order.remove(&old);
            inner.order.insert(tick, *id);
            drop(inner);
            return match slot.ready() {
                Some(data) => Claim::Ready(data),
                None => Claim::Loading(slot),
            };
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Loading),
            ready: Condvar::new(),
        });
        inner.entries.insert(
            *id,
            Entry {
                slot: Arc::clone(&slot),
                tick,
                bytes,
            },
        );
        inner.order.insert(tick, *id);
        inner.bytes += bytes;
        self.evict(&mut inner);
        Claim::Mine(slot)
    }

    /// True when chunk `id` is cached or being loaded.
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.lock().entries.contains_key(id)
    }

    /// Ends the load of a slot claimed with [`Self::claim`]: a failure leaves the cache, so
    /// the next read tries again.
    pub(crate) fn fill(&self, id: &ChunkId, slot: &Slot, result: &io::Result<ChunkData>) {
        match result {
            Ok(data) => slot.set(State::Ready(Arc::clone(data))),
            Err(e) => {
                let mut inner = self.lock();
                if let Some(entry) = inner.entries.remove(id) {
                    inner.order.remove(&entry.tick);
                    inner.bytes -= entry.bytes;
                }
                drop(inner);
                slot.set(State::Failed(e.kind(), e.to_string()));
            }
        }
    }

    /// Drops the least recently used loaded chunks until the budget is kept.
    fn evict(&self, inner: &mut Inner) {
        let mut skipped = Vec::new();
        while inner.bytes > self.budget {
            let Some((tick, id)) = inner.order.pop_first() else {
                break;
            };
            let loading = inner.entries.get(&id).is_some_and(|e| e.slot.is_loading());
            if loading {
                skipped.push((tick, id));
                continue;
            }
            if let Some(entry) = inner.entries.remove(&id) {
                inner.bytes -= entry.bytes;
            }
        }
        inner.order.extend(skipped);
    }

    /// Bytes of chunks held or being loaded.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::DigestAlgorithm;

    fn id(i: u8) -> ChunkId {
        DigestAlgorithm::Sha256.digest(&[i])
    }

    fn load(cache: &MemoryCache, i: u8, bytes: usize) {
        match cache.claim(&id(i), bytes) {
            Claim::Mine(slot) => cache.fill(&id(i), &slot, &Ok(Arc::new(vec![i; bytes]))),
            _ => panic!("chunk {i} was not new"),
        }
    }

    #[test]
    fn least_recently_used_chunks_go_first() {
        let cache = MemoryCache::new(300);
        for i in 0..3 {
            load(&cache, i, 100);
        }
        // Using chunk 0 makes chunk 1 the oldest.
        assert!(matches!(cache.claim(&id(0), 100), Claim::Ready(d) if d[0] == 0));
        load(&cache, 3, 100);
        assert!(!cache.contains(&id(1)));
        assert!(cache.contains(&id(0)) && cache.contains(&id(2)) && cache.contains(&id(3)));
        assert_eq!(cache.bytes(), 300);
    }

    #[test]
    fn loading_chunks_are_shared_and_not_evicted() {
        let cache = MemoryCache::new(100);
        let Claim::Mine(slot) = cache.claim(&id(7), 80) else {
            panic!("new chunk");
        };
        let Claim::Loading(waiting) = cache.claim(&id(7), 80) else {
            panic!("being loaded");
        };
        // Another chunk pushes the cache over budget; the loading one stays.
        load(&cache, 8, 80);
        assert!(cache.contains(&id(7)));
        let waiter = std::thread::spawn(move || waiting.wait().map(|d| d.len()));
        cache.fill(&id(7), &slot, &Ok(Arc::new(vec![7; 80])));
        assert_eq!(waiter.join().unwrap().unwrap(), 80);
    }

    #[test]
    fn failures_are_reported_and_retried() {
        let cache = MemoryCache::new(1000);
        let Claim::Mine(slot) = cache.claim(&id(1), 10) else {
            panic!("new chunk");
        };
        let Claim::Loading(waiting) = cache.claim(&id(1), 10) else {
            panic!("being loaded");
        };
        cache.fill(&id(1), &slot, &Err(io::Error::other("no store has it")));
        let err = waiting.wait().unwrap_err();
        assert!(err.to_string().contains("no store has it"));
        assert!(!cache.contains(&id(1)));
        assert_eq!(cache.bytes(), 0);
        assert!(matches!(cache.claim(&id(1), 10), Claim::Mine(_)));
    }
}
