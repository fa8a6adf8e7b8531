//! Chunk stores: where chunks are looked up by id, in order, and verified before use.

pub(crate) mod cache;
pub(crate) mod http;
pub(crate) mod local;
pub(crate) mod s3;

pub(crate) use cache::ChunkCache;
pub(crate) use local::LocalStore;

use crate::compression::{Compression, Compressor, Decompressor};
use crate::error::{Error, Result};
use local::PutOutcome;
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io;

/// Something new chunks are written to: a store directory, or an S3 bucket when publishing.
pub(crate) trait ChunkSink: Sync {
    /// Stores `data` (whose id is `id`) in the form `compression` says, unless the sink has it
    /// already. `compressor` and `scratch` are the calling worker's.
    fn put(
        &self,
        id: &ChunkId,
        data: &[u8],
        compression: Compression,
        compressor: &mut Compressor,
        scratch: &mut Vec<u8>,
    ) -> Result<PutOutcome>;
}

/// Compresses chunk `id` (`data`) into `out` for a sink.
fn compress_chunk(
    compressor: &mut Compressor,
    id: &ChunkId,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    compressor.compress(data, out).map_err(|e| Error::Io {
        context: format!("compressing chunk {id}"),
        source: io::Error::other(e.to_string()),
    })
}

/// Something chunks can be read from.
pub(crate) trait ChunkStore: Send + Sync {
    /// How the store is named in messages.
    fn name(&self) -> &str;

    /// Reads chunk `id` as stored into `buf`, refusing more than `limit` stored bytes.
    /// Returns whether the stored form is compressed, or `None` when the store lacks it.
    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>>;

    /// The stored size of chunk `id`, or `None` when the store lacks it.
    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>>;

    /// True for stores across a network (fetches wait on it rather than on the CPU).
    fn is_remote(&self) -> bool {
        false
    }

    /// Network requests sent so far, retries included (0 for local stores).
    fn requests(&self) -> u64 {
        0
    }

    /// Removes chunk `id` (both stored forms); false when there was nothing to remove.
    fn remove(&self, id: &ChunkId) -> io::Result<bool> {
        let _ = id;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{} is read-only", self.name()),
        ))
    }
}

/// Most a compressed chunk of `size` bytes may occupy: zstd's worst case (`ZSTD_COMPRESSBOUND`)
/// plus room for frame headers.
pub(crate) fn stored_size_limit(size: u64) -> u64 {
    size + size / 128 + 1024
}

/// Stores tried in order for every chunk, after the local chunk cache if there is one.
pub(crate) struct StoreChain {
    cache: Option<ChunkCache>,
    stores: Vec<Box<dyn ChunkStore>>,
}

/// Where a chunk was found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    /// The store's position in the chain (the cache, if any, is 0).
    pub(crate) store: usize,
    /// Whether its stored form is compressed.
    pub(crate) compressed: bool,
}

impl StoreChain {
    pub(crate) fn new(cache: Option<ChunkCache>, stores: Vec<Box<dyn ChunkStore>>) -> Self {
        Self { cache, stores }
    }

    /// The cache (if any) and the stores, in the order they are tried.
    fn all(&self) -> impl Iterator<Item = &dyn ChunkStore> {
        let cache = self.cache.iter().map(|c| c as &dyn ChunkStore);
        cache.chain(self.stores.iter().map(|s| s.as_ref()))
    }

    fn get(&self, i: usize) -> &dyn ChunkStore {
        self.all()
            .nth(i)
            .expect("store positions come from this chain")
    }

    /// Number of stores, the cache included.
    pub(crate) fn len(&self) -> usize {
        self.stores.len() + usize::from(self.cache.is_some())
    }

    /// Removes chunk `id` from store `store` of the chain.
    pub(crate) fn remove(&self, store: usize, id: &ChunkId) -> io::Result<bool> {
        self.get(store).remove(id)
    }

    /// Network requests each store has sent so far, in chain order.
    pub(crate) fn requests(&self) -> Vec<u64> {
        self.all().map(|s| s.requests()).collect()
    }

    /// True when some store is across a network.
    pub(crate) fn is_remote(&self) -> bool {
        self.all().any(|s| s.is_remote())
    }

    /// True when verified chunks are kept in a local cache.
    pub(crate) fn has_cache(&self) -> bool {
        self.cache.is_some()
    }

    /// True when the disk cache keeps chunks found as `found` (which [`Self::remember`] then
    /// wants their stored form for).
    pub(crate) fn keeps(&self, found: Found) -> bool {
        self.cache.is_some() && found.store != 0
    }

