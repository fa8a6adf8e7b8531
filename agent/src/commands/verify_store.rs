//! `otasync verify [--store=…]... [--repair] INDEX [FILE|DEV]`: check that the stores hold every
//! chunk the index references, each decoding to the bytes its id names; and, with a file or
//! device, that it holds what the index describes. Every problem is listed; the exit code says
//! whether chunks are missing (4) or something is corrupt or differs (5). `--repair` removes
//! corrupt chunk files from local stores, so that the next `make` writes them again.

use super::{read_index, read_stores};
use crate::cli::Options;
use crate::compression::Decompressor;
use crate::digest_batch::digest_all;
use crate::error::{Error, IoContext, Result};
use crate::store::StoreChain;
use otasync_core::index::ChunkSpan;
use otasync_core::{ChunkId, DigestAlgorithm, Index};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Chunks hashed together when checking a file.
const FILE_BATCH: usize = 16;

/// One thing found wrong.
enum Problem {
    Missing(ChunkId),
    Corrupt {
        id: ChunkId,
        store: usize,
        reason: String,
    },
    Differs(ChunkSpan),
}

pub(crate) fn run(
    options: &Options,
    index_path: &str,
    target: Option<&str>,
    repair: bool,
) -> Result<()> {
    let index = read_index(options, index_path)?;
    let stores = read_stores(options, index_path)?;
    let mut problems = check_stores(&index, &stores, options.threads_for(&stores))?;
    if let Some(target) = target {
        problems.extend(check_target(&index, Path::new(target))?);
    }
    let names = stores.names();
    for problem in &problems {
        match problem {
            Problem::Missing(id) => println!("missing chunk {id}"),
            Problem::Corrupt { id, store, reason } => {
                println!("corrupt chunk {id} in {}: {reason}", names[*store])
            }
            Problem::Differs(span) => println!(
                "{}: bytes {}..{} differ from chunk {}",
                target.unwrap_or_default(),
                span.start,
                span.end,
                span.id
            ),
        }
    }
    if repair {
        for problem in &problems {
            if let Problem::Corrupt { id, store, .. } = problem
                && stores
                    .remove(*store, id)
                    .context(|| format!("removing chunk {id}"))?
            {
                println!("removed corrupt chunk {id} from {}", names[*store]);
            }
        }
    }
    let unique: HashSet<ChunkId> = index.chunks.iter().map(|c| c.id).collect();
    println!(
        "{} chunks checked, {} problems",
        unique.len(),
        problems.len()
    );
    verdict(&problems, &names)
}

/// The error that gives the exit code: corruption or differences (5) before missing chunks (4).
fn verdict(problems: &[Problem], names: &[String]) -> Result<()> {
    let reason = format!("{} problems, listed above", problems.len());
    let bad = problems.iter().find_map(|p| match p {
        Problem::Corrupt { id, store, .. } => Some((*id, names[*store].clone())),
        Problem::Differs(span) => Some((span.id, "the target".to_owned())),
        Problem::Missing(_) => None,
    });
    if let Some((id, store)) = bad {
        return Err(Error::ChunkCorrupt { id, store, reason });
    }
    match problems.first() {
        Some(Problem::Missing(id)) => Err(Error::ChunkMissing {
            id: *id,
            stores: names.to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Fetches every distinct chunk from the stores (each store that has it: all copies must be
/// good) and checks it.
fn check_stores(index: &Index, stores: &StoreChain, threads: usize) -> Result<Vec<Problem>> {
    let ids: Vec<ChunkSpan> = {
        let mut seen = HashSet::new();
        index.spans().filter(|s| seen.insert(s.id)).collect()
    };
    let digest = index.header.digest();
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let (mut decompressor, mut stored, mut data) =
                    (Decompressor::default(), Vec::new(), Vec::new());
                while let Some(span) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match check_chunk(
                        span,
                        digest,
                        stores,
                        &mut decompressor,
                        &mut stored,
                        &mut data,
                    ) {
                        Ok(problems) => found
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(problems),
                        Err(e) => {
                            failure
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
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn check_chunk(
    span: &ChunkSpan,
    digest: DigestAlgorithm,
    stores: &StoreChain,
    decompressor: &mut Decompressor,
    stored: &mut Vec<u8>,
    data: &mut Vec<u8>,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let mut reported = None;
    let mut first = 0;
    let mut any = false;
    let size = span.len() as usize;
    while let Some(copy) = stores.fetch_decoded(
        &span.id,
        size,
        first,
        decompressor,
        stored,
        data,
        &mut reported,
    )? {
        any = true;
        if crate::sha512_stream::digest(digest, data) != span.id {
            problems.push(Problem::Corrupt {
                id: span.id,
                store: copy.store,
                reason: "content does not match its id".into(),
            });
        }
        first = copy.store + 1;
    }
    // Copies that would not decode were recorded by the chain.
    if let Some(Error::ChunkCorrupt { reason, store, .. }) = reported {
        let index = stores.names().iter().position(|n| *n == store).unwrap_or(0);
        problems.push(Problem::Corrupt {
            id: span.id,
            store: index,
            reason,
        });
        any = true;
    }
    if !any {
        problems.push(Problem::Missing(span.id));
    }
    Ok(problems)
}

/// Compares a file or device with the index, chunk by chunk.
fn check_target(index: &Index, path: &Path) -> Result<Vec<Problem>> {
    let file = File::open(path).at("opening", path)?;
    let size = crate::blockdev::size(&file).at("reading the size of", path)?;
    let spans: Vec<ChunkSpan> = index.spans().collect();
    let digest = index.header.digest();
    let mut problems = Vec::new();
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); FILE_BATCH];
    for batch in spans.chunks(FILE_BATCH) {
        let mut readable = Vec::new();
        for (span, buf) in batch.iter().zip(buffers.iter_mut()) {
            if span.end > size {
                problems.push(Problem::Differs(*span));
                continue;
            }
            buf.resize(span.len() as usize, 0);
            file.read_exact_at(buf, span.start).at("reading", path)?;
            readable.push((span, buf.as_slice()));
        }
        let data: Vec<&[u8]> = readable.iter().map(|(_, b)| *b).collect();
        for ((span, _), id) in readable.iter().zip(digest_all(digest, &data)) {
            if id != span.id {
                problems.push(Problem::Differs(**span));
            }
        }
    }
    Ok(problems)
}
