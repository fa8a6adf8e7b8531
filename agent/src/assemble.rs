//! The one place that turns an index into bytes. For every chunk, in this order of preference:
//! an all-zero chunk is known without reading anything; the target may already hold it at its
//! offset (an interrupted run, the previous content of a device); a seed may hold it; else the
//! stores have it. Whatever the source, the bytes are verified against the chunk id before they
//! are written (or, for the target, before they are kept). Workers take batches of consecutive
//! chunks from a shared counter and verify each stage of a batch with the multi-buffer digest.

use crate::compression::Decompressor;
use crate::digest_batch::digest_all;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::seed::SeedSet;
use crate::sink::ChunkSink;
use crate::store::StoreChain;
use otasync_core::index::ChunkSpan;
use otasync_core::{ChunkId, DigestAlgorithm, Index};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// Chunks a worker handles in one go: enough for the eight lanes of the multi-buffer digest to
/// stay busy although chunk lengths vary 16-fold.
const BATCH: usize = 16;
/// The batch on a device, where a worker's chunks in flight count against a small memory
/// budget: the lanes then idle more.
pub(crate) const DEVICE_BATCH: usize = 8;

/// Where chunks can come from, besides the stores.
pub(crate) struct Sources<'a> {
    /// The target itself, when it may already hold chunks at their offsets.
    pub(crate) in_place: Option<&'a File>,
    /// The output, when what was written can be read back (repeated chunks are copied).
    pub(crate) output: Option<&'a File>,
    /// Seeds.
    pub(crate) seeds: &'a SeedSet,
    /// The chunk stores, in order.
    pub(crate) stores: &'a StoreChain,
}

/// A count of chunks and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Chunks.
    pub(crate) chunks: u64,
    /// Their uncompressed bytes.
    pub(crate) bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.chunks += 1;
        self.bytes += bytes;
    }

    fn merge(&mut self, other: Tally) {
        self.chunks += other.chunks;
        self.bytes += other.bytes;
    }
}

/// Where each chunk of an assembly came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AssembleStats {
    /// All-zero chunks, known without reading.
    pub(crate) zero: Tally,
    /// Chunks the target already held at their offsets (not written).
    pub(crate) in_place: Tally,
    /// Chunks read from each seed.
    pub(crate) seeds: Vec<Tally>,
    /// Chunks fetched from each store.
    pub(crate) stores: Vec<Tally>,
    /// Stored (compressed) bytes fetched from each store.
    pub(crate) store_bytes: Vec<u64>,
    /// Later occurrences of a chunk, copied from its first one within the output.
    pub(crate) repeats: Tally,
    /// Chunks whose seed or target copy did not verify (then taken from elsewhere).
    pub(crate) stale: u64,
}

impl AssembleStats {
    fn new(seeds: usize, stores: usize) -> Self {
        Self {
            seeds: vec![Tally::default(); seeds],
            stores: vec![Tally::default(); stores],
            store_bytes: vec![0; stores],
            ..Self::default()
        }
    }

    fn merge(&mut self, other: &Self) {
        self.zero.merge(other.zero);
        self.in_place.merge(other.in_place);
        for (a, b) in self.seeds.iter_mut().zip(&other.seeds) {
            a.merge(*b);
        }
        for (a, b) in self.stores.iter_mut().zip(&other.stores) {
            a.merge(*b);
        }
        for (a, b) in self.store_bytes.iter_mut().zip(&other.store_bytes) {
            *a += b;
        }
        self.repeats.merge(other.repeats);
        self.stale += other.stale;
    }
}

/// Writes the stream `index` describes into `sink`, with `threads` workers.
///
/// A chunk that occurs more than once is produced once: when the output can be read back
/// (`Sources::output`), later occurrences are copied from the first after everything else is
/// written, so that no chunk is fetched twice.
pub(crate) fn assemble(
    index: &Index,
    sources: &Sources<'_>,
    sink: &dyn ChunkSink,
    threads: usize,
    progress: &Progress,
) -> Result<AssembleStats> {
    let workers = Workers {
        threads,
        batch: BATCH,
    };
    assemble_from(index, 0, &HashSet::new(), sources, sink, workers, progress)
}

