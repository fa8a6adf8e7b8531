//! Compressing chunks of NEW at one level exactly as `make` stores them (so the sizes are those
//! a store would hold), on all worker threads, measuring the CPU time each takes.

use super::cputime::thread_cpu_time;
use super::parallel::run_jobs;
use crate::compression::Compressor;
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// Chunks compressed per job.
const PLACES_PER_JOB: usize = 32;

/// A chunk's compressed size and the CPU time compressing it took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Compressed {
    /// Bytes of the zstd frame.
    pub(crate) size: u64,
    /// CPU time.
    pub(crate) cpu: Duration,
}

/// A worker's reusable context and buffers.
struct Worker {
    compressor: Compressor,
    data: Vec<u8>,
    out: Vec<u8>,
}

/// Compresses the chunks of `new` (the file at `path`) at `places` (offset, length) at `level`
/// on `threads` workers; results in the order of `places`.
pub(crate) fn compress_at(
    new: &File,
    path: &Path,
    places: &[(u64, u64)],
    level: i32,
    threads: usize,
) -> Result<Vec<Compressed>> {
    let jobs: Vec<&[(u64, u64)]> = places.chunks(PLACES_PER_JOB).collect();
    let init = || Worker {
        compressor: Compressor::new(level),
        data: Vec::new(),
        out: Vec::new(),
    };
    let results = run_jobs(jobs.len(), threads, init, |worker, j| {
        jobs[j]
            .iter()
            .map(|&(start, len)| compress_one(worker, new, path, start, len))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(results.into_iter().flatten().collect())
}

/// Reads one chunk and compresses it.
fn compress_one(
    worker: &mut Worker,
    new: &File,
    path: &Path,
    start: u64,
    len: u64,
) -> Result<Compressed> {
    let len = usize::try_from(len).map_err(|_| Error::Usage("chunk too large".into()))?;
    worker.data.resize(len, 0);
    new.read_exact_at(&mut worker.data, start)
        .at("reading", path)?;
    let started = thread_cpu_time();
    worker
        .compressor
        .compress(&worker.data, &mut worker.out)
        .map_err(|e| Error::Io {
            context: format!("compressing {len} bytes of {}", path.display()),
            source: io::Error::other(e.to_string()),
        })?;
    Ok(Compressed {
        size: worker.out.len() as u64,
        cpu: thread_cpu_time().saturating_sub(started),
    })
}
