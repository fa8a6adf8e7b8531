//! `otasync info INDEX`: what an index holds, as text or JSON.

use super::{decode_index, option_seeds, read_index_bytes, read_stores};
use crate::assemble::chunks_to_fetch;
use crate::cli::Options;
use crate::error::Result;
use otasync_core::Index;
use serde_json::json;
use std::collections::HashSet;

pub(crate) fn run(options: &Options, path: &str) -> Result<()> {
    let bytes = read_index_bytes(options, path)?;
    let index = decode_index(path, &bytes)?;
    let summary = Summary::of(&index, &bytes);
    // With seeds: a dry run of what an extraction would download.
    let estimate = match options.seed.is_empty() {
        true => None,
        false => Some(Estimate::of(options, path, &index, bytes.len() as u64)?),
    };
    if options.json {
        let mut json = summary.to_json();
        if let Some(estimate) = &estimate {
            json["fetch"] = estimate.to_json();
        }
        println!("{json}");
    } else {
        print!("{}", summary.to_text());
        if let Some(estimate) = &estimate {
            print!("{}", estimate.to_text());
        }
    }
    Ok(())
}

/// What an extraction with the given seeds would fetch.
struct Estimate {
    /// The index file, which a device downloads first.
    index_bytes: u64,
    chunks: usize,
    bytes: u64,
    stored_bytes: u64,
    not_in_any_store: usize,
}

impl Estimate {
    fn of(options: &Options, path: &str, index: &Index, index_bytes: u64) -> Result<Self> {
        let seeds = option_seeds(options, &index.header)?;
        let stores = read_stores(options, path)?;
        let missing = chunks_to_fetch(index, &seeds);
        let mut estimate = Self {
            index_bytes,
            chunks: missing.len(),
            bytes: 0,
            stored_bytes: 0,
            not_in_any_store: 0,
        };
        for span in &missing {
            estimate.bytes += span.len();
            match stores.stored_size(&span.id)? {
                Some(size) => estimate.stored_bytes += size,
                None => estimate.not_in_any_store += 1,
            }
        }
        Ok(estimate)
    }

    /// Bytes over the air: the index and the stored chunks.
    fn download(&self) -> u64 {
        self.index_bytes + self.stored_bytes
    }

    fn to_text(&self) -> String {
        format!(
            "Fetch: {} chunks, {} bytes ({} bytes stored)\nNot in any store: {}\n\
             Download: {} bytes (index {} + chunks {})\n",
            self.chunks,
            self.bytes,
            self.stored_bytes,
            self.not_in_any_store,
            self.download(),
            self.index_bytes,
            self.stored_bytes
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "chunks": self.chunks,
            "bytes": self.bytes,
            "stored_bytes": self.stored_bytes,
            "not_in_any_store": self.not_in_any_store,
            "index_bytes": self.index_bytes,
            "download_bytes": self.download(),
        })
    }
}

struct Summary {
    feature_flags: u64,
    digest: &'static str,
    sizes: otasync_core::ChunkSizes,
    chunks: usize,
    unique: usize,
    blob_size: u64,
    smallest: u64,
    largest: u64,
    index_bytes: usize,
    index_sha256: String,
}

impl Summary {
    fn of(index: &Index, bytes: &[u8]) -> Self {
        let lens: Vec<u64> = index.spans().map(|s| s.len()).collect();
        Self {
            feature_flags: index.header.feature_flags,
            digest: index.header.digest().name(),
            sizes: index.header.sizes,
            chunks: index.chunks.len(),
            unique: index
                .chunks
                .iter()
                .map(|c| c.id)
                .collect::<HashSet<_>>()
                .len(),
            blob_size: index.blob_size(),
            smallest: lens.iter().copied().min().unwrap_or(0),
            largest: lens.iter().copied().max().unwrap_or(0),
            index_bytes: bytes.len(),
            index_sha256: otasync_core::DigestAlgorithm::Sha256
                .digest(bytes)
                .to_string(),
        }
    }

    fn to_text(&self) -> String {
        let average = if self.chunks == 0 {
            0
        } else {
            self.blob_size / self.chunks as u64
        };
        format!(
            "Feature flags: {:#018x}\n\
             Digest: {}\n\
             Chunk sizes: min {} avg {} max {}\n\
             Chunks: {} ({} unique)\n\
             Size: {} bytes\n\
             Chunk lengths: smallest {} largest {} average {}\n\
             Index size: {} bytes\n\
             Index SHA-256: {}\n",
            self.feature_flags,
            self.digest,
            self.sizes.min,
            self.sizes.avg,
            self.sizes.max,
            self.chunks,
            self.unique,
            self.blob_size,
            self.smallest,
            self.largest,
            average,
            self.index_bytes,
            self.index_sha256
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "feature_flags": self.feature_flags,
            "digest": self.digest,
            "chunk_size": { "min": self.sizes.min, "avg": self.sizes.avg, "max": self.sizes.max },
            "chunks": self.chunks,
            "unique_chunks": self.unique,
            "size": self.blob_size,
            "smallest_chunk": self.smallest,
            "largest_chunk": self.largest,
            "index_size": self.index_bytes,
            "index_sha256": self.index_sha256,
        })
    }
}
