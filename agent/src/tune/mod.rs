//! `otasync tune`: which chunk sizes and zstd level make the smallest update, predicted exactly
//! without writing a store.
//!
//! What a device holding OLD downloads to install NEW is NEW's index plus the compressed bytes
//! of the distinct chunks of NEW that OLD does not hold, leaving out chunks of `max` zero bytes
//! (the agent writes those without fetching): the rule of [`crate::assemble::chunks_to_fetch`],
//! one request per chunk. For each candidate:
//!
//! ```text
//!  NEW, each OLD image ──cut with the candidate's sizes (one job per input, all in parallel)──┐
//!  OLD.caibx (same sizes) ──its chunk set as it is────────────────────────────────────────────┤
//!                                                   chunks of NEW some OLD lacks ◀────────────┘
//!                    ──read once, compressed at every level (in parallel)──▶ sizes per level
//! ```
//! The cut is shared by all levels and only the chunks a device would fetch are compressed. The
//! cheapest level is computed exactly for every candidate; a costlier one first on a sample of
//! the chunks, then exactly for the rows whose estimate is within [`CONFIRM_MARGIN`] of the
//! best (see [`sizes`]), so the recommendation is always an exact figure.

pub(crate) mod compress;
pub(crate) mod cputime;
pub(crate) mod cut;
pub(crate) mod need;
pub(crate) mod parallel;
pub(crate) mod sizes;

use crate::error::{Error, IoContext, Result};
use compress::compress_at;
use cut::{Cut, cut_file};
use need::{Delta, Need};
use otasync_core::index::{EMPTY_INDEX_SIZE, ITEM_SIZE};
use otasync_core::{ChunkId, ChunkSizes, DigestAlgorithm, Index};
use parallel::run_jobs;
use sizes::{Scope, SizeTable};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a device may already hold.
pub(crate) enum Old {
    /// An image (file or block device), cut with each candidate's sizes.
    Image(PathBuf),
    /// An index of the old image, usable only for a candidate with the same chunk sizes.
    Index {
        /// Where it was read from.
        path: String,
        /// The index.
        index: Index,
    },
}

impl Old {
    /// How the old release is named in reports.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Image(path) => path.display().to_string(),
            Self::Index { path, .. } => path.clone(),
        }
    }
}

/// What to evaluate.
pub(crate) struct Plan<'a> {
    /// The new image.
    pub(crate) new: &'a Path,
    /// What devices hold (each evaluated on its own: one population of devices each).
    pub(crate) olds: &'a [Old],
    /// Chunk sizes to try.
    pub(crate) candidates: &'a [ChunkSizes],
    /// zstd levels to try with each.
    pub(crate) levels: &'a [i32],
    /// The digest naming chunks.
    pub(crate) digest: DigestAlgorithm,
    /// Worker threads.
    pub(crate) threads: usize,
    /// Compute every row exactly instead of estimating the costly levels of rows that cannot
    /// win.
    pub(crate) exact: bool,
}

/// Rows whose estimated download is within this factor of the best estimate are computed
/// exactly.
pub(crate) const CONFIRM_MARGIN: f64 = 1.05;

/// One candidate at one level.
pub(crate) struct Row {
    /// The chunk sizes.
    pub(crate) sizes: ChunkSizes,
    /// The zstd level.
    pub(crate) level: i32,
    /// Chunks in NEW's index.
    pub(crate) chunks: u64,
    /// Size of NEW's index file.
    pub(crate) index_bytes: u64,
    /// Against each old release, in the plan's order.
    pub(crate) deltas: Vec<Delta>,
    /// CPU time to cut and name NEW.
    pub(crate) cut_cpu: Duration,
    /// CPU time to compress the chunks NEW adds (to a store holding the old releases).
    pub(crate) compress_cpu: Duration,
    /// True when the sizes at this level are estimated from a sample (see [`sizes`]).
    pub(crate) estimated: bool,
}

