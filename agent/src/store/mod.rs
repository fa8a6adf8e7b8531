//! Chunk stores: where chunks are looked up by id, in order, and verified before use.

pub(crate) mod local;

pub(crate) use local::LocalStore;

use crate::compression::Decompressor;
use crate::error::{Error, Result};
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io;

/// Something chunks can be read from.
pub(crate) trait ChunkStore: Send + Sync {
    /// How the store is named in messages.
    fn name(&self) -> &str;

    /// Reads chunk `id` as stored into `buf`, refusing more than `limit` stored bytes.
    /// Returns whether the stored form is compressed, or `None` when the store lacks it.
    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>>;

    /// The stored size of chunk `id`, or `None` when the store lacks it.
    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>>;
}

/// Most a compressed chunk of `size` bytes may occupy: zstd's worst case (`ZSTD_COMPRESSBOUND`)
/// plus room for frame headers.
pub(crate) fn stored_size_limit(size: u64) -> u64 {
    size + size / 128 + 1024
}

/// Stores tried in order for every chunk.
pub(crate) struct StoreChain {
    stores: Vec<Box<dyn ChunkStore>>,
}

impl StoreChain {
    pub(crate) fn new(stores: Vec<Box<dyn ChunkStore>>) -> Self {
        Self { stores }
    }

    /// Number of stores.
    pub(crate) fn len(&self) -> usize {
        self.stores.len()
    }

    /// The stored size of chunk `id` in the first store that has it.
    pub(crate) fn stored_size(&self, id: &ChunkId) -> Result<Option<u64>> {
        for store in &self.stores {
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
        self.stores.iter().map(|s| s.name().to_owned()).collect()
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
    ) -> Result<Option<usize>> {
        for (i, store) in self.stores.iter().enumerate().skip(first) {
            let compressed = match store.fetch(id, stored_size_limit(size as u64), scratch) {
                Ok(Some(compressed)) => compressed,
                Ok(None) => continue,
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("reading chunk {id} from {}", store.name()),
                        source,
                    });
                }
            };
            match decompressor.decode(scratch, compressed, size, out) {
                Ok(()) => return Ok(Some(i)),
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
        let name = self.stores[store].name();
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
        while let Some(store) =
            self.fetch_decoded(id, size, first, decompressor, scratch, out, problems)?
        {
            if digest.digest(out) == *id {
                return Ok(store);
            }
            self.reject(id, store, "content does not match its id".into(), problems);
            first = store + 1;
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
