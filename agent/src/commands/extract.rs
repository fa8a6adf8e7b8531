//! `otasync extract INDEX.caibx OUTPUT`: reassemble a blob from its chunks.

use super::{read_index, read_stores};
use crate::assemble::{OrderedSink, assemble};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::output::{PositionalSink, Target};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Bytes of chunks that may wait for their turn when writing to a stream.
const REORDER_LIMIT: usize = 16 << 20;

pub(crate) fn run(options: &Options, index_path: &str, output: &str) -> Result<()> {
    match options.what.or_else(|| What::from_name(index_path)) {
        Some(What::BlobIndex) => {}
        Some(What::Archive | What::ArchiveIndex) => {
            return Err(Error::Usage(
                "extracting .catar/.caidx archives is not implemented yet".into(),
            ));
        }
        _ => {
            return Err(Error::Usage(format!(
                "{index_path}: expected a .caibx blob index (or give --what=blob-index)"
            )));
        }
    }
    let index = read_index(index_path)?;
    let stores = read_stores(options, index_path);
    let threads = options.threads();
    let stats = if output == "-" {
        let sink = OrderedSink::new(
            BufWriter::with_capacity(1 << 20, io::stdout()),
            REORDER_LIMIT,
        );
        let stats = assemble(&index, &stores, &sink, threads)?;
        sink.into_inner()
            .flush()
            .context(|| "writing to stdout".into())?;
        stats
    } else {
        let path = Path::new(output);
        let target = Target::open(path, index.blob_size())?;
        let sparse = target.is_sparse() && options.punch_holes.unwrap_or(true);
        let stats = assemble(
            &index,
            &stores,
            &PositionalSink::new(target.file(), sparse),
            threads,
        )?;
        target.finish(path)?;
        stats
    };
    log::info!(
        "{} bytes in {} chunks: {} fetched, {} all-zero",
        index.blob_size(),
        index.chunks.len(),
        stats.fetched,
        stats.zero
    );
    Ok(())
}
