//! The `make` pipeline: cut a byte stream into chunks, name each by its digest, store the new
//! ones compressed, and return the index entries in stream order. Seeds go through the same
//! pipeline without a store: only their chunks' names and places are wanted.
//!
//! ```text
//!  reader thread ──chunks──▶ worker threads (hash id, compress, write) ──ids──▶ caller (in order)
//!        └────────chunks──▶ stream-digest thread (whole-stream digest, in order)
//! ```
//! Channels are bounded, so memory stays at a few chunks per thread whatever the input size.
//! The chunk boundaries come from one sequential scan, so the result is byte-identical to
//! single-threaded casync.

use crate::compression::{Compression, Compressor};
use crate::digest_batch::digest_all;
use crate::error::{Error, IoContext, Result};
use crate::sha512_stream::StreamHasher;
use crate::store::ChunkSink;
use crate::store::local::PutOutcome;
use otasync_core::index::ChunkEntry;
use otasync_core::stream::ChunkReader;
use otasync_core::{ChunkId, ChunkSizes, Chunker, DigestAlgorithm};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

/// Chunks a worker names in one go: enough for the eight lanes of the multi-buffer digest to
/// stay busy although chunk lengths vary 16-fold.
const BATCH: usize = 16;
/// Chunks queued between stages, per worker.
const QUEUE_PER_WORKER: usize = BATCH;

/// What chunking a stream produced.
pub(crate) struct Chunked {
    /// Index entries in stream order.
    pub(crate) entries: Vec<ChunkEntry>,
    /// Digest of the whole stream, when asked for.
    pub(crate) stream_digest: Option<ChunkId>,
    /// Counters for `-v`.
    pub(crate) stats: ChunkingStats,
}

/// Counters of a chunking run.
#[derive(Debug, Default)]
pub(crate) struct ChunkingStats {
    /// Stream bytes.
    pub(crate) bytes: u64,
    /// Chunks written to the store.
    pub(crate) written: u64,
    /// Their stored (compressed) size.
    pub(crate) written_bytes: u64,
    /// Chunks the store already had.
    pub(crate) present: u64,
}

struct Piece {
    seq: u64,
    data: Arc<Vec<u8>>,
}

struct Named {
    seq: u64,
    len: u64,
    id: ChunkId,
    /// What the store did; `None` without a store.
    outcome: Option<PutOutcome>,
}

/// What to do with a stream's chunks.
pub(crate) struct ChunkJob<'a> {
    /// Chunk size limits.
    pub(crate) sizes: ChunkSizes,
    /// The digest naming chunks (and the whole stream).
    pub(crate) digest: DigestAlgorithm,
    /// Where new chunks are stored (a store directory, a bucket), and how; `None` only names
    /// them.
    pub(crate) store: Option<(&'a dyn ChunkSink, Compression)>,
    /// Whether to digest the whole stream too (what `make` prints).
    pub(crate) stream_digest: bool,
    /// Worker threads.
    pub(crate) threads: usize,
}