impl Row {
    /// Bytes a device holding old release `k` downloads: index and chunks.
    pub(crate) fn download(&self, k: usize) -> u64 {
        self.index_bytes + self.deltas[k].chunk_bytes
    }

    /// Downloads summed over all old releases (what the recommendation minimizes).
    pub(crate) fn total_download(&self) -> u64 {
        (0..self.deltas.len()).map(|k| self.download(k)).sum()
    }

    /// Requests summed over all old releases.
    pub(crate) fn total_requests(&self) -> u64 {
        self.deltas.iter().map(|d| d.requests).sum()
    }

    /// CPU time of an incremental `make` of NEW: cut, name, compress the new chunks.
    pub(crate) fn make_cpu(&self) -> Duration {
        self.cut_cpu + self.compress_cpu
    }
}

/// The result of a plan.
pub(crate) struct Evaluation {
    /// Size of NEW.
    pub(crate) new_size: u64,
    /// One row per candidate and level, candidates in the plan's order, levels within.
    pub(crate) rows: Vec<Row>,
    /// The row to use: of the exact rows, smallest total download, then fewest requests, then
    /// least make time.
    pub(crate) recommended: usize,
    /// Wall time of the evaluation.
    pub(crate) wall: Duration,
}

/// Size of the index file of `chunks` chunks: header, table header, items, tail.
pub(crate) fn index_file_size(chunks: u64) -> u64 {
    (EMPTY_INDEX_SIZE as u64) + chunks * ITEM_SIZE as u64
}

/// Evaluates every candidate and level of `plan`.
pub(crate) fn evaluate(plan: &Plan<'_>) -> Result<Evaluation> {
    let started = Instant::now();
    if plan.candidates.is_empty() || plan.levels.is_empty() || plan.olds.is_empty() {
        return Err(Error::Usage(
            "tune needs at least one old release, candidate and level".into(),
        ));
    }
    check_indexes(plan)?;
    // Cut jobs: NEW and every old image, for every candidate.
    let mut jobs: Vec<(usize, Option<usize>, &Path)> = Vec::new();
    for c in 0..plan.candidates.len() {
        jobs.push((c, None, plan.new));
        for (k, old) in plan.olds.iter().enumerate() {
            if let Old::Image(path) = old {
                jobs.push((c, Some(k), path));
            }
        }
    }
    let cuts = run_jobs(
        jobs.len(),
        plan.threads,
        || (),
        |_, j| {
            let (c, _, path) = jobs[j];
            cut_file(path, plan.candidates[c], plan.digest)
        },
    )?;
    // For every candidate, NEW's cut and the chunk set of each old release (an index is its
    // chunk set as it is: check_indexes made sure its sizes fit).
    let mut new_cuts: Vec<Option<Cut>> = (0..plan.candidates.len()).map(|_| None).collect();
    let mut sets: Vec<Vec<HashSet<ChunkId>>> = (0..plan.candidates.len())
        .map(|_| {
            plan.olds
                .iter()
                .map(|old| match old {
                    Old::Image(_) => HashSet::new(),
                    Old::Index { index, .. } => index.chunks.iter().map(|e| e.id).collect(),
                })
                .collect()
        })
        .collect();
    for (&(c, old, _), cut) in jobs.iter().zip(cuts) {
        match old {
            None => new_cuts[c] = Some(cut),
            Some(k) => sets[c][k] = cut.entries.iter().map(|e| e.id).collect(),
        }
    }
    let new_cuts: Vec<Cut> = new_cuts.into_iter().flatten().collect();
    let new_size = new_cuts
        .first()
        .and_then(|c| c.entries.last())
        .map_or(0, |e| e.end);
    let needs: Vec<Need> = new_cuts
        .iter()
        .zip(&sets)
        .zip(plan.candidates)
        .map(|((cut, olds), sizes)| Need::of(cut, olds, *sizes, plan.digest))
        .collect();
    let levels = plan.levels;
    let base = (0..levels.len()).min_by_key(|&l| levels[l]).unwrap_or(0);
    let mut tables: Vec<SizeTable> = needs
        .iter()
        .map(|n| SizeTable::new(&n.pieces, levels.len(), base))
        .collect();
    let compressing = Compressing {
        file: File::open(plan.new).at("opening", plan.new)?,
        plan,
        needs: &needs,
    };
    // The cheapest level for everything; the others on samples (unless too small to tell).
    compressing.fill(&mut tables, base, |_| Scope::All)?;
    for l in (0..levels.len()).filter(|&l| l != base) {
        compressing.fill(&mut tables, l, |c| {
            match plan.exact || SizeTable::small_sample(&needs[c].pieces) {
                true => Scope::All,
                false => Scope::Sample,
            }
        })?;
    }
    // Then exactly, the rows that may win.
    let estimates = rows(plan, &new_cuts, &needs, &tables);
    let best = estimates.iter().map(Row::total_download).min().unwrap_or(0);
    let close: Vec<(usize, i32)> = estimates
        .iter()
        .filter(|r| r.estimated && r.total_download() as f64 <= best as f64 * CONFIRM_MARGIN)
        .map(|r| {
            (
                plan.candidates
                    .iter()
                    .position(|&c| c == r.sizes)
                    .unwrap_or(0),
                r.level,
            )
        })
        .collect();
    for (l, &level) in levels.iter().enumerate() {
        compressing.fill(&mut tables, l, |c| match close.contains(&(c, level)) {
            true => Scope::All,
            false => Scope::Nothing,
        })?;
    }
    let rows = rows(plan, &new_cuts, &needs, &tables);
    let recommended = recommend(&rows);
    Ok(Evaluation {
        new_size,
        rows,
        recommended,
        wall: started.elapsed(),
    })
}