/// [`assemble`], for the chunks from number `first` on (those before are known to be in
/// place: a resumed installation), taking the chunks that start at the offsets in `assumed`
/// as in place without reading them (the caller verifies the whole result afterwards).
pub(crate) fn assemble_from(
    index: &Index,
    first: usize,
    assumed: &HashSet<u64>,
    sources: &Sources<'_>,
    sink: &dyn ChunkSink,
    workers: Workers,
    progress: &Progress,
) -> Result<AssembleStats> {
    let digest = index.header.digest();
    let spans: Vec<ChunkSpan> = index.spans().skip(first).collect();
    let zero_id = zero_chunk_id(&spans, index.header.sizes.max, digest);
    let (firsts, repeats) = match sources.output {
        Some(_) => split_repeats(&spans, zero_id),
        None => (spans, Vec::new()),
    };
    let job = Job {
        sources,
        sink,
        digest,
        zero_id,
        assumed,
        progress,
        batch: workers.batch.max(1),
    };
    let mut stats = AssembleStats::new(sources.seeds.len(), sources.stores.len());
    let threads = workers.threads;
    stats.merge(&in_parallel(&job, &firsts, threads, Worker::run)?);
    stats.merge(&in_parallel(&job, &repeats, threads, Worker::run_repeats)?);
    Ok(stats)
}

/// A later occurrence of a chunk, and where its first occurrence is.
#[derive(Clone, Copy)]
struct Repeat {
    span: ChunkSpan,
    first: u64,
}

/// Splits the chunks into first occurrences and repeats (all-zero chunks are never repeats:
/// they cost nothing).
fn split_repeats(spans: &[ChunkSpan], zero_id: Option<ChunkId>) -> (Vec<ChunkSpan>, Vec<Repeat>) {
    let mut seen: HashMap<ChunkId, u64> = HashMap::with_capacity(spans.len());
    let mut firsts = Vec::with_capacity(spans.len());
    let mut repeats = Vec::new();
    for span in spans {
        if Some(span.id) == zero_id {
            firsts.push(*span);
            continue;
        }
        match seen.entry(span.id) {
            Entry::Occupied(first) => repeats.push(Repeat {
                span: *span,
                first: *first.get(),
            }),
            Entry::Vacant(slot) => {
                slot.insert(span.start);
                firsts.push(*span);
            }
        }
    }
    (firsts, repeats)
}

/// Runs `work` over `items` in batches on `threads` workers; stops at the first error.
fn in_parallel<T: Sync>(
    job: &Job<'_>,
    items: &[T],
    threads: usize,
    work: fn(&mut Worker, &Job<'_>, &[T]) -> Result<()>,
) -> Result<AssembleStats> {
    let (seeds, stores) = (job.sources.seeds.len(), job.sources.stores.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let total = Mutex::new(AssembleStats::new(seeds, stores));
    thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let kept_stored = if job.sources.stores.has_cache() {
                    job.batch
                } else {
                    1
                };
                let mut worker = Worker::new(seeds, stores, job.batch, kept_stored);
                while !failed.load(Ordering::Relaxed) {
                    let first = next.fetch_add(job.batch, Ordering::Relaxed);
                    if first >= items.len() {
                        break;
                    }
                    let batch = &items[first..items.len().min(first + job.batch)];
                    if let Err(e) = work(&mut worker, job, batch) {
                        failed.store(true, Ordering::Relaxed);
                        job.sink.abort();
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        break;
                    }
                }
                total
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .merge(&worker.stats);
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(total.into_inner().unwrap_or_else(|p| p.into_inner())),
    }
}

/// The distinct chunks that neither are all zeros nor are held by a seed: what an extraction
/// with these seeds fetches (if every seed copy verifies and the target holds nothing).
pub(crate) fn chunks_to_fetch(index: &Index, seeds: &SeedSet) -> Vec<ChunkSpan> {
    let spans: Vec<ChunkSpan> = index.spans().collect();
    let zero_id = zero_chunk_id(&spans, index.header.sizes.max, index.header.digest());
    let (firsts, _) = split_repeats(&spans, zero_id);
    firsts
        .into_iter()
        .filter(|s| Some(s.id) != zero_id && seeds.locate(&s.id).is_none())
        .collect()
}

/// The id of a chunk of `max` zero bytes, if the index has chunks of that size: such chunks
/// (free space in images) are written without fetching anything.
fn zero_chunk_id(spans: &[ChunkSpan], max: u64, digest: DigestAlgorithm) -> Option<ChunkId> {
    spans
        .iter()
        .any(|s| s.len() == max)
        .then(|| digest.digest(&vec![0; usize::try_from(max).unwrap_or(0)]))
}

/// What every worker shares.
struct Job<'a> {
    sources: &'a Sources<'a>,
    sink: &'a dyn ChunkSink,
    digest: DigestAlgorithm,
    zero_id: Option<ChunkId>,
    /// Offsets of chunks taken as in place without reading them.
    assumed: &'a HashSet<u64>,
    progress: &'a Progress,
    /// Chunks per batch.
    batch: usize,
}

