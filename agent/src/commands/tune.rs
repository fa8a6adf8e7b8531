//! `otasync tune --old=OLD --new=NEW`: the chunk sizes and zstd level that make the smallest
//! download from OLD to NEW, as a table or JSON (the work is in [`crate::tune`]).

use super::read_index;
use crate::cli::{Options, What, parse_chunk_size};
use crate::error::{Error, Result};
use crate::tune::{Evaluation, Old, Plan, Row, evaluate, format_sizes};
use clap::Args;
use otasync_core::{ChunkSizes, DigestAlgorithm};
use serde_json::json;
use std::path::PathBuf;

/// Candidates (min, avg, max) tried unless `--candidates` says otherwise: casync's default,
/// smaller averages with its min = avg/4 and max = 4 avg, and two with the minimum close to
/// the average (fewer small chunks, so a smaller index for the same granularity), which made
/// the smallest downloads of the benchmark's root file system images.
const DEFAULT_CANDIDATES: [(u64, u64, u64); 6] = [
    (16 << 10, 64 << 10, 256 << 10),
    (8 << 10, 32 << 10, 128 << 10),
    (4 << 10, 16 << 10, 64 << 10),
    (2 << 10, 8 << 10, 32 << 10),
    (4 << 10, 8 << 10, 32 << 10),
    (4 << 10, 6 << 10, 24 << 10),
];
/// Levels tried unless `--levels` says otherwise: casync's, and one that trades make time for
/// size.
const DEFAULT_LEVELS: [i32; 2] = [3, 19];

/// `otasync tune`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// What devices hold: the old image, or its .caibx (usable only with a candidate of the
    /// sizes it was made with); repeat for several old releases (each evaluated on its own).
    #[arg(long, required = true, value_name = "OLD.img|OLD.caibx")]
    old: Vec<String>,
    /// The new image.
    #[arg(long, value_name = "NEW.img")]
    new: PathBuf,
    /// Chunk sizes to try, comma-separated, each MIN:AVG:MAX or AVG (default: 16K:64K:256K,
    /// 8K:32K:128K, 4K:16K:64K, 2K:8K:32K, 4K:8K:32K, 4K:6K:24K; with an old .caibx, its sizes).
    #[arg(long, value_delimiter = ',', value_name = "SIZES,…", value_parser = parse_chunk_size)]
    candidates: Vec<ChunkSizes>,
    /// zstd levels to try with each candidate, comma-separated (default 3,19).
    #[arg(long, value_delimiter = ',', value_name = "N,…", value_parser = clap::value_parser!(i32).range(1..=22))]
    levels: Vec<i32>,
    /// Compute every row exactly; by default the costlier levels of rows that cannot win are
    /// estimated from a sample of their chunks (marked `~`).
    #[arg(long)]
    exact: bool,
}

pub(crate) fn run(options: &Options, args: &TuneArgs) -> Result<()> {
    let mut olds = Vec::with_capacity(args.old.len());
    for old in &args.old {
        olds.push(match What::from_name(old) {
            Some(What::BlobIndex) => Old::Index {
                path: old.clone(),
                index: read_index(options, old)?,
            },
            Some(_) => {
                return Err(Error::Usage(format!(
                    "--old={old}: expected an image or a .caibx blob index"
                )));
            }
            None => Old::Image(old.into()),
        });
    }
    let candidates = candidates(args, &olds)?;
    let mut levels = match args.levels.is_empty() {
        true => DEFAULT_LEVELS.to_vec(),
        false => args.levels.clone(),
    };
    dedup(&mut levels);
    let digest = options.digest.unwrap_or_else(|| {
        olds.iter()
            .find_map(|old| match old {
                Old::Index { index, .. } => Some(index.header.digest()),
                Old::Image(_) => None,
            })
            .unwrap_or(DigestAlgorithm::default())
    });
    let plan = Plan {
        new: &args.new,
        olds: &olds,
        candidates: &candidates,
        levels: &levels,
        digest,
        threads: options.threads(),
        exact: args.exact,
    };
    let evaluation = evaluate(&plan)?;
    let names: Vec<String> = olds.iter().map(Old::name).collect();
    if options.json {
        println!("{}", to_json(args, &names, &evaluation));
    } else {
        print!("{}", to_text(args, &names, &evaluation));
    }
    Ok(())
}

/// The candidates: as given, else the sizes of the old indexes, else the defaults; each one
/// casync could write an index for, each once.
fn candidates(args: &TuneArgs, olds: &[Old]) -> Result<Vec<ChunkSizes>> {
    let mut candidates = if !args.candidates.is_empty() {
        args.candidates.clone()
    } else {
        let of_indexes: Vec<ChunkSizes> = olds
            .iter()
            .filter_map(|old| match old {
                Old::Index { index, .. } => Some(index.header.sizes),
                Old::Image(_) => None,
            })
            .collect();
        match of_indexes.is_empty() {
            true => DEFAULT_CANDIDATES
                .iter()
                .filter_map(|&(min, avg, max)| ChunkSizes::derive(min, avg, max).ok())
                .collect(),
            false => of_indexes,
        }
    };
    dedup(&mut candidates);
    let window = otasync_core::chunker::WINDOW_SIZE as u64;
    if let Some(small) = candidates.iter().find(|s| !s.is_fixed() && s.max < window) {
        return Err(Error::Usage(format!(
            "--candidates: {} has a maximum below the {window}-byte hash window",
            format_sizes(*small)
        )));
    }
    Ok(candidates)
}

