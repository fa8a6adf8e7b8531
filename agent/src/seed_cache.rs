//! The seed-index cache (`--seed-index-dir=DIR`): the index of what a seed or target holds, saved
//! after it was cut or written, so the next update need not read the whole seed to cut it again.
//! An entry is keyed by the seed's path and used only with the same chunk sizes and digest. It
//! may be stale (the device changed since); that is harmless, because every chunk read from a
//! seed is verified, and a chunk that fails is fetched instead.

use crate::error::{IoContext, Result};
use crate::fsutil::TempFile;
use otasync_core::index::IndexHeader;
use otasync_core::{DigestAlgorithm, Index};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Largest cached index read back (as for any index file).
const MAX_CACHED_INDEX: u64 = 1 << 30;

/// A directory of cached seed indexes.
pub(crate) struct SeedIndexCache {
    dir: PathBuf,
}

impl SeedIndexCache {
    /// Uses (and creates) `dir`.
    pub(crate) fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).at("creating seed index directory", dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The cache file for a seed path: named by the SHA-256 of its absolute path.
    fn entry(&self, seed: &Path) -> PathBuf {
        let absolute = std::path::absolute(seed).unwrap_or_else(|_| seed.to_owned());
        let key = DigestAlgorithm::Sha256
            .digest(absolute.as_os_str().as_bytes())
            .to_string();
        self.dir.join(format!("{}.caibx", &key[..32]))
    }

    /// The cached index of `seed`, if there is one cut like `header` says.
    pub(crate) fn load(&self, seed: &Path, header: &IndexHeader) -> Option<Index> {
        let path = self.entry(seed);
        let bytes = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() as u64 <= MAX_CACHED_INDEX)?;
        match Index::decode(&bytes) {
            Ok(index) if index.header == *header => {
                log::info!("using the cached index of seed {}", seed.display());
                Some(index)
            }
            Ok(_) => None,
            Err(e) => {
                log::warn!("ignoring the damaged seed index {}: {e}", path.display());
                None
            }
        }
    }

    /// Records that `seed` now holds what `index` describes.
    pub(crate) fn save(&self, seed: &Path, index: &Index) -> Result<()> {
        let path = self.entry(seed);
        let temp = TempFile::create_for(&path, 0o644)?;
        let mut file = temp.file();
        file.write_all(&index.encode()).at("writing", &path)?;
        temp.commit()
    }
}
