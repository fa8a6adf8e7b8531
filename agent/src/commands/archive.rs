//! Directory trees and their archives: `make` of a `.catar`/`.caidx`, `extract` of one into a
//! directory, and the `list`/`mtree`/`stat`/`digest` views of a directory, `.catar` or `.caidx`.
//! Every view reads one catar stream: a `.catar` file as it is, a directory serialized on the fly
//! (as casync does), or a `.caidx` assembled from its stores, each on its own thread feeding an
//! in-process pipe.

use super::{read_index, read_stores, write_store};
use crate::assemble::{Sources, assemble};
use crate::byte_queue::byte_queue;
use crate::chunking::{ChunkJob, chunk_stream};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use crate::progress::Progress;
use crate::seed::SeedSet;
use crate::sha512_stream::StreamHasher;
use crate::sink::OrderedSink;
use crate::tree::{self, Excludes, ExtractOptions, IdShift};
use otasync_core::index::IndexHeader;
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Bytes of chunks that may wait for their turn when assembling a stream.
const REORDER_LIMIT: usize = 16 << 20;

/// The feature flags for serializing a tree, from `--with`/`--without`/`--exclude-*`/`--digest`.
pub(crate) fn tree_flags(options: &Options) -> Result<u64> {
    let excludes = Excludes {
        nodump: options.exclude_nodump.unwrap_or(true),
        submounts: options.exclude_submounts.unwrap_or(false),
        file: options.exclude_file.unwrap_or(true),
    };
    tree::default_flags(
        &options.with,
        &options.without,
        options.digest.unwrap_or_default(),
        excludes,
    )
    .map_err(|name| Error::Usage(format!("unknown feature name {name:?} in --with/--without")))
}

/// `make ARCHIVE.catar|INDEX.caidx [DIR]`.
pub(crate) fn make(options: &Options, output: &str, what: What, input: Option<&str>) -> Result<()> {
    let root = PathBuf::from(input.unwrap_or("."));
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "{}: an archive is made of a directory",
            root.display()
        )));
    }
    let feature_flags = tree_flags(options)?;
    let ids = options.id_shift()?;
    let digest = DigestAlgorithm::from_flags(feature_flags);
    let target = Path::new(output);
    let printed = if what == What::Archive {
        let temp = TempFile::create_for(target, 0o666)?;
        let id = {
            let inner = BufWriter::with_capacity(1 << 20, temp.file());
            let mut out = HashingWriter {
                inner,
                hasher: StreamHasher::new(digest),
            };
            tree::encode_tree(&root, feature_flags, ids, &mut out)?;
            out.inner.flush().at("writing", target)?;
            let HashingWriter { inner, hasher } = out;
            drop(inner);
            hasher.finalize()
        };
        temp.commit()?;
        id
    } else {
        let store = write_store(options, output)?;
        store.create()?;
        let stream = ArchiveStream::spawn(move |w| {
            tree::encode_tree(&root, feature_flags, ids, w)
                .map(drop)
                .map_err(Error::from)
        });
        let job = ChunkJob {
            sizes: options.chunk_sizes()?,
            digest,
            store: Some((&store, options.compression())),
            stream_digest: true,
            threads: options.threads(),
        };
        let chunked = chunk_stream(stream.reader, &job);
        join(stream.producer, false)?;
        let chunked = chunked?;
        let header = IndexHeader {
            feature_flags,
            sizes: job.sizes,
        };
        super::make::write_index(target, &header, &chunked.entries, &store)?;
        chunked.stream_digest.unwrap_or(ChunkId([0; 32]))
    };
    println!("{printed}");
    Ok(())
}

/// `extract ARCHIVE.catar|INDEX.caidx [DIR] [SUBPATH]`.
pub(crate) fn extract(
    options: &Options,
    input: &str,
    output: Option<&str>,
    subpath: Option<&str>,
) -> Result<()> {
    let target = PathBuf::from(output.unwrap_or("."));
    let mut extract_options = ExtractOptions {
        delete: options.delete.unwrap_or(true),
        ids: options.id_shift()?,
        ..ExtractOptions::default()
    };
    if let Some(subpath) = subpath {
        extract_options.subpath = subpath.as_bytes().to_vec();
    }
    let stream = open(options, input)?;
    let result = tree::extract_tree(stream.reader, Path::new(input), &target, &extract_options);
    join(stream.producer, result.is_err())?;
    let report = result?;
    if !report.skipped.is_empty() {
        log::warn!("{}", report.skipped);
    }
    log::info!(
        "{} entries, {} bytes extracted into {}",
        report.entries,
        report.bytes,
        target.display()
    );
    Ok(())
}

/// Which view to print.
pub(crate) enum View {
    /// `list`, recursive or not.
    List { recursive: bool },
    /// `mtree`.
    Mtree,
    /// `stat` of one entry.
    Stat,
    /// `digest` of the archive, a directory or a file in it.
    Digest,
}

/// `list|mtree|stat|digest [DIR|ARCHIVE|INDEX] [PATH]`.
pub(crate) fn view(
    options: &Options,
    input: &str,
    subpath: Option<&str>,
    view: View,
) -> Result<()> {
    let stream = open(options, input)?;
    let sub = subpath.unwrap_or("").as_bytes();
    let name = Path::new(input);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match view {
        View::List { recursive } => tree::list(stream.reader, name, &mut out, recursive, sub),
        View::Mtree => tree::mtree(
            stream.reader,
            name,
            &mut out,
            sub,
            options.digest.unwrap_or_default(),
        ),
        View::Stat => tree::stat(stream.reader, name, &mut out, sub),
        View::Digest => tree::digest_stream(stream.reader, name, sub).map(|(id, _)| {
            let _ = writeln!(out, "{id}");
        }),
    };
    // A view may stop reading early (stat found its entry): the producer's broken pipe is fine.
    join(stream.producer, true)?;
    result?;
    out.flush().context(|| "writing to stdout".into())
}

