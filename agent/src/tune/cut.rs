//! Cutting one input with one candidate's chunk sizes, in the calling thread, so that its CPU
//! cost can be measured (the `make` pipeline spreads the same work over threads of its own).
//! The boundaries and ids are exactly those `make` and a seeded `extract` compute.

use super::cputime::thread_cpu_time;
use crate::digest_batch::digest_all;
use crate::error::{IoContext, Result};
use otasync_core::index::ChunkEntry;
use otasync_core::stream::ChunkReader;
use otasync_core::{ChunkSizes, Chunker, DigestAlgorithm};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Chunks named together: the multi-buffer digest hashes a batch's chunks side by side.
const BATCH: usize = 16;

/// The chunks of one input.
pub(crate) struct Cut {
    /// Index entries in stream order.
    pub(crate) entries: Vec<ChunkEntry>,
    /// CPU time the cut took (reading, cutting, naming).
    pub(crate) cpu: Duration,
}

/// Cuts the file at `path` with `sizes` and names each chunk with `digest`.
pub(crate) fn cut_file(path: &Path, sizes: ChunkSizes, digest: DigestAlgorithm) -> Result<Cut> {
    let started = thread_cpu_time();
    let file = File::open(path).at("opening", path)?;
    let mut entries = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut end = 0u64;
    let mut name_batch = |batch: &mut Vec<Vec<u8>>, entries: &mut Vec<ChunkEntry>| {
        let data: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for (chunk, id) in batch.iter().zip(digest_all(digest, &data)) {
            end += chunk.len() as u64;
            entries.push(ChunkEntry { end, id });
        }
        batch.clear();
    };
    for chunk in ChunkReader::new(file, Chunker::new(sizes)) {
        batch.push(chunk.at("reading", path)?);
        if batch.len() == BATCH {
            name_batch(&mut batch, &mut entries);
        }
    }
    name_batch(&mut batch, &mut entries);
    Ok(Cut {
        entries,
        cpu: thread_cpu_time().saturating_sub(started),
    })
}