/// How many workers assemble, and how many chunks each handles at a time.
#[derive(Clone, Copy)]
pub(crate) struct Workers {
    /// Worker threads.
    pub(crate) threads: usize,
    /// Chunks per batch ([`BATCH`], or [`DEVICE_BATCH`] where memory is short).
    pub(crate) batch: usize,
}

/// A worker's reusable buffers and its share of the statistics.
struct Worker {
    decompressor: Decompressor,
    /// Chunks as stored (compressed): one per batch position when a cache keeps them after
    /// the check, else one for all (with many workers for remote stores, that halves memory).
    stored: Vec<Vec<u8>>,
    /// Chunks decoded, per batch position.
    chunks: Vec<Vec<u8>>,
    stats: AssembleStats,
}

impl Worker {
    /// A worker for batches of up to `batch` chunks, with `stored` buffers for them as stored.
    fn new(seeds: usize, stores: usize, batch: usize, stored: usize) -> Self {
        Self {
            decompressor: Decompressor::default(),
            stored: vec![Vec::new(); stored],
            chunks: vec![Vec::new(); batch],
            stats: AssembleStats::new(seeds, stores),
        }
    }

    /// Produces repeated chunks by copying their first occurrence within the output (verified
    /// again on the way), or else like any chunk.
    fn run_repeats(&mut self, job: &Job<'_>, repeats: &[Repeat]) -> Result<()> {
        let batch: Vec<ChunkSpan> = repeats.iter().map(|r| r.span).collect();
        let all: Vec<usize> = (0..batch.len()).collect();
        let Some(output) = job.sources.output else {
            return self.produce(job, &batch, all);
        };
        for (k, repeat) in repeats.iter().enumerate() {
            let buf = &mut self.chunks[k];
            buf.resize(repeat.span.len() as usize, 0);
            output
                .read_exact_at(buf, repeat.first)
                .context(|| "reading the output".into())?;
        }
        let good = self.verify(job, &batch, &all);
        let mut pending = Vec::new();
        for (k, ok) in all.into_iter().zip(good) {
            if ok {
                self.stats.repeats.add(batch[k].len());
                job.sink
                    .write_chunk(batch[k].start, &self.chunks[k])
                    .context(|| "writing output".into())?;
            } else {
                pending.push(k);
            }
        }
        self.produce(job, &batch, pending)?;
        job.progress.advance(batch.iter().map(ChunkSpan::len).sum());
        Ok(())
    }

    /// Produces a batch of consecutive chunks.
    fn run(&mut self, job: &Job<'_>, batch: &[ChunkSpan]) -> Result<()> {
        let sink = job.sink;
        let mut pending: Vec<usize> = Vec::with_capacity(batch.len());
        for (k, span) in batch.iter().enumerate() {
            if job.assumed.contains(&span.start) {
                self.stats.in_place.add(span.len());
                sink.kept(span.start);
            } else if Some(span.id) != job.zero_id {
                pending.push(k);
            } else if self.zeros_in_place(job, span)? {
                self.stats.in_place.add(span.len());
                sink.kept(span.start);
            } else {
                self.stats.zero.add(span.len());
                sink.write_zeros(span.start, span.len() as usize)
                    .context(|| "writing output".into())?;
            }
        }
        self.produce(job, batch, pending)?;
        job.progress.advance(batch.iter().map(ChunkSpan::len).sum());
        Ok(())
    }

    /// Produces the listed chunks of a batch: from the target in place, a seed, or a store.
    fn produce(
        &mut self,
        job: &Job<'_>,
        batch: &[ChunkSpan],
        mut pending: Vec<usize>,
    ) -> Result<()> {
        if let Some(target) = job.sources.in_place {
            pending = self.keep_in_place(job, target, batch, pending)?;
        }
        if job.sources.seeds.len() > 0 {
            pending = self.take_from_seeds(job, batch, pending)?;
        }
        self.fetch_from_stores(job, batch, &pending)
    }

    /// True when the target already holds zeros where an all-zero chunk goes (no write, which
    /// spares flash).
    fn zeros_in_place(&mut self, job: &Job<'_>, span: &ChunkSpan) -> Result<bool> {
        let Some(target) = job.sources.in_place else {
            return Ok(false);
        };
        let buf = &mut self.chunks[0];
        buf.resize(span.len() as usize, 0);
        target
            .read_exact_at(buf, span.start)
            .context(|| "reading the target".into())?;
        Ok(buf.iter().all(|&b| b == 0))
    }

