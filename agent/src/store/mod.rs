//! Chunk stores: where chunks are looked up by id, in order, and verified before use.

pub(crate) mod local;

pub(crate) use local::LocalStore;

use crate::compression::Decompressor;
use crate::error::{Error, Result};
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io;

/// A chunk as a store holds it.
pub(crate) struct StoredChunk {
    /// The stored bytes.
    pub(crate) bytes: Vec<u8>,
    /// True for a compressed (`.cacnk`) chunk, false for raw bytes.
    pub(crate) compressed: bool,
}

/// Something chunks can be read from.
pub(crate) trait ChunkStore: Send + Sync {
    /// How the store is named in messages.
    fn name(&self) -> &str;

    /// Reads chunk `id` as stored, refusing more than `limit` stored bytes; `None` when absent.
    fn fetch(&self, id: &ChunkId, limit: u64) -> io::Result<Option<StoredChunk>>;
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

    /// Fetches chunk `id` of `size` bytes into `out`, decompressed and verified against its id.
    /// A store with a corrupt copy is reported and the next store tried; when no store has a
    /// good copy the error names the chunk and the stores.
    pub(crate) fn fetch_verified(
        &self,
        id: &ChunkId,
        size: usize,
        digest: DigestAlgorithm,
        decompressor: &mut Decompressor,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let mut corrupt = None;
        for store in &self.stores {
            let stored = match store.fetch(id, stored_size_limit(size as u64)) {
                Ok(Some(stored)) => stored,
                Ok(None) => continue,
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("reading chunk {id} from {}", store.name()),
                        source,
                    });
                }
            };
            *scratch = stored.bytes;
            let problem = match decompressor.decode(scratch, stored.compressed, size, out) {
                Err(e) => e.to_string(),
                Ok(()) if digest.digest(out) != *id => "content does not match its id".into(),
                Ok(()) => return Ok(()),
            };
            log::warn!("chunk {id} from {} is corrupt: {problem}", store.name());
            corrupt.get_or_insert(Error::ChunkCorrupt {
                id: *id,
                store: store.name().to_owned(),
                reason: problem,
            });
        }
        Err(corrupt.unwrap_or_else(|| Error::ChunkMissing {
            id: *id,
            stores: self.stores.iter().map(|s| s.name().to_owned()).collect(),
        }))
    }
}
