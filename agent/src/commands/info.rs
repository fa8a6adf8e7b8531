//! `otasync info INDEX`: what an index holds, as text or JSON.

use super::read_bounded;
use crate::error::{Error, Result};
use otasync_core::Index;
use serde_json::json;
use std::collections::HashSet;

pub(crate) fn run(path: &str, as_json: bool) -> Result<()> {
    let bytes = read_bounded(path, super::MAX_INDEX_BYTES)?;
    let index = Index::decode(&bytes).map_err(|e| Error::InvalidInput {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let summary = Summary::of(&index, &bytes);
    if as_json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
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
