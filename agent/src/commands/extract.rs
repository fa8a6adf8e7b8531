//! `otasync extract INDEX.caibx OUTPUT`: reassemble a blob from what is already there (the
//! output itself, seeds) and the chunk stores.

use super::{
    decode_index, open_seeds, read_index_bytes, read_stores, seed_index_cache, seed_specs,
};
use crate::assemble::chunks_to_fetch;
use crate::assemble::{AssembleStats, Sources, assemble};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::output::Target;
use crate::progress::Progress;
use crate::seed::{SeedSet, SeedSpec, cut_seed};
use crate::seed_cache::SeedIndexCache;
use crate::sink::{OrderedSink, PositionalSink};
use otasync_core::ChunkId;
use serde_json::json;
use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// Bytes of chunks that may wait for their turn when writing to a stream.
const REORDER_LIMIT: usize = 16 << 20;

pub(crate) fn run(
    options: &Options,
    index_path: &str,
    output: Option<&str>,
    subpath: Option<&str>,
) -> Result<()> {
    match options.what.or_else(|| What::from_name(index_path)) {
        Some(What::BlobIndex) => {}
        Some(What::Archive | What::ArchiveIndex) => {
            return super::archive::extract(options, index_path, output, subpath);
        }
        _ => {
            return Err(Error::Usage(format!(
                "{index_path}: expected a .caibx, .catar or .caidx (or give --what=)"
            )));
        }
    }
    let Some(output) = output else {
        return Err(Error::Usage(
            "extracting a blob needs an output file, device or \"-\"".into(),
        ));
    };
    if subpath.is_some() {
        return Err(Error::Usage(
            "a SUBPATH applies to archives, not blobs".into(),
        ));
    }
    let started = Instant::now();
    let index_bytes = read_index_bytes(options, index_path)?;
    let index = decode_index(index_path, &index_bytes)?;
    let stores = read_stores(options, index_path)?;
    let cache = seed_index_cache(options)?;
    let threads = options.threads_for(&stores);
    let seed_output = options.seed_output.unwrap_or(true);
    let mut specs = seed_specs(options);
    let path = Path::new(output);
    // An existing regular file is replaced by a new one: its old content is a seed.
    if seed_output && output != "-" && std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        specs.push(SeedSpec {
            path: path.to_owned(),
            index: None,
        });
    }
    let mut seeds = open_seeds(options, &specs, &index.header, cache.as_ref(), threads)?;
    let seeded = Instant::now();
    let progress = Progress::start("extracting", index.blob_size(), true);

    let (stats, written) = if output == "-" {
        let sink = OrderedSink::new(
            BufWriter::with_capacity(1 << 20, io::stdout()),
            REORDER_LIMIT,
        );
        let sources = Sources {
            in_place: None,
            output: None,
            seeds: &seeds,
            stores: &stores,
        };
        let stats = assemble(&index, &sources, &sink, threads, &progress)?;
        sink.into_inner()
            .flush()
            .context(|| "writing to stdout".into())?;
        (stats, index.blob_size())
    } else {
        let target = Target::open(path, index.blob_size())?;
        if seed_output && target.is_device() {
            copy_from_target(&index, &mut seeds, &target, path, cache.as_ref(), threads)?;
        }
        let sparse = target.is_sparse() && options.punch_holes.unwrap_or(true);
        let in_place = if seed_output {
            target.previous_content()
        } else {
            None
        };
        let sink = PositionalSink::new(target.file(), sparse, target.sync_every());
        let sources = Sources {
            in_place,
            output: Some(target.file()),
            seeds: &seeds,
            stores: &stores,
        };
        let stats = assemble(&index, &sources, &sink, threads, &progress)?;
        let written = sink.written();
        target.finish(path)?;
        if let Some(cache) = &cache {
            cache.save(path, &index)?;
        }
        (stats, written)
    };
    drop(progress);
    stores.finish()?;
    let report = Report {
        stats: &stats,
        seeds: &seeds,
        stores: stores.names(),
        requests: stores.requests(),
        index_bytes: index_bytes.len() as u64,
        cached: options.cache.is_some(),
        written,
        started,
        seeded,
    };
    if options.json {
        println!("{}", report.json());
    } else if options.print_stats || options.verbose {
        eprint!("{}", report.text());
    }
    Ok(())
}

/// Most of a device's current content copied aside before an in-place update.
const TARGET_COPY_CAP: u64 = 256 << 20;

