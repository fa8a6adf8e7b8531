//! `otasync make INDEX.caibx FILE|BLOCKDEV`: chunk a blob into a store and write its index.

use super::{Input, open_input, write_store};
use crate::chunking::{ChunkJob, chunk_stream};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use crate::store::LocalStore;
use otasync_core::index::{self, ChunkEntry, IndexHeader};
use otasync_core::{DigestAlgorithm, flags};
use std::io::{BufWriter, Write};
use std::path::Path;

pub(crate) fn run(options: &Options, index_path: &str, input: Option<&str>) -> Result<()> {
    match options.what.or_else(|| What::from_name(index_path)) {
        Some(What::BlobIndex) => {}
        Some(what @ (What::Archive | What::ArchiveIndex)) => {
            return super::archive::make(options, index_path, what, input);
        }
        _ => {
            return Err(Error::Usage(format!(
                "{index_path}: the output of make must end in .caibx, .catar or .caidx (or give --what=)"
            )));
        }
    }
    let source = match open_input(input)? {
        Input::Stream(source) => source,
        Input::Directory(dir) => {
            return Err(Error::Usage(format!(
                "{} is a directory; a blob index is made from a file or block device",
                dir.display()
            )));
        }
    };
    let sizes = options.chunk_sizes()?;
    let digest = options.digest.unwrap_or_default();
    let store = write_store(options, index_path)?;
    store.create()?;
    let job = ChunkJob {
        sizes,
        digest,
        store: Some((&store, options.compression())),
        stream_digest: true,
        threads: options.threads(),
    };
    let chunked = chunk_stream(source, &job)?;

    let header = IndexHeader {
        feature_flags: blob_index_flags(digest),
        sizes,
    };
    write_index(Path::new(index_path), &header, &chunked.entries, &store)?;

    let stats = &chunked.stats;
    log::info!(
        "{} chunks ({} new, {} already stored), {} bytes in, {} bytes stored",
        chunked.entries.len(),
        stats.written,
        stats.present,
        stats.bytes,
        stats.written_bytes
    );
    if let Some(digest) = chunked.stream_digest {
        println!("{digest}");
    }
    Ok(())
}

/// Writes an index under a temporary name and renames it into place once the store's chunks
/// have reached stable storage, so that an index never refers to chunks a power cut lost.
pub(crate) fn write_index(
    target: &Path,
    header: &IndexHeader,
    entries: &[ChunkEntry],
    store: &LocalStore,
) -> Result<()> {
    let temp = TempFile::create_for(target, 0o666)?;
    let mut out = BufWriter::with_capacity(1 << 20, temp.file());
    out.write_all(&index::encode_header(header))
        .at("writing", target)?;
    for entry in entries {
        out.write_all(&index::encode_item(entry))
            .at("writing", target)?;
    }
    out.write_all(&index::encode_tail(entries.len() as u64))
        .at("writing", target)?;
    out.flush().at("writing", target)?;
    drop(out);
    store.sync()?;
    temp.commit()
}

/// Flags of a blob index, as `casync make` sets them.
pub(crate) fn blob_index_flags(digest: DigestAlgorithm) -> u64 {
    (flags::BLOB_INDEX_DEFAULT & !flags::SHA512_256) | digest.flag()
}
