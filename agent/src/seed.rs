//! Seeds: files and block devices that probably hold much of what an index describes (the
//! active slot, an older image). Each is cut with the index's chunk sizes (or described by an
//! index given with it, or by a cached one), so that a chunk can be read from the seed instead
//! of fetched. Seed bytes are untrusted: every chunk read from a seed is re-hashed before use,
//! so a stale index or a changed seed only costs a fetch.

use crate::chunking::{ChunkJob, chunk_stream};
use crate::error::{Error, IoContext, Result};
use crate::seed_cache::SeedIndexCache;
use nix::fcntl::OFlag;
use otasync_core::index::IndexHeader;
use otasync_core::{ChunkId, Index};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a chunk can be read from a seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeedChunk {
    /// Which seed.
    pub(crate) seed: usize,
    /// Offset of the chunk in it.
    pub(crate) offset: u64,
}

/// A seed given on the command line: `PATH`, or `INDEX.caibx:PATH` when an index of PATH's
/// content is at hand (no need to read the whole seed to cut it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeedSpec {
    /// The file or block device.
    pub(crate) path: PathBuf,
    /// An index describing it, if given.
    pub(crate) index: Option<String>,
}

impl SeedSpec {
    /// Parses `PATH` or `INDEX.caibx:PATH`.
    pub(crate) fn parse(text: &str) -> Self {
        match text.split_once(".caibx:") {
            Some((index, path)) if !path.is_empty() => Self {
                path: path.into(),
                index: Some(format!("{index}.caibx")),
            },
            _ => Self {
                path: text.into(),
                index: None,
            },
        }
    }
}

/// The open seeds and the chunks each holds.
pub(crate) struct SeedSet {
    files: Vec<(String, File)>,
    chunks: HashMap<ChunkId, SeedChunk>,
}

impl SeedSet {
    /// No seeds.
    pub(crate) fn empty() -> Self {
        Self {
            files: Vec::new(),
            chunks: HashMap::new(),
        }
    }

    /// Opens each seed and learns its chunks: from the index given with it, from `cache`, or by
    /// cutting it with `header`'s chunk sizes (the result is then cached).
    pub(crate) fn open(
        specs: &[SeedSpec],
        header: &IndexHeader,
        cache: Option<&SeedIndexCache>,
        threads: usize,
        read_index: &dyn Fn(&str) -> Result<Index>,
    ) -> Result<Self> {
        let mut set = Self::empty();
        for spec in specs {
            let file = File::open(&spec.path).at("opening seed", &spec.path)?;
            if file.metadata().at("reading", &spec.path)?.is_dir() {
                return Err(Error::Usage(format!(
                    "seed {} is a directory; a blob index is seeded from files or block devices",
                    spec.path.display()
                )));
            }
            let index = match &spec.index {
                Some(index) => read_index(index)?,
                None => match cache.and_then(|c| c.load(&spec.path, header)) {
                    Some(index) => index,
                    None => {
                        let index = cut_seed(&file, &spec.path, header, threads)?;
                        if let Some(cache) = cache {
                            cache.save(&spec.path, &index)?;
                        }
                        index
                    }
                },
            };
            if index.header.digest() != header.digest() {
                log::warn!(
                    "seed {} is indexed with {}, not {}: not used",
                    spec.path.display(),
                    index.header.digest().name(),
                    header.digest().name()
                );
                continue;
            }
            set.add(spec.path.display().to_string(), file, &index);
        }
        Ok(set)
    }

    /// Adds an open seed described by `index`. Earlier seeds win for chunks both hold.
    pub(crate) fn add(&mut self, name: String, file: File, index: &Index) {
        let seed = self.files.len();
        for span in index.spans() {
            self.chunks.entry(span.id).or_insert(SeedChunk {
                seed,
                offset: span.start,
            });
        }
        self.files.push((name, file));
    }

    /// Before an in-place update overwrites `target`, copies the chunks of `wanted` that its
    /// current content (described by `target_index`) holds into an anonymous temporary file,
    /// verified, and adds that file as a seed. The update may then use what it overwrites, in
    /// any order, without reading a region after it was written. At most `cap` bytes are copied;
    /// returns how many were.
    pub(crate) fn add_target_copies(
        &mut self,
        target: &File,
        target_index: &Index,
        wanted: &HashSet<ChunkId>,
        cap: u64,
    ) -> Result<u64> {
        let temp_dir = std::env::temp_dir();
        let copies = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_TMPFILE.bits())
            .open(&temp_dir)
            .at("creating a temporary file in", &temp_dir)?;
        let digest = target_index.header.digest();
        let mut index = Index::new(target_index.header);
        let (mut copied, mut buf) = (0u64, Vec::new());
        let mut taken = HashSet::new();
        for span in target_index.spans() {
            if !wanted.contains(&span.id) || taken.contains(&span.id) || copied + span.len() > cap {
                continue;
            }
            buf.resize(span.len() as usize, 0);
            target
                .read_exact_at(&mut buf, span.start)
                .context(|| "reading the target".into())?;
            if crate::sha512_stream::digest(digest, &buf) != span.id {
                continue;
            }
            copies
                .write_all_at(&buf, copied)
                .at("writing a temporary file in", &temp_dir)?;
            copied += span.len();
            taken.insert(span.id);
            index.chunks.push(otasync_core::index::ChunkEntry {
                end: copied,
                id: span.id,
            });
        }
        if copied > 0 {
            self.add("the target before the update".into(), copies, &index);
        }
        Ok(copied)
    }

    /// Where a seed holds chunk `id`, if any does.
    pub(crate) fn locate(&self, id: &ChunkId) -> Option<SeedChunk> {
        self.chunks.get(id).copied()
    }

    /// Reads `len` bytes of seed chunk `at` into `out` (unverified).
    pub(crate) fn read(&self, at: SeedChunk, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        out.resize(len, 0);
        self.files[at.seed].1.read_exact_at(out, at.offset)
    }

    /// The seed's name for messages and statistics.
    pub(crate) fn name(&self, seed: usize) -> &str {
        &self.files[seed].0
    }

    /// Number of seeds.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }
}

/// Cuts a seed's content into chunks named like the index's.
pub(crate) fn cut_seed(
    file: &File,
    path: &Path,
    header: &IndexHeader,
    threads: usize,
) -> Result<Index> {
    log::info!("indexing seed {}", path.display());
    let job = ChunkJob {
        sizes: header.sizes,
        digest: header.digest(),
        store: None,
        stream_digest: false,
        threads,
    };
    let chunked = chunk_stream(file, &job)?;
    let mut index = Index::new(IndexHeader {
        feature_flags: header.feature_flags,
        sizes: header.sizes,
    });
    index.chunks = chunked.entries;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_specs() {
        assert_eq!(
            SeedSpec::parse("/dev/mmcblk0p2"),
            SeedSpec {
                path: "/dev/mmcblk0p2".into(),
                index: None
            }
        );
        assert_eq!(
            SeedSpec::parse("/var/lib/a.caibx:/dev/sda2"),
            SeedSpec {
                path: "/dev/sda2".into(),
                index: Some("/var/lib/a.caibx".into())
            }
        );
        assert_eq!(SeedSpec::parse("odd.caibx:").index, None);
    }
}
