//! `otasync digest FILE|BLOCKDEV|INDEX.caibx`: the digest casync prints for the same input.

use super::{Input, open_input, read_index, read_stores};
use crate::assemble::{Sources, assemble};
use crate::cli::{Options, What};
use crate::error::{IoContext, Result};
use crate::progress::Progress;
use crate::seed::SeedSet;
use crate::sha512_stream::StreamHasher;
use crate::sink::OrderedSink;
use std::io::{self, Read, Write};

/// Read size for hashing streams.
const READ_SIZE: usize = 1 << 20;

pub(crate) fn run(options: &Options, input: Option<&str>, subpath: Option<&str>) -> Result<()> {
    let name = input.unwrap_or("-");
    let digest = match options.what.or_else(|| What::from_name(name)) {
        Some(What::BlobIndex) => {
            // casync always prints SHA-512/256 here, even for a SHA-256 index (spec §6); we
            // use the index's own algorithm unless --digest says otherwise.
            let index = read_index(options, name)?;
            let hasher = HashWriter(StreamHasher::new(
                options.digest.unwrap_or(index.header.digest()),
            ));
            let sink = OrderedSink::new(hasher, 16 << 20);
            let stores = read_stores(options, name)?;
            let sources = Sources {
                in_place: None,
                output: None,
                seeds: &SeedSet::empty(),
                stores: &stores,
            };
            let progress = Progress::start("reading", index.blob_size(), true);
            assemble(
                &index,
                &sources,
                &sink,
                options.threads_for(&stores),
                &progress,
            )?;
            sink.into_inner().0.finalize()
        }
        Some(What::Archive | What::ArchiveIndex | What::Directory) => {
            return super::archive::view(options, name, subpath, super::archive::View::Digest);
        }
        Some(What::Blob) | None => match open_input(input)? {
            Input::Stream(source) => hash_stream(
                source,
                StreamHasher::new(options.digest.unwrap_or_default()),
            )
            .context(|| format!("reading {name}"))?,
            Input::Directory(_) => {
                return super::archive::view(options, name, subpath, super::archive::View::Digest);
            }
        },
    };
    println!("{digest}");
    Ok(())
}

fn hash_stream(
    mut source: impl Read,
    mut hasher: StreamHasher,
) -> io::Result<otasync_core::ChunkId> {
    let mut buffer = vec![0u8; READ_SIZE];
    loop {
        match source.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Feeds written bytes to a hasher.
struct HashWriter(StreamHasher);

impl Write for HashWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
