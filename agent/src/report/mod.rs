//! The release report: for a new release against older ones, what a device holding each older
//! one downloads (NEW's index plus the compressed chunks it lacks, one request each) and which
//! regions of the image it reuses or fetches, as one self-contained HTML page with an inline
//! SVG map (no scripts, no external resources) that a person can open from a build's artifacts.
//!
//! Each chunk of NEW is, as the agent's assembly treats it: all-zero (a chunk of `max` zero
//! bytes, written without fetching), reused (the old release holds it), fetched (the first
//! place of a chunk the old release lacks) or copied (a later place of such a chunk: fetched
//! once, copied within the new image).

mod html;

use crate::error::{IoContext, Result};
use crate::fsutil::TempFile;
use crate::store::StoreChain;
use otasync_core::{ChunkId, ChunkSizes, Index};
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Cells of the map of an image (at most; fewer for images of fewer bytes).
const MAP_CELLS: u64 = 1024;

/// A release: its name and index.
pub(crate) struct Release<'a> {
    /// How the page names it.
    pub(crate) name: String,
    /// Its index.
    pub(crate) index: &'a Index,
    /// Size of its index file.
    pub(crate) index_bytes: u64,
}

/// Uncompressed bytes of the new image by where a device gets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shares {
    /// All-zero chunks, written without fetching.
    pub(crate) zero: u64,
    /// Chunks the old release holds.
    pub(crate) reused: u64,
    /// First places of chunks it lacks: fetched.
    pub(crate) fetched: u64,
    /// Later places of those chunks: copied within the new image.
    pub(crate) copied: u64,
}

impl Shares {
    fn add(&mut self, class: Class, bytes: u64) {
        match class {
            Class::Zero => self.zero += bytes,
            Class::Reused => self.reused += bytes,
            Class::Fetched => self.fetched += bytes,
            Class::Copied => self.copied += bytes,
        }
    }

    /// All bytes.
    pub(crate) fn total(&self) -> u64 {
        self.zero + self.reused + self.fetched + self.copied
    }
}

/// Where a device gets one chunk of the new image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Zero,
    Reused,
    Fetched,
    Copied,
}

/// The new release against one old release.
pub(crate) struct Comparison {
    /// The old release's name.
    pub(crate) old: String,
    /// NEW's index file size (downloaded first).
    pub(crate) index_bytes: u64,
    /// Chunks fetched, one request each.
    pub(crate) requests: u64,
    /// Their stored (compressed) bytes; a chunk no store has counts uncompressed.
    pub(crate) chunk_bytes: u64,
    /// Fetched chunks that no store has.
    pub(crate) not_in_stores: u64,
    /// The image's bytes by where they come from.
    pub(crate) shares: Shares,
    /// The same per map cell, in image order.
    pub(crate) cells: Vec<Shares>,
    /// The old index's chunk sizes, when they differ from the new one's (a device then cuts
    /// its slot with the new sizes and may reuse more than this report shows).
    pub(crate) other_sizes: Option<ChunkSizes>,
    /// True when the old index names chunks with another digest (nothing is reused then).
    pub(crate) other_digest: bool,
}

impl Comparison {
    /// Bytes over the air: index and chunks.
    pub(crate) fn download(&self) -> u64 {
        self.index_bytes + self.chunk_bytes
    }
}

/// Compares `new` with `old`, looking fetched chunks' stored sizes up in `stores`.
pub(crate) fn compare(
    new: &Release<'_>,
    old: &Release<'_>,
    stores: &StoreChain,
) -> Result<Comparison> {
    let (index, header) = (new.index, &new.index.header);
    let digest = header.digest();
    let other_digest = old.index.header.digest() != digest;
    let held: HashSet<ChunkId> = match other_digest {
        true => HashSet::new(),
        false => old.index.chunks.iter().map(|e| e.id).collect(),
    };
    let zero_id = index
        .spans()
        .any(|s| s.len() == header.sizes.max)
        .then(|| digest.digest(&vec![0; usize::try_from(header.sizes.max).unwrap_or(0)]));
    let size = index.blob_size();
    let cell_count = MAP_CELLS.min(size);
    let mut comparison = Comparison {
        old: old.name.clone(),
        index_bytes: new.index_bytes,
        requests: 0,
        chunk_bytes: 0,
        not_in_stores: 0,
        shares: Shares::default(),
        cells: vec![Shares::default(); usize::try_from(cell_count).unwrap_or(0)],
        other_sizes: (old.index.header.sizes != header.sizes).then_some(old.index.header.sizes),
        other_digest,
    };
    let cell_end = |c: u64| -> u64 {
        u64::try_from(u128::from(c + 1) * u128::from(size) / u128::from(cell_count.max(1)))
            .unwrap_or(size)
    };
    let mut fetched: HashSet<ChunkId> = HashSet::new();
    let mut cell = 0u64;
    for span in index.spans() {
        let class = if Some(span.id) == zero_id {
            Class::Zero
        } else if held.contains(&span.id) {
            Class::Reused
        } else if fetched.insert(span.id) {
            comparison.requests += 1;
            match stores.stored_size(&span.id)? {
                Some(bytes) => comparison.chunk_bytes += bytes,
                None => {
                    comparison.not_in_stores += 1;
                    comparison.chunk_bytes += span.len();
                }
            }
            Class::Fetched
        } else {
            Class::Copied
        };
        comparison.shares.add(class, span.len());
        // Spread the chunk over the cells it covers.
        let mut at = span.start;
        while at < span.end && cell < cell_count {
            let end = cell_end(cell).min(span.end);
            comparison.cells[cell as usize].add(class, end - at);
            at = end;
            if at == cell_end(cell) {
                cell += 1;
            }
        }
    }
    Ok(comparison)
}

