//! A local chunk cache (`--cache=DIR`): chunks fetched from the stores are kept, as stored, in a
//! directory laid out like a store, and read from there first next time. Its size is capped:
//! after each run the least recently used chunks (oldest modification time; a hit refreshes
//! it) are removed until it fits. Cached chunks are verified on use like any other.

use super::ChunkStore;
use super::local::LocalStore;
use crate::error::{IoContext, Result};
use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use otasync_core::ChunkId;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The default size cap of the cache.
pub(crate) const DEFAULT_CACHE_MAX: u64 = 1 << 30;

/// A size-capped chunk cache.
pub(crate) struct ChunkCache {
    store: LocalStore,
    root: PathBuf,
    max_bytes: u64,
}

impl ChunkCache {
    /// Uses (and creates) `dir`, holding at most `max_bytes` of chunks after each run.
    pub(crate) fn new(dir: &Path, max_bytes: u64) -> Result<Self> {
        let store = LocalStore::new(dir);
        store.create()?;
        Ok(Self {
            store,
            root: dir.to_owned(),
            max_bytes,
        })
    }

    /// Keeps a verified chunk as it was stored elsewhere.
    pub(crate) fn keep(&self, id: &ChunkId, stored: &[u8], compressed: bool) -> Result<()> {
        self.store.put_stored(id, stored, compressed)
    }

    /// Removes the least recently used chunks until the cache fits its cap; returns the bytes
    /// removed.
    pub(crate) fn prune(&self) -> Result<u64> {
        let mut files = Vec::new();
        let mut total = 0u64;
        for shard in fs::read_dir(&self.root).at("reading cache", &self.root)? {
            let shard = shard.at("reading cache", &self.root)?.path();
            let Ok(entries) = fs::read_dir(&shard) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    total += meta.len();
                    files.push((
                        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        meta.len(),
                        entry.path(),
                    ));
                }
            }
        }
        files.sort();
        let mut removed = 0;
        for (_, len, path) in files {
            if total - removed <= self.max_bytes {
                break;
            }
            fs::remove_file(&path).at("pruning cache", &path)?;
            removed += len;
        }
        Ok(removed)
    }
}

impl ChunkStore for ChunkCache {
    fn name(&self) -> &str {
        self.store.name()
    }

    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        let found = self.store.fetch(id, limit, buf)?;
        if let Some(compressed) = found {
            // A hit makes the chunk the most recently used.
            let now = TimeSpec::UTIME_NOW;
            let path = self.store.chunk_path(id, compressed);
            let _ = utimensat(
                AT_FDCWD,
                &path,
                &TimeSpec::UTIME_OMIT,
                &now,
                UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(found)
    }

    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>> {
        self.store.stored_size(id)
    }
}
