//! The one place that turns an index into bytes: every chunk is fetched from the stores,
//! decompressed within its size, verified against its id, and only then handed to a sink.
//! Workers take chunks in index order from a shared counter; positional sinks write them where
//! they belong at once, ordered sinks (stdout, a digest) put them back in order.

use crate::compression::Decompressor;
use crate::digest_batch::digest_all;
use crate::error::{Error, IoContext, Result};
use crate::store::StoreChain;
use otasync_core::index::ChunkSpan;
use otasync_core::{ChunkId, DigestAlgorithm, Index};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;

/// Receives verified chunk contents.
pub(crate) trait ChunkSink: Sync {
    /// The verified bytes of the chunk that starts at `offset`.
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// `len` zero bytes at `offset`, known to be the chunk's content without fetching it.
    fn write_zeros(&self, offset: u64, len: usize) -> io::Result<()> {
        self.write_chunk(offset, &vec![0; len])
    }

    /// Assembly failed: release anything waiting for chunks that will not come.
    fn abort(&self) {}
}

/// Counters of an assembly run.
#[derive(Debug, Default)]
pub(crate) struct AssembleStats {
    /// Chunks fetched from a store.
    pub(crate) fetched: u64,
    /// Chunks known to be all zeros, not fetched.
    pub(crate) zero: u64,
}

/// Chunks a worker fetches and verifies in one go: enough for the eight lanes of the
/// multi-buffer digest to stay busy although chunk lengths vary 16-fold.
const BATCH: usize = 32;

/// Writes the stream `index` describes into `sink`, with `threads` workers.
pub(crate) fn assemble(
    index: &Index,
    stores: &StoreChain,
    sink: &dyn ChunkSink,
    threads: usize,
) -> Result<AssembleStats> {
    let spans: Vec<ChunkSpan> = index.spans().collect();
    let job = Job {
        stores,
        sink,
        digest: index.header.digest(),
        zero_id: zero_chunk_id(&spans, index.header.sizes.max, index.header.digest()),
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let zero_count = AtomicUsize::new(0);

    thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut worker = Worker::default();
                while !failed.load(Ordering::Relaxed) {
                    let first = next.fetch_add(BATCH, Ordering::Relaxed);
                    let Some(batch) = spans.get(first..spans.len().min(first + BATCH)) else {
                        break;
                    };
                    match worker.run(&job, batch) {
                        Ok(zeros) => {
                            zero_count.fetch_add(zeros, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            sink.abort();
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let zero = zero_count.into_inner() as u64;
    Ok(AssembleStats {
        fetched: spans.len() as u64 - zero,
        zero,
    })
}

/// What every worker shares.
struct Job<'a> {
    stores: &'a StoreChain,
    sink: &'a dyn ChunkSink,
    digest: DigestAlgorithm,
    zero_id: Option<ChunkId>,
}

/// A worker's reusable buffers.
#[derive(Default)]
struct Worker {
    decompressor: Decompressor,
    scratch: Vec<u8>,
    chunks: [Vec<u8>; BATCH],
}

impl Worker {
    /// Fetches, verifies and writes a batch of consecutive chunks; returns how many were
    /// all-zero chunks written without fetching.
    fn run(&mut self, job: &Job<'_>, batch: &[ChunkSpan]) -> Result<usize> {
        let mut problems = None;
        let mut sources = [None; BATCH];
        let mut zeros = 0;
        for (k, span) in batch.iter().enumerate() {
            if Some(span.id) == job.zero_id {
                zeros += 1;
                continue;
            }
            let found = job.stores.fetch_decoded(
                &span.id,
                span.len() as usize,
                0,
                &mut self.decompressor,
                &mut self.scratch,
                &mut self.chunks[k],
                &mut problems,
            )?;
            match found {
                Some(store) => sources[k] = Some(store),
                None => return Err(job.stores.no_good_copy(&span.id, &mut problems)),
            }
        }
        let fetched: Vec<&[u8]> = (0..batch.len())
            .filter(|&k| sources[k].is_some())
            .map(|k| self.chunks[k].as_slice())
            .collect();
        let ids = digest_all(job.digest, &fetched);
        let mut ids = ids.iter();
        for (k, span) in batch.iter().enumerate() {
            let Some(store) = sources[k] else {
                job.sink
                    .write_zeros(span.start, span.len() as usize)
                    .context(|| "writing output".into())?;
                continue;
            };
            if ids.next() != Some(&span.id) {
                // A bad copy: say so, then look in the stores after the one that had it.
                job.stores.reject(
                    &span.id,
                    store,
                    "content does not match its id".into(),
                    &mut problems,
                );
                job.stores.fetch_verified(
                    &span.id,
                    span.len() as usize,
                    job.digest,
                    store + 1,
                    &mut self.decompressor,
                    &mut self.scratch,
                    &mut self.chunks[k],
                    &mut problems,
                )?;
            }
            job.sink
                .write_chunk(span.start, &self.chunks[k])
                .context(|| "writing output".into())?;
        }
        Ok(zeros)
    }
}

/// The id of a chunk of `max` zero bytes, if the index has chunks of that size: such chunks
/// (free space in images) are written without fetching anything.
fn zero_chunk_id(spans: &[ChunkSpan], max: u64, digest: DigestAlgorithm) -> Option<ChunkId> {
    spans
        .iter()
        .any(|s| s.len() == max)
        .then(|| digest.digest(&vec![0; usize::try_from(max).unwrap_or(0)]))
}

/// A sink that puts chunks back in stream order before writing them to `W`. A worker whose
/// chunk comes too far ahead waits, so at most `limit` bytes wait in memory (plus the chunk that
/// is next, which never waits).
pub(crate) struct OrderedSink<W> {
    state: Mutex<OrderedState<W>>,
    progress: Condvar,
    limit: usize,
}

struct OrderedState<W> {
    out: W,
    next: u64,
    waiting: BTreeMap<u64, Vec<u8>>,
    waiting_bytes: usize,
    failed: bool,
}

impl<W: Write + Send> OrderedSink<W> {
    pub(crate) fn new(out: W, limit: usize) -> Self {
        Self {
            state: Mutex::new(OrderedState {
                out,
                next: 0,
                waiting: BTreeMap::new(),
                waiting_bytes: 0,
                failed: false,
            }),
            progress: Condvar::new(),
            limit,
        }
    }

    /// The writer, once every chunk has been written.
    pub(crate) fn into_inner(self) -> W {
        self.state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .out
    }
}

impl<W: Write + Send> ChunkSink for OrderedSink<W> {
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while offset != state.next && state.waiting_bytes + data.len() > self.limit && !state.failed
        {
            state = self.progress.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failed {
            return Err(io::Error::other("output failed"));
        }
        if offset != state.next {
            state.waiting_bytes += data.len();
            state.waiting.insert(offset, data.to_vec());
            return Ok(());
        }
        let state = &mut *state;
        let result = (|| {
            state.out.write_all(data)?;
            state.next += data.len() as u64;
            while let Some(data) = state.waiting.remove(&state.next) {
                state.waiting_bytes -= data.len();
                state.out.write_all(&data)?;
                state.next += data.len() as u64;
            }
            Ok(())
        })();
        state.failed = result.is_err();
        self.progress.notify_all();
        result
    }

    fn abort(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
        self.progress.notify_all();
    }
}