/// Chunks `source` as `job` says.
pub(crate) fn chunk_stream<R: Read + Send>(source: R, job: &ChunkJob<'_>) -> Result<Chunked> {
    let ChunkJob {
        sizes,
        digest,
        store,
        stream_digest,
        threads,
    } = *job;
    let threads = threads.max(1);
    let (work_tx, work_rx) = sync_channel::<Piece>(threads * QUEUE_PER_WORKER);
    let (digest_tx, digest_rx) = match stream_digest {
        true => {
            let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(threads * QUEUE_PER_WORKER);
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    let (done_tx, done_rx) = sync_channel::<Result<Named>>(threads * QUEUE_PER_WORKER);
    let work_rx = Arc::new(Mutex::new(work_rx));
    // A chunk of `max` zeros is common (free space in images); its id is known in advance.
    let zero_chunk = ZeroChunk::new(sizes.max, digest);

    thread::scope(|scope| {
        let reader = scope.spawn(move || read_chunks(source, sizes, work_tx, digest_tx));
        let digester = digest_rx.map(|rx| {
            scope.spawn(move || {
                let mut hasher = StreamHasher::new(digest);
                for data in rx {
                    hasher.update(&data);
                }
                hasher.finalize()
            })
        });
        for _ in 0..threads {
            let (work_rx, done_tx, zero_chunk) =
                (Arc::clone(&work_rx), done_tx.clone(), &zero_chunk);
            scope.spawn(move || {
                let mut compressor = Compressor::new(compression_level(store));
                let mut scratch = Vec::new();
                let mut batch = Vec::with_capacity(BATCH);
                while take_batch(&work_rx, &mut batch) {
                    let named = name_and_store(
                        &mut batch,
                        digest,
                        zero_chunk,
                        store,
                        &mut compressor,
                        &mut scratch,
                    );
                    if named.into_iter().try_for_each(|n| done_tx.send(n)).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the workers may hold the queue's receiver: if they all stop, the reader must see
        // a closed channel instead of blocking on a full one.
        drop(work_rx);
        drop(done_tx);
        let collected = collect_in_order(done_rx);
        // On an early error, dropping the receiver stops the workers; the reader then stops
        // on its closed channel.
        let reader_result = reader.join().unwrap_or_else(|_| Err(panicked("reader")));
        let stream_digest = match digester {
            Some(digester) => Some(digester.join().map_err(|_| panicked("digest"))?),
            None => None,
        };
        let (entries, mut stats) = collected?;
        stats.bytes = reader_result?;
        Ok(Chunked {
            entries,
            stream_digest,
            stats,
        })
    })
}

fn panicked(what: &str) -> Error {
    Error::Io {
        context: format!("{what} thread"),
        source: std::io::Error::other("panicked"),
    }
}

fn compression_level(store: Option<(&dyn ChunkSink, Compression)>) -> i32 {
    match store {
        Some((_, Compression::Zstd(level))) => level,
        _ => crate::compression::DEFAULT_LEVEL,
    }
}

/// Reads and cuts the stream, handing each chunk to the workers and the stream digest.
fn read_chunks<R: Read>(
    source: R,
    sizes: ChunkSizes,
    work: SyncSender<Piece>,
    digest: Option<SyncSender<Arc<Vec<u8>>>>,
) -> Result<u64> {
    let mut total = 0u64;
    for (seq, chunk) in ChunkReader::new(source, Chunker::new(sizes)).enumerate() {
        let data = Arc::new(chunk.context(|| "reading input".to_owned())?);
        total += data.len() as u64;
        if digest
            .as_ref()
            .is_some_and(|d| d.send(Arc::clone(&data)).is_err())
            || work
                .send(Piece {
                    seq: seq as u64,
                    data,
                })
                .is_err()
        {
            break;
        }
    }
    Ok(total)
}

/// The id of an all-zero chunk of one size, computed once.
struct ZeroChunk {
    len: usize,
    id: ChunkId,
}

impl ZeroChunk {
    fn new(len: u64, digest: DigestAlgorithm) -> Self {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        Self {
            len,
            id: digest.digest(&vec![0; len]),
        }
    }

    fn matches(&self, data: &[u8]) -> bool {
        data.len() == self.len && data.iter().all(|&b| b == 0)
    }
}

/// Takes the next batch of pieces, waiting until it is full (the multi-buffer digest hashes a
/// batch's chunks side by side) or the queue is closed. False once nothing is left.
fn take_batch(queue: &Mutex<Receiver<Piece>>, batch: &mut Vec<Piece>) -> bool {
    batch.clear();
    // Held while a whole batch arrives, so that each worker gets consecutive full batches.
    let Ok(queue) = queue.lock() else {
        return false;
    };
    while batch.len() < BATCH {
        match queue.recv() {
            Ok(piece) => batch.push(piece),
            Err(_) => break,
        }
    }
    !batch.is_empty()
}

/// Names a batch of chunks (all-zero ones by the precomputed id) and stores the new ones.
fn name_and_store(
    batch: &mut Vec<Piece>,
    digest: DigestAlgorithm,
    zero_chunk: &ZeroChunk,
    store: Option<(&dyn ChunkSink, Compression)>,
    compressor: &mut Compressor,
    scratch: &mut Vec<u8>,
) -> Vec<Result<Named>> {
    let zero: Vec<bool> = batch.iter().map(|p| zero_chunk.matches(&p.data)).collect();
    let to_hash: Vec<&[u8]> = batch
        .iter()
        .zip(&zero)
        .filter(|(_, z)| !**z)
        .map(|(p, _)| p.data.as_slice())
        .collect();
    let mut ids = digest_all(digest, &to_hash).into_iter();
    let mut named = Vec::with_capacity(batch.len());
    for (piece, is_zero) in batch.drain(..).zip(zero) {
        let id = if is_zero {
            zero_chunk.id
        } else {
            ids.next().unwrap_or(zero_chunk.id)
        };
        let outcome = match store {
            Some((store, compression)) => {
                match store.put(&id, &piece.data, compression, compressor, scratch) {
                    Ok(outcome) => Some(outcome),
                    Err(e) => {
                        named.push(Err(e));
                        continue;
                    }
                }
            }
            None => None,
        };
        named.push(Ok(Named {
            seq: piece.seq,
            len: piece.data.len() as u64,
            id,
            outcome,
        }));
    }
    named
}

/// Receives named chunks in any order and returns them in stream order.
fn collect_in_order(done: Receiver<Result<Named>>) -> Result<(Vec<ChunkEntry>, ChunkingStats)> {
    let mut entries = Vec::new();
    let mut stats = ChunkingStats::default();
    let mut early: BTreeMap<u64, Named> = BTreeMap::new();
    let mut end = 0u64;
    for named in done {
        let named = named?;
        early.insert(named.seq, named);
        while let Some(next) = early.remove(&(entries.len() as u64)) {
            end += next.len;
            match next.outcome {
                Some(PutOutcome::Written { stored_bytes }) => {
                    stats.written += 1;
                    stats.written_bytes += stored_bytes;
                }
                Some(PutOutcome::Present) => stats.present += 1,
                None => {}
            }
            entries.push(ChunkEntry { end, id: next.id });
        }
    }
    Ok((entries, stats))
}