/// A catar stream and the thread producing it, if any.
pub(crate) struct ArchiveStream {
    /// The stream.
    pub(crate) reader: Box<dyn Read + Send>,
    /// The thread writing it, to [`join`] once it has been read.
    pub(crate) producer: Option<JoinHandle<Result<()>>>,
}

impl ArchiveStream {
    /// Runs `produce` on a thread writing into a [`byte_queue`] whose other end is the stream.
    pub(crate) fn spawn(
        produce: impl FnOnce(&mut (dyn Write + Send)) -> Result<()> + Send + 'static,
    ) -> Self {
        let (reader, mut writer) = byte_queue();
        let producer = std::thread::spawn(move || {
            produce(&mut writer)?;
            writer
                .finish()
                .context(|| "writing the archive stream".into())
        });
        Self {
            reader: Box::new(reader),
            producer: Some(producer),
        }
    }
}

/// Waits for the producer; with `consumer_stopped`, a broken pipe is not its error.
pub(crate) fn join(producer: Option<JoinHandle<Result<()>>>, consumer_stopped: bool) -> Result<()> {
    let Some(producer) = producer else {
        return Ok(());
    };
    match producer.join() {
        Ok(Err(e)) if consumer_stopped && e.is_broken_pipe() => Ok(()),
        Ok(result) => result,
        Err(_) => Err(Error::Io {
            context: "archive producer".into(),
            source: io::Error::other("panicked"),
        }),
    }
}

/// Opens the catar stream of a directory, a `.catar` or a `.caidx` (local, at a URL or, for
/// archives and indexes, an ssh locator).
pub(crate) fn open(options: &Options, input: &str) -> Result<ArchiveStream> {
    let what = options
        .what
        .or_else(|| What::from_name(input))
        .unwrap_or(What::Directory);
    match what {
        What::Directory => {
            if !Path::new(input).is_dir() {
                return Err(Error::Usage(format!(
                    "{input}: input should be a directory, .catar or .caidx"
                )));
            }
            let flags = tree_flags(options)?;
            let ids = options.id_shift()?;
            let root = PathBuf::from(input);
            Ok(ArchiveStream::spawn(move |w| {
                tree::encode_tree(&root, flags, ids, w)
                    .map(drop)
                    .map_err(Error::from)
            }))
        }
        What::Archive if crate::remote::is_ssh(input) => Ok(ArchiveStream {
            reader: Box::new(io::BufReader::with_capacity(
                1 << 20,
                crate::remote::open_archive(input, options.rate_limit_bps)?,
            )),
            producer: None,
        }),
        What::Archive => {
            let file = std::fs::File::open(input).at("opening", Path::new(input))?;
            Ok(ArchiveStream {
                reader: Box::new(io::BufReader::with_capacity(1 << 20, file)),
                producer: None,
            })
        }
        What::ArchiveIndex => {
            let index = read_index(options, input)?;
            let stores = read_stores(options, input)?;
            let threads = options.threads_for(&stores);
            let seeds = tree_seeds(options, &index)?;
            Ok(ArchiveStream::spawn(move |w| {
                let sink = OrderedSink::new(w, REORDER_LIMIT);
                let sources = Sources {
                    in_place: None,
                    output: None,
                    seeds: &seeds,
                    stores: &stores,
                };
                assemble(
                    &index,
                    &sources,
                    &sink,
                    threads,
                    &Progress::start("reading", index.blob_size(), false),
                )?;
                sink.into_inner()
                    .flush()
                    .context(|| "writing the archive stream".into())
            }))
        }
        What::Blob | What::BlobIndex => Err(Error::Usage(format!(
            "{input}: expected a directory, .catar or .caidx"
        ))),
    }
}

/// Seeds for an archive index: each `--seed` directory is serialized with the index's feature
/// flags into an anonymous temporary file (gone when closed, whatever happens) and cut with its
/// chunk sizes, so that chunks of unchanged files and directories come from it.
fn tree_seeds(options: &Options, index: &otasync_core::Index) -> Result<SeedSet> {
    let mut seeds = SeedSet::empty();
    for seed in &options.seed {
        let root = Path::new(seed);
        if !root.is_dir() {
            return Err(Error::Usage(format!(
                "{seed}: a seed of an archive index is a directory"
            )));
        }
        let temp_dir = std::env::temp_dir();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
            .open(&temp_dir)
            .at("creating a temporary file in", &temp_dir)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        tree::encode_tree(
            root,
            index.header.feature_flags,
            options.id_shift()?.map(IdShift::keeping_ids_below),
            &mut out,
        )?;
        out.flush().at("writing a temporary file in", &temp_dir)?;
        drop(out);
        let job = ChunkJob {
            sizes: index.header.sizes,
            digest: index.header.digest(),
            store: None,
            stream_digest: false,
            threads: options.threads(),
        };
        let chunked = chunk_stream(io::BufReader::new(ReadAt { file: &file, at: 0 }), &job)?;
        let mut seed_index = otasync_core::Index::new(index.header);
        seed_index.chunks = chunked.entries;
        seeds.add(seed.clone(), file, &seed_index);
    }
    Ok(seeds)
}

/// Reads a file from the start whatever its position (positional reads).
struct ReadAt<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Writes through to `inner` and digests what passes.
struct HashingWriter<W> {
    inner: W,
    hasher: StreamHasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