    /// Chunks the target already holds at their offsets stay as they are.
    fn keep_in_place(
        &mut self,
        job: &Job<'_>,
        target: &File,
        batch: &[ChunkSpan],
        pending: Vec<usize>,
    ) -> Result<Vec<usize>> {
        for &k in &pending {
            let span = &batch[k];
            let buf = &mut self.chunks[k];
            buf.resize(span.len() as usize, 0);
            target
                .read_exact_at(buf, span.start)
                .context(|| "reading the target".into())?;
        }
        let good = self.verify(job, batch, &pending);
        let mut left = Vec::new();
        for (&k, ok) in pending.iter().zip(good) {
            if ok {
                self.stats.in_place.add(batch[k].len());
                job.sink.kept(batch[k].start);
            } else {
                left.push(k);
            }
        }
        Ok(left)
    }

    /// Chunks a seed holds are read from it, verified and written.
    fn take_from_seeds(
        &mut self,
        job: &Job<'_>,
        batch: &[ChunkSpan],
        pending: Vec<usize>,
    ) -> Result<Vec<usize>> {
        let seeds = job.sources.seeds;
        let mut tried = Vec::new();
        let mut left = Vec::new();
        for k in pending {
            let span = &batch[k];
            match seeds.locate(&span.id) {
                Some(at) => {
                    seeds
                        .read(at, span.len() as usize, &mut self.chunks[k])
                        .context(|| format!("reading seed {}", seeds.name(at.seed)))?;
                    tried.push((k, at.seed));
                }
                None => left.push(k),
            }
        }
        let ks: Vec<usize> = tried.iter().map(|&(k, _)| k).collect();
        let good = self.verify(job, batch, &ks);
        for (&(k, seed), ok) in tried.iter().zip(good) {
            let span = &batch[k];
            if ok {
                self.stats.seeds[seed].add(span.len());
                job.sink
                    .write_chunk(span.start, &self.chunks[k])
                    .context(|| "writing output".into())?;
            } else {
                log::debug!(
                    "seed {} no longer holds chunk {}",
                    seeds.name(seed),
                    span.id
                );
                self.stats.stale += 1;
                left.push(k);
            }
        }
        Ok(left)
    }

    /// The remaining chunks come from the stores.
    fn fetch_from_stores(
        &mut self,
        job: &Job<'_>,
        batch: &[ChunkSpan],
        pending: &[usize],
    ) -> Result<()> {
        let stores = job.sources.stores;
        let mut problems = None;
        let mut found = Vec::with_capacity(pending.len());
        let slots = self.stored.len();
        for &k in pending {
            let span = &batch[k];
            let copy = stores.fetch_decoded(
                &span.id,
                span.len() as usize,
                0,
                &mut self.decompressor,
                &mut self.stored[k % slots],
                &mut self.chunks[k],
                &mut problems,
            )?;
            let Some(copy) = copy else {
                return Err(stores.no_good_copy(&span.id, &mut problems));
            };
            self.stats.store_bytes[copy.store] += self.stored[k % slots].len() as u64;
            found.push(copy);
        }
        let good = self.verify(job, batch, pending);
        for ((&k, copy), ok) in pending.iter().zip(found).zip(good) {
            let span = &batch[k];
            let store = if ok {
                stores.remember(&span.id, copy, &self.stored[k % slots]);
                copy.store
            } else {
                // A bad copy: say so, then look in the stores after the one that had it.
                let reason = "content does not match its id".into();
                stores.reject(&span.id, copy.store, reason, &mut problems);
                let store = stores.fetch_verified(
                    &span.id,
                    span.len() as usize,
                    job.digest,
                    copy.store + 1,
                    &mut self.decompressor,
                    &mut self.stored[k % slots],
                    &mut self.chunks[k],
                    &mut problems,
                )?;
                self.stats.store_bytes[store] += self.stored[k % slots].len() as u64;
                store
            };
            self.stats.stores[store].add(span.len());
            job.sink
                .write_chunk(span.start, &self.chunks[k])
                .context(|| "writing output".into())?;
        }
        Ok(())
    }

    /// Whether each listed chunk buffer holds the chunk it should.
    fn verify(&self, job: &Job<'_>, batch: &[ChunkSpan], ks: &[usize]) -> Vec<bool> {
        let data: Vec<&[u8]> = ks.iter().map(|&k| self.chunks[k].as_slice()).collect();
        let ids = digest_all(job.digest, &data);
        ks.iter()
            .zip(ids)
            .map(|(&k, id)| batch[k].id == id)
            .collect()
    }
}