/// Writes the report page for `new` against each of `olds` to `path` (under a temporary name,
/// renamed into place when complete) and returns the comparisons. `stores` give the stored
/// sizes of the chunks devices fetch.
pub(crate) fn write_report(
    path: &Path,
    new: &Release<'_>,
    olds: &[Release<'_>],
    stores: &StoreChain,
) -> Result<Vec<Comparison>> {
    let comparisons = olds
        .iter()
        .map(|old| compare(new, old, stores))
        .collect::<Result<Vec<_>>>()?;
    let page = html::page(new, &comparisons);
    let temp = TempFile::create_for(path, 0o644)?;
    let mut out = BufWriter::new(temp.file());
    out.write_all(page.as_bytes()).at("writing", path)?;
    out.flush().at("writing", path)?;
    drop(out);
    temp.commit()?;
    Ok(comparisons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::index::{ChunkEntry, IndexHeader};
    use otasync_core::{DigestAlgorithm, flags};

    fn index(chunks: &[(u64, ChunkId)], sizes: ChunkSizes) -> Index {
        let mut index = Index::new(IndexHeader {
            feature_flags: flags::BLOB_INDEX_DEFAULT,
            sizes,
        });
        let mut end = 0;
        for &(len, id) in chunks {
            end += len;
            index.chunks.push(ChunkEntry { end, id });
        }
        index
    }

    #[test]
    fn chunks_are_classified_as_the_agent_assembles_them() {
        let sizes = ChunkSizes::derive(0, 16, 0).unwrap();
        let zero = DigestAlgorithm::Sha512_256.digest(&[0; 64]);
        let (a, b, c) = (ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32]));
        let new = index(&[(20, a), (64, zero), (30, b), (30, b), (16, c)], sizes);
        let old = index(&[(20, a), (10, c)], sizes);
        let stores = StoreChain::new(None, Vec::new());
        let release = |name: &str, index| Release {
            name: name.into(),
            index,
            index_bytes: 1000,
        };
        let cmp = compare(&release("new", &new), &release("old", &old), &stores).unwrap();
        assert_eq!(
            cmp.shares,
            Shares {
                zero: 64,
                reused: 20 + 16,
                fetched: 30,
                copied: 30,
            }
        );
        // b is fetched once; no store has it, so it counts uncompressed.
        assert_eq!(
            (cmp.requests, cmp.chunk_bytes, cmp.not_in_stores),
            (1, 30, 1)
        );
        assert_eq!(cmp.download(), 1030);
        // 160 bytes in 160 cells of one byte: each cell is one chunk's class.
        assert_eq!(cmp.cells.len(), 160);
        assert_eq!(cmp.cells.iter().map(Shares::total).sum::<u64>(), 160);
        assert_eq!(cmp.cells[0].reused, 1);
        assert_eq!(cmp.cells[20].zero, 1);
        assert_eq!(cmp.cells[84].fetched, 1);
        assert_eq!(cmp.cells[114].copied, 1);
        assert_eq!(cmp.other_sizes, None);
    }

    #[test]
    fn cells_split_chunks_at_their_borders() {
        let sizes = ChunkSizes::derive(0, 1 << 20, 0).unwrap();
        let new = index(&[(3000, ChunkId([1; 32])), (2000, ChunkId([2; 32]))], sizes);
        let old = index(&[(3000, ChunkId([1; 32]))], ChunkSizes::default());
        let stores = StoreChain::new(None, Vec::new());
        let release = |index| Release {
            name: String::new(),
            index,
            index_bytes: 0,
        };
        let cmp = compare(&release(&new), &release(&old), &stores).unwrap();
        assert_eq!(cmp.cells.len(), 1024);
        assert_eq!(cmp.cells.iter().map(Shares::total).sum::<u64>(), 5000);
        assert_eq!(cmp.cells.iter().map(|c| c.reused).sum::<u64>(), 3000);
        assert_eq!(cmp.other_sizes, Some(ChunkSizes::default()));
    }
}