/// What compressing pieces needs.
struct Compressing<'a> {
    file: File,
    plan: &'a Plan<'a>,
    needs: &'a [Need],
}

impl Compressing<'_> {
    /// Compresses at level number `l`, for each candidate, the pieces `scope` says, and
    /// records their sizes.
    fn fill(
        &self,
        tables: &mut [SizeTable],
        l: usize,
        scope: impl Fn(usize) -> Scope,
    ) -> Result<()> {
        let mut wanted = Vec::new();
        for (c, (table, need)) in tables.iter().zip(self.needs).enumerate() {
            for p in table.wanted(l, scope(c), &need.pieces) {
                wanted.push((c, p));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let places: Vec<(u64, u64)> = wanted
            .iter()
            .map(|&(c, p)| (self.needs[c].pieces[p].start, self.needs[c].pieces[p].len))
            .collect();
        let plan = self.plan;
        let done = compress_at(&self.file, plan.new, &places, plan.levels[l], plan.threads)?;
        for (&(c, p), result) in wanted.iter().zip(done) {
            tables[c].record(l, p, self.needs[c].pieces[p].len, result);
        }
        for table in tables {
            table.update_ratios();
        }
        Ok(())
    }
}

/// One row per candidate and level, from the sizes known or estimated so far.
fn rows(plan: &Plan<'_>, cuts: &[Cut], needs: &[Need], tables: &[SizeTable]) -> Vec<Row> {
    let mut rows = Vec::with_capacity(cuts.len() * plan.levels.len());
    for (c, ((cut, need), table)) in cuts.iter().zip(needs).zip(tables).enumerate() {
        for (l, &level) in plan.levels.iter().enumerate() {
            rows.push(Row {
                sizes: plan.candidates[c],
                level,
                chunks: cut.entries.len() as u64,
                index_bytes: index_file_size(cut.entries.len() as u64),
                deltas: (0..plan.olds.len())
                    .map(|k| need.delta(k, |p| table.size(l, p)))
                    .collect(),
                cut_cpu: cut.cpu,
                compress_cpu: table.compress_cpu(l),
                estimated: !table.is_exact(l),
            });
        }
    }
    rows
}

/// An old release given as an index can stand for the old image only with a candidate of the
/// same chunk sizes and digest: other sizes cut other chunks.
fn check_indexes(plan: &Plan<'_>) -> Result<()> {
    for old in plan.olds {
        let Old::Index { path, index } = old else {
            continue;
        };
        let have = index.header.sizes;
        if index.header.digest() != plan.digest {
            return Err(Error::Usage(format!(
                "{path} names chunks with {}, not {}: give --digest={} or the old image",
                index.header.digest().name(),
                plan.digest.name(),
                index.header.digest().name()
            )));
        }
        if let Some(other) = plan.candidates.iter().find(|&&c| c != have) {
            return Err(Error::Usage(format!(
                "{path} was made with chunk sizes {}, so it describes the old release only for \
                 that candidate; candidate {} cuts the old image differently: give the old \
                 image (--old=OLD.img) instead, or only --candidates={}",
                format_sizes(have),
                format_sizes(*other),
                format_sizes(have)
            )));
        }
    }
    Ok(())
}

/// The exact row with the smallest total download; ties go to fewer requests, then to less
/// make time.
fn recommend(rows: &[Row]) -> usize {
    (0..rows.len())
        .filter(|&r| !rows[r].estimated)
        .min_by_key(|&r| {
            let row = &rows[r];
            (row.total_download(), row.total_requests(), row.make_cpu())
        })
        .unwrap_or(0)
}

/// Chunk sizes as `--chunk-size` takes them, with K/M suffixes where exact (`4K:16K:64K`).
pub(crate) fn format_sizes(sizes: ChunkSizes) -> String {
    format!(
        "{}:{}:{}",
        format_size(sizes.min),
        format_size(sizes.avg),
        format_size(sizes.max)
    )
}

/// A size with a K/M suffix where exact.
fn format_size(size: u64) -> String {
    match size {
        0 => "0".into(),
        s if s % (1 << 20) == 0 => format!("{}M", s >> 20),
        s if s % (1 << 10) == 0 => format!("{}K", s >> 10),
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::index::ChunkEntry;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn index_size_matches_the_encoder() {
        let mut index = Index::new(otasync_core::index::IndexHeader {
            feature_flags: otasync_core::flags::BLOB_INDEX_DEFAULT,
            sizes: ChunkSizes::default(),
        });
        assert_eq!(index_file_size(0), index.encode().len() as u64);
        index.chunks.push(ChunkEntry { end: 5, id: id(1) });
        index.chunks.push(ChunkEntry { end: 9, id: id(2) });
        assert_eq!(index_file_size(2), index.encode().len() as u64);
    }

    #[test]
    fn sizes_print_as_chunk_size_takes_them() {
        assert_eq!(format_sizes(ChunkSizes::default()), "16K:64K:256K");
        let odd = ChunkSizes::derive(1000, 3000, 1 << 20).unwrap();
        assert_eq!(format_sizes(odd), "1000:3000:1M");
    }

    #[test]
    fn the_smallest_download_wins_then_fewer_requests() {
        let row = |index_bytes, chunk_bytes, requests| Row {
            sizes: ChunkSizes::default(),
            level: 3,
            chunks: 0,
            index_bytes,
            deltas: vec![Delta {
                requests,
                chunk_bytes,
                ..Delta::default()
            }],
            cut_cpu: Duration::ZERO,
            compress_cpu: Duration::ZERO,
            estimated: false,
        };
        assert_eq!(
            recommend(&[row(10, 100, 5), row(50, 40, 9), row(60, 30, 3)]),
            2
        );
        assert_eq!(recommend(&[row(10, 100, 5), row(50, 60, 4)]), 1);
        // An estimate is never recommended.
        let mut guess = row(1, 1, 1);
        guess.estimated = true;
        assert_eq!(recommend(&[row(10, 100, 5), guess]), 0);
    }
}