/// Removes repeated values, keeping the first of each.
fn dedup<T: PartialEq + Copy>(values: &mut Vec<T>) {
    let mut seen = Vec::with_capacity(values.len());
    values.retain(|v| {
        let new = !seen.contains(v);
        seen.push(*v);
        new
    });
}

/// Megabytes (10^6 bytes) with two decimals.
fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

/// The table, one per old release, and the recommendation.
fn to_text(args: &TuneArgs, names: &[String], evaluation: &Evaluation) -> String {
    let candidates = evaluation.rows.len();
    let mut out = format!(
        "NEW {} ({} bytes): {candidates} candidate/level pairs in {:.1} s\n\
         download = NEW's index + the compressed chunks a device holding OLD fetches \
         (MB = 10^6 bytes); make = CPU seconds to cut NEW and compress its new chunks; \
         ~ = estimated from a sample of the chunks (--exact computes all)\n",
        args.new.display(),
        evaluation.new_size,
        evaluation.wall.as_secs_f64()
    );
    for (k, name) in names.iter().enumerate() {
        out += &format!(
            "\nagainst {name}:\n{:<16} {:>5} {:>12} {:>9} {:>10} {:>9} {:>10} {:>7}\n",
            "chunk sizes",
            "level",
            "download MB",
            "index MB",
            "chunks MB",
            "requests",
            "growth MB",
            "make s"
        );
        for (r, row) in evaluation.rows.iter().enumerate() {
            let delta = &row.deltas[k];
            out += &format!(
                "{:<16} {:>5} {:>12} {:>9} {:>10} {:>9} {:>10} {:>7.1}{}\n",
                format_sizes(row.sizes),
                row.level,
                format!(
                    "{}{}",
                    if row.estimated { "~" } else { "" },
                    mb(row.download(k))
                ),
                mb(row.index_bytes),
                mb(delta.chunk_bytes),
                delta.requests,
                mb(delta.store_growth),
                row.make_cpu().as_secs_f64(),
                if r == evaluation.recommended {
                    "  <-"
                } else {
                    ""
                }
            );
        }
    }
    let best = &evaluation.rows[evaluation.recommended];
    out += &format!(
        "\nrecommended: --chunk-size={} --compression-level={} ({} MB",
        format_sizes(best.sizes),
        best.level,
        mb(best.total_download())
    );
    if let Some(default) = casync_default(evaluation) {
        out += &format!(
            "; casync's defaults 16K:64K:256K, level 3: {} MB",
            mb(default.total_download())
        );
    }
    out += ")\n";
    out
}

/// The row of casync's defaults, if it was evaluated.
fn casync_default(evaluation: &Evaluation) -> Option<&Row> {
    evaluation
        .rows
        .iter()
        .find(|r| r.sizes == ChunkSizes::default() && r.level == crate::compression::DEFAULT_LEVEL)
}

fn to_json(args: &TuneArgs, names: &[String], evaluation: &Evaluation) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = evaluation
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let s = row.sizes;
            json!({
                "chunk_size": { "min": s.min, "avg": s.avg, "max": s.max },
                "chunk_size_arg": format_sizes(s),
                "level": row.level,
                "chunks": row.chunks,
                "index_bytes": row.index_bytes,
                "download_bytes": row.total_download(),
                "requests": row.total_requests(),
                "olds": names.iter().zip(&row.deltas).enumerate().map(|(k, (name, d))| json!({
                    "old": name,
                    "download_bytes": row.download(k),
                    "index_bytes": row.index_bytes,
                    "chunk_bytes": d.chunk_bytes,
                    "raw_chunk_bytes": d.raw_bytes,
                    "requests": d.requests,
                    "store_growth_bytes": d.store_growth,
                })).collect::<Vec<_>>(),
                "make_cpu_seconds": row.make_cpu().as_secs_f64(),
                "cut_cpu_seconds": row.cut_cpu.as_secs_f64(),
                "compress_cpu_seconds": row.compress_cpu.as_secs_f64(),
                "estimated": row.estimated,
                "recommended": r == evaluation.recommended,
            })
        })
        .collect();
    let best = &evaluation.rows[evaluation.recommended];
    json!({
        "new": args.new.display().to_string(),
        "new_size": evaluation.new_size,
        "olds": names,
        "seconds": evaluation.wall.as_secs_f64(),
        "candidates": rows,
        "recommended": {
            "chunk_size": format_sizes(best.sizes),
            "level": best.level,
            "download_bytes": best.total_download(),
            "args": format!("--chunk-size={} --compression-level={}", format_sizes(best.sizes), best.level),
        },
    })
}
