//! `otasync report --new=NEW.caibx --old=OLD.caibx… --out=report.html`: the release report
//! page (built by [`crate::report::write_report`], which `publish` can call too), and a
//! one-line summary per old release on stdout.

use super::{decode_index, read_index_bytes, read_stores};
use crate::cli::Options;
use crate::error::Result;
use crate::report::{Release, write_report};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

/// `otasync report`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The new release's index; its chunks' stored sizes come from --store (default: the
    /// store casync would use for it).
    #[arg(long, value_name = "NEW.caibx")]
    new: String,
    /// An older release's index; repeat for each release devices may hold.
    #[arg(long, required = true, value_name = "OLD.caibx")]
    old: Vec<String>,
    /// Where to write the HTML page.
    #[arg(long, value_name = "report.html")]
    out: PathBuf,
}

pub(crate) fn run(options: &Options, args: &ReportArgs) -> Result<()> {
    let new_bytes = read_index_bytes(options, &args.new)?;
    let new_index = decode_index(&args.new, &new_bytes)?;
    let mut olds = Vec::with_capacity(args.old.len());
    for old in &args.old {
        let bytes = read_index_bytes(options, old)?;
        olds.push((old, decode_index(old, &bytes)?, bytes.len() as u64));
    }
    let new = Release {
        name: release_name(&args.new),
        index: &new_index,
        index_bytes: new_bytes.len() as u64,
    };
    let olds: Vec<Release<'_>> = olds
        .iter()
        .map(|(path, index, bytes)| Release {
            name: release_name(path),
            index,
            index_bytes: *bytes,
        })
        .collect();
    let stores = read_stores(options, &args.new)?;
    let comparisons = write_report(&args.out, &new, &olds, &stores)?;
    if options.json {
        let list: Vec<serde_json::Value> = comparisons
            .iter()
            .map(|c| {
                json!({
                    "old": c.old,
                    "download_bytes": c.download(),
                    "index_bytes": c.index_bytes,
                    "chunk_bytes": c.chunk_bytes,
                    "requests": c.requests,
                    "not_in_stores": c.not_in_stores,
                    "fetched_raw_bytes": c.shares.fetched,
                    "reused_bytes": c.shares.reused,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "new": new.name, "report": args.out.display().to_string(), "olds": list })
        );
    } else {
        for c in &comparisons {
            println!(
                "{} -> {}: download {} bytes (index {} + chunks {}) in {} requests",
                c.old,
                new.name,
                c.download(),
                c.index_bytes,
                c.chunk_bytes,
                c.requests
            );
        }
    }
    Ok(())
}

/// A release's name from its index's path: the file name without `.caibx`.
fn release_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".caibx").unwrap_or(file).to_owned()
}