/// Chunks no seed holds may be on the device already at other offsets, which the update will
/// overwrite: copy those aside first (the target's index comes from the seed-index cache or
/// from cutting the device).
fn copy_from_target(
    index: &otasync_core::Index,
    seeds: &mut SeedSet,
    target: &Target,
    path: &Path,
    cache: Option<&SeedIndexCache>,
    threads: usize,
) -> Result<()> {
    let needed = chunks_to_fetch(index, seeds);
    if needed.is_empty() {
        return Ok(());
    }
    let target_index = match cache.and_then(|c| c.load(path, &index.header)) {
        Some(cached) => cached,
        None => cut_seed(target.file(), path, &index.header, threads)?,
    };
    // What is already at its place stays there (same-offset reuse); the rest is copied.
    let in_place: HashSet<(u64, ChunkId)> = target_index.spans().map(|s| (s.start, s.id)).collect();
    let wanted: HashSet<ChunkId> = needed
        .iter()
        .filter(|s| !in_place.contains(&(s.start, s.id)))
        .map(|s| s.id)
        .collect();
    let copied = seeds.add_target_copies(target.file(), &target_index, &wanted, TARGET_COPY_CAP)?;
    log::info!("{copied} bytes of the target's current content kept aside for reuse");
    Ok(())
}

/// What an extraction did, for `--print-stats` and `--json`.
struct Report<'a> {
    stats: &'a AssembleStats,
    seeds: &'a SeedSet,
    stores: Vec<String>,
    /// Network requests per store, retries included.
    requests: Vec<u64>,
    /// Size of the index file (part of what an update downloads).
    index_bytes: u64,
    /// True when the first store is the local --cache (whose chunks are not downloaded).
    cached: bool,
    written: u64,
    started: Instant,
    seeded: Instant,
}

impl Report<'_> {
    /// Stored (compressed) bytes of the chunks fetched from the stores (not the cache).
    fn chunk_bytes(&self) -> u64 {
        self.stats
            .store_bytes
            .iter()
            .skip(usize::from(self.cached))
            .sum()
    }

    /// Chunks fetched from the stores (not the cache).
    fn chunks_fetched(&self) -> u64 {
        let stores = self.stats.stores.iter().skip(usize::from(self.cached));
        stores.map(|t| t.chunks).sum()
    }

    fn text(&self) -> String {
        let s = self.stats;
        let mut out = format!(
            "all-zero chunks: {} ({} bytes)\nkept in place: {} ({} bytes)\nrepeats copied: {} ({} bytes)\n",
            s.zero.chunks,
            s.zero.bytes,
            s.in_place.chunks,
            s.in_place.bytes,
            s.repeats.chunks,
            s.repeats.bytes
        );
        for (i, t) in s.seeds.iter().enumerate() {
            out += &format!(
                "from seed {}: {} ({} bytes)\n",
                self.seeds.name(i),
                t.chunks,
                t.bytes
            );
        }
        for (i, t) in s.stores.iter().enumerate() {
            let requests = match self.requests[i] {
                0 => String::new(),
                n => format!(", {n} requests"),
            };
            out += &format!(
                "from store {}: {} ({} bytes, {} bytes fetched{requests})\n",
                self.stores[i], t.chunks, t.bytes, s.store_bytes[i]
            );
        }
        out += &format!(
            "download: {} bytes (index {} + {} fetched chunks {})\n",
            self.index_bytes + self.chunk_bytes(),
            self.index_bytes,
            self.chunks_fetched(),
            self.chunk_bytes()
        );
        out += &format!(
            "stale seed copies: {}\nbytes written: {}\ntime: {:.2} s indexing seeds, {:.2} s assembling\n",
            s.stale,
            self.written,
            (self.seeded - self.started).as_secs_f64(),
            self.seeded.elapsed().as_secs_f64()
        );
        out
    }

    fn json(&self) -> serde_json::Value {
        let s = self.stats;
        let tally = |t: &crate::assemble::Tally| json!({ "chunks": t.chunks, "bytes": t.bytes });
        json!({
            "zero": tally(&s.zero),
            "in_place": tally(&s.in_place),
            "repeats": tally(&s.repeats),
            "seeds": s.seeds.iter().enumerate().map(|(i, t)| {
                json!({ "seed": self.seeds.name(i), "chunks": t.chunks, "bytes": t.bytes })
            }).collect::<Vec<_>>(),
            "stores": s.stores.iter().enumerate().map(|(i, t)| {
                json!({
                    "store": self.stores[i],
                    "chunks": t.chunks,
                    "bytes": t.bytes,
                    "fetched_bytes": s.store_bytes[i],
                    "requests": self.requests[i],
                })
            }).collect::<Vec<_>>(),
            "download": {
                "total_bytes": self.index_bytes + self.chunk_bytes(),
                "index_bytes": self.index_bytes,
                "chunk_bytes": self.chunk_bytes(),
                "chunks": self.chunks_fetched(),
            },
            "stale_seed_chunks": s.stale,
            "written_bytes": self.written,
            "seconds": { "seeds": (self.seeded - self.started).as_secs_f64(), "assemble": self.seeded.elapsed().as_secs_f64() },
        })
    }
}