    /// Keeps a verified chunk in the cache, unless it came from there.
    pub(crate) fn remember(&self, id: &ChunkId, found: Found, stored: &[u8]) {
        if let Some(cache) = &self.cache
            && self.keeps(found)
            && let Err(e) = cache.keep(id, stored, found.compressed)
        {
            log::warn!("could not cache chunk {id}: {e}");
        }
    }

    /// Trims the cache to its size cap.
    pub(crate) fn finish(&self) -> Result<()> {
        if let Some(cache) = &self.cache {
            let removed = cache.prune()?;
            log::info!("cache: {removed} bytes of least recently used chunks removed");
        }
        Ok(())
    }

    /// The stored size of chunk `id` in the first store that has it.
    pub(crate) fn stored_size(&self, id: &ChunkId) -> Result<Option<u64>> {
        for store in self.all() {
            let size = store.stored_size(id).map_err(|source| Error::Io {
                context: format!("looking up chunk {id} in {}", store.name()),
                source,
            })?;
            if size.is_some() {
                return Ok(size);
            }
        }
        Ok(None)
    }

    /// The stores' names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.all().map(|s| s.name().to_owned()).collect()
    }

    /// Finds chunk `id` in the stores from index `first` on and decodes it into `out`, which
    /// then holds `size` bytes, not yet verified against the id. Returns the store's index, or
    /// `None` when no store from `first` on has a copy that decodes. Copies that do not decode
    /// are reported and recorded in `problems`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch_decoded(
        &self,
        id: &ChunkId,
        size: usize,
        first: usize,
        decompressor: &mut Decompressor,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        problems: &mut Option<Error>,
    ) -> Result<Option<Found>> {
        for (i, store) in self.all().enumerate().skip(first) {
            let compressed = match store.fetch(id, stored_size_limit(size as u64), scratch) {
                Ok(Some(compressed)) => compressed,
                Ok(None) => continue,
                Err(source) => {
                    // A store that cannot answer is passed over like one that lacks the chunk;
                    // the first such failure is what is reported if no store has it.
                    log::warn!("chunk {id}: {}: {source}", store.name());
                    problems.get_or_insert(Error::Io {
                        context: format!("fetching chunk {id} from {}", store.name()),
                        source,
                    });
                    continue;
                }
            };
            match decompressor.decode(scratch, compressed, size, out) {
                Ok(()) => {
                    return Ok(Some(Found {
                        store: i,
                        compressed,
                    }));
                }
                Err(e) => self.reject(id, i, e.to_string(), problems),
            }
        }
        Ok(None)
    }

    /// Records that store `store` holds a bad copy of `id`.
    pub(crate) fn reject(
        &self,
        id: &ChunkId,
        store: usize,
        reason: String,
        problems: &mut Option<Error>,
    ) {
        let name = self.get(store).name();
        log::warn!("chunk {id} from {name} is corrupt: {reason}");
        problems.get_or_insert(Error::ChunkCorrupt {
            id: *id,
            store: name.to_owned(),
            reason,
        });
    }

    /// Fetches chunk `id` of `size` bytes into `out`, decoded and verified against its id, from
    /// the first store from index `first` on that has a good copy, and returns that store's
    /// index. When none has, the error names the chunk and either the first bad copy (in
    /// `problems`) or the stores searched.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch_verified(
        &self,
        id: &ChunkId,
        size: usize,
        digest: DigestAlgorithm,
        mut first: usize,
        decompressor: &mut Decompressor,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        problems: &mut Option<Error>,
    ) -> Result<usize> {
        while let Some(found) =
            self.fetch_decoded(id, size, first, decompressor, scratch, out, problems)?
        {
            if crate::sha512_stream::digest(digest, out) == *id {
                self.remember(id, found, scratch);
                return Ok(found.store);
            }
            self.reject(
                id,
                found.store,
                "content does not match its id".into(),
                problems,
            );
            first = found.store + 1;
        }
        Err(self.no_good_copy(id, problems))
    }

    /// The error for a chunk no store had a good copy of: the first bad copy seen, or else
    /// "missing" with every store searched.
    pub(crate) fn no_good_copy(&self, id: &ChunkId, problems: &mut Option<Error>) -> Error {
        problems.take().unwrap_or_else(|| Error::ChunkMissing {
            id: *id,
            stores: self.names(),
        })
    }
}
