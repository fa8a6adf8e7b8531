//! A casync chunk store in a local directory (`.castr`): `<store>/<4 hex>/<64 hex>.cacnk` for
//! compressed chunks, the bare `<64 hex>` for raw ones. Files are created under a temporary name
//! and renamed into place, so a reader never sees a partial chunk.

use super::ChunkStore;
use crate::compression::{Compression, Compressor};
use crate::error::{IoContext, Result};
use crate::fsutil::random_u64;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use otasync_core::ChunkId;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The suffix of compressed chunk files, unless `CASYNC_COMPRESSED_CHUNK_SUFFIX` overrides it.
const DEFAULT_COMPRESSED_SUFFIX: &str = ".cacnk";

/// Number of shard directories (`0000` … `ffff`).
const SHARDS: usize = 1 << 16;

/// A chunk store directory.
pub(crate) struct LocalStore {
    root: PathBuf,
    name: String,
    compressed_suffix: String,
    /// One bit per shard directory known to exist.
    shards_made: Box<[AtomicU64]>,
}

/// What [`LocalStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PutOutcome {
    /// The chunk was written.
    Written { stored_bytes: u64 },
    /// The store already had it (compressed or raw).
    Present,
}

impl LocalStore {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let compressed_suffix = std::env::var("CASYNC_COMPRESSED_CHUNK_SUFFIX")
            .unwrap_or_else(|_| DEFAULT_COMPRESSED_SUFFIX.to_owned());
        Self {
            name: root.display().to_string(),
            root,
            compressed_suffix,
            shards_made: (0..SHARDS / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn shard(&self, id: &ChunkId) -> (usize, PathBuf) {
        let hex = id.to_hex();
        let shard = usize::from(u16::from_be_bytes([id.0[0], id.0[1]]));
        // Hex digits are ASCII.
        (
            shard,
            self.root
                .join(std::str::from_utf8(&hex[..4]).unwrap_or_default()),
        )
    }

    /// Path of the chunk file, compressed or raw.
    pub(crate) fn chunk_path(&self, id: &ChunkId, compressed: bool) -> PathBuf {
        let suffix = if compressed {
            self.compressed_suffix.as_str()
        } else {
            ""
        };
        self.shard(id).1.join(format!("{id}{suffix}"))
    }

    /// True when either form of the chunk exists, whose modification time is then set to now:
    /// a `make` that reuses a chunk marks it as recently written, so that `gc`'s grace period
    /// keeps it until the index that references it is written.
    fn refresh(&self, id: &ChunkId) -> bool {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT, utimensat};
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
        };
        for compressed in [true, false] {
            let path = self.chunk_path(id, compressed);
            match utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) => return true,
                Err(rustix::io::Errno::NOENT) => {}
                // Perhaps present, but not ours to touch (a read-only store).
                Err(e) => {
                    log::debug!("{}: {e}", path.display());
                    if fs::symlink_metadata(&path).is_ok() {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Writes chunk `id` in its stored form (compressed or raw) unless present: under a
    /// temporary name first, renamed into place when complete.
    pub(crate) fn put_stored(&self, id: &ChunkId, bytes: &[u8], compressed: bool) -> Result<()> {
        if self.refresh(id) {
            return Ok(());
        }
        self.write_new(id, bytes, compressed)
    }

    /// Writes chunk `id`, found absent, under a temporary name renamed into place.
    fn write_new(&self, id: &ChunkId, bytes: &[u8], compressed: bool) -> Result<()> {
        let (shard, dir) = self.shard(id);
        self.make_shard(shard, &dir)?;
        let target = self.chunk_path(id, compressed);
        let temp = dir.join(format!("{id}.{:016x}.tmp", random_u64()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&temp)?;
            file.write_all(bytes)?;
            fs::rename(&temp, &target)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e).at("writing chunk", &target);
        }
        Ok(())
    }

    fn make_shard(&self, shard: usize, dir: &Path) -> Result<()> {
        let (word, bit) = (shard / 64, 1u64 << (shard % 64));
        if self.shards_made[word].load(Ordering::Relaxed) & bit != 0 {
            return Ok(());
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).at("creating store directory", dir)?;
            }
            Err(e) => return Err(e).at("creating store directory", dir),
        }
        self.shards_made[word].fetch_or(bit, Ordering::Relaxed);
        Ok(())
    }

    /// Creates the store directory if it does not exist yet.
    pub(crate) fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.root).at("creating store", &self.root)
    }

    /// Flushes everything written to the store's file system to stable storage.
    pub(crate) fn sync(&self) -> Result<()> {
        let dir = File::open(&self.root).at("opening store", &self.root)?;
        nix::unistd::syncfs(&dir)
            .map_err(io::Error::from)
            .at("syncing store", &self.root)
    }
}

impl ChunkStore for LocalStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn remove(&self, id: &ChunkId) -> io::Result<bool> {
        let mut removed = false;
        for compressed in [true, false] {
            match fs::remove_file(self.chunk_path(id, compressed)) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>> {
        for compressed in [true, false] {
            match fs::symlink_metadata(self.chunk_path(id, compressed)) {
                Ok(meta) if meta.is_file() => return Ok(Some(meta.len())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        for compressed in [true, false] {
            let path = self.chunk_path(id, compressed);
            let file = match OpenOptions::new()
                .read(true)
                .custom_flags(OFlag::O_NOFOLLOW.bits())
                .open(&path)
            {
                Ok(file) => file,
                // casync marks a chunk missing with a symlink: ELOOP under O_NOFOLLOW.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(Errno::ELOOP as i32) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            buf.clear();
            file.take(limit + 1).read_to_end(buf)?;
            if buf.len() as u64 > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is larger than {limit} bytes", path.display()),
                ));
            }
            return Ok(Some(compressed));
        }
        Ok(None)
    }
}

impl super::ChunkSink for LocalStore {
    /// Stores `data` as chunk `id` unless present (`compressed` is a scratch buffer).
    fn put(
        &self,
        id: &ChunkId,
        data: &[u8],
        compression: Compression,
        compressor: &mut Compressor,
        compressed: &mut Vec<u8>,
    ) -> Result<PutOutcome> {
        if self.refresh(id) {
            return Ok(PutOutcome::Present);
        }
        let bytes = match compression {
            Compression::Zstd(_) => {
                super::compress_chunk(compressor, id, data, compressed)?;
                compressed.as_slice()
            }
            Compression::None => data,
        };
        self.write_new(id, bytes, compression != Compression::None)?;
        Ok(PutOutcome::Written {
            stored_bytes: bytes.len() as u64,
        })
    }
}
