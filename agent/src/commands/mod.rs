//! One module per verb, plus what several verbs share: opening inputs, reading indexes and
//! choosing stores the way casync does.

pub(crate) mod archive;
pub(crate) mod device;
pub(crate) mod diff;
pub(crate) mod digest;
pub(crate) mod extract;
pub(crate) mod gc;
pub(crate) mod info;
pub(crate) mod keyfiles;
pub(crate) mod keygen;
pub(crate) mod make;
pub(crate) mod manifest;
pub(crate) mod mkdev;
pub(crate) mod mount;
pub(crate) mod publish;
pub(crate) mod remote;
pub(crate) mod report;
pub(crate) mod root;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod tune;
pub(crate) mod verify;
pub(crate) mod verify_store;

use crate::cli::Options;
use crate::error::{Error, IoContext, Result};
use crate::seed::{SeedSet, SeedSpec};
use crate::seed_cache::SeedIndexCache;
use crate::store::cache::DEFAULT_CACHE_MAX;
use crate::store::http::{FetchError, HttpClient, HttpStore, default_store_url, is_url};
use crate::store::{ChunkCache, ChunkStore, LocalStore, StoreChain};
use otasync_core::Index;
use otasync_core::index::IndexHeader;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest index file read (26 million chunks: a 1.6 TiB image at the default sizes).
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// The `--seed-index-dir` cache of seed indexes, when given.
pub(crate) fn seed_index_cache(options: &Options) -> Result<Option<SeedIndexCache>> {
    options
        .seed_index_dir
        .as_deref()
        .map(SeedIndexCache::new)
        .transpose()
}

/// The `--seed` options.
pub(crate) fn seed_specs(options: &Options) -> Vec<SeedSpec> {
    options.seed.iter().map(|s| SeedSpec::parse(s)).collect()
}

/// The `--seed` seeds for an index with `header`, with the `--seed-index-dir` cache.
pub(crate) fn option_seeds(options: &Options, header: &IndexHeader) -> Result<SeedSet> {
    let cache = seed_index_cache(options)?;
    let specs = seed_specs(options);
    open_seeds(options, &specs, header, cache.as_ref(), options.threads())
}

/// Opens `specs` as seeds for an index with `header` (their indexes read as `options` say).
pub(crate) fn open_seeds(
    options: &Options,
    specs: &[SeedSpec],
    header: &IndexHeader,
    cache: Option<&SeedIndexCache>,
    threads: usize,
) -> Result<SeedSet> {
    SeedSet::open(specs, header, cache, threads, &|p| read_index(options, p))
}

/// Reads and strictly decodes an index file, local or at an HTTP(S) URL.
pub(crate) fn read_index(options: &Options, path: &str) -> Result<Index> {
    decode_index(path, &read_index_bytes(options, path)?)
}

/// Strictly decodes index bytes read from `path`.
pub(crate) fn decode_index(path: &str, bytes: &[u8]) -> Result<Index> {
    Index::decode(bytes).map_err(|e| Error::InvalidInput {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The bytes of an index file, local, at an HTTP(S) URL or an ssh locator (`host:path`), at
/// most [`MAX_INDEX_BYTES`].
pub(crate) fn read_index_bytes(options: &Options, path: &str) -> Result<Vec<u8>> {
    if crate::remote::is_ssh(path) {
        // The store chunks will come from, so that it can share the connection.
        let store = options
            .store
            .first()
            .cloned()
            .unwrap_or_else(|| default_store(path));
        let rate = options.rate_limit_bps;
        return crate::remote::read_index(path, Some(&store), rate, MAX_INDEX_BYTES);
    }
    if !is_url(path) {
        return read_bounded(path, MAX_INDEX_BYTES);
    }
    let mut bytes = Vec::new();
    http_client(options)?
        .get(path, MAX_INDEX_BYTES, &mut bytes)
        .map_err(|e| match e {
            FetchError::NotFound => Error::InvalidInput {
                path: path.to_owned(),
                reason: "not found (HTTP 404)".into(),
            },
            e => Error::Io {
                context: format!("fetching {path}"),
                source: io::Error::other(e.to_string()),
            },
        })?;
    Ok(bytes)
}

/// The HTTP client the options describe.
pub(crate) fn http_client(options: &Options) -> Result<Arc<HttpClient>> {
    Ok(Arc::new(HttpClient::new(options.http_settings())?))
}

/// Reads a whole file (or stdin for `-`), refusing more than `limit` bytes.
fn read_bounded(path: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).at("opening", Path::new(path))?)
    };
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .at("reading", Path::new(path))?;
    if bytes.len() as u64 > limit {
        return Err(Error::InvalidInput {
            path: path.to_owned(),
            reason: format!("larger than the {limit}-byte limit for indexes"),
        });
    }
    Ok(bytes)
}

/// What an input path turned out to be.
pub(crate) enum Input {
    /// A regular file, block device or stdin, readable as a byte stream.
    Stream(Box<dyn Read + Send>),
    /// A directory.
    Directory(PathBuf),
}

/// Opens a blob input: a file, a block device, or stdin for `-`/nothing.
pub(crate) fn open_input(arg: Option<&str>) -> Result<Input> {
    let path = match arg {
        None | Some("-") => return Ok(Input::Stream(Box::new(io::stdin()))),
        Some(path) => Path::new(path),
    };
    let meta = std::fs::metadata(path).at("opening", path)?;
    if meta.is_dir() {
        return Ok(Input::Directory(path.to_owned()));
    }
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_block_device() || kind.is_char_device() || kind.is_fifo()) {
        return Err(Error::Usage(format!(
            "{} is not a file or block device",
            path.display()
        )));
    }
    Ok(Input::Stream(Box::new(
        File::open(path).at("opening", path)?,
    )))
}

/// The store casync would use for `index` when no `--store` is given: `$CASYNC_STORE`, else
/// `default.castr` beside the index (for an index URL or ssh locator, on the same server).
pub(crate) fn default_store(index: &str) -> String {
    if let Some(store) = std::env::var_os("CASYNC_STORE") {
        return store.to_string_lossy().into_owned();
    }
    if let Some(store) = crate::remote::default_store(index) {
        return store;
    }
    if is_url(index) {
        return default_store_url(index);
    }
    crate::fsutil::parent_dir(Path::new(index))
        .join("default.castr")
        .to_string_lossy()
        .into_owned()
}

/// The store new chunks are written to: a directory.
pub(crate) fn write_store(options: &Options, index: &str) -> Result<LocalStore> {
    let store = options
        .store
        .first()
        .cloned()
        .unwrap_or_else(|| default_store(index));
    if is_url(&store) {
        return Err(Error::Usage(format!(
            "{store}: HTTP stores are read-only; make writes to a directory"
        )));
    }
    if crate::remote::is_ssh(&store) {
        return Err(Error::Usage(format!(
            "{store}: chunks are pushed over ssh together with an index on the same host \
             (make HOST:/path/INDEX --store=HOST:/path/STORE)"
        )));
    }
    Ok(LocalStore::new(store))
}

/// The stores chunks are read from, in order: the `--cache`, every `--store`, then every
/// `--extra-store`; each a directory, an HTTP(S) URL or an ssh locator.
pub(crate) fn read_stores(options: &Options, index: &str) -> Result<StoreChain> {
    let defaults = [default_store(index)];
    let locators: Vec<&String> = match options.store.is_empty() {
        true => defaults.iter().chain(&options.extra_store).collect(),
        false => options.store.iter().chain(&options.extra_store).collect(),
    };
    let mut client = None;
    let mut stores: Vec<Box<dyn ChunkStore>> = Vec::new();
    for locator in locators {
        if is_url(locator) {
            let client = match &client {
                Some(client) => Arc::clone(client),
                None => Arc::clone(client.insert(http_client(options)?)),
            };
            stores.push(Box::new(HttpStore::new(locator, client)));
        } else if crate::remote::is_ssh(locator) {
            stores.push(crate::remote::open_store(locator, options.rate_limit_bps)?);
        } else {
            stores.push(Box::new(LocalStore::new(locator)));
        }
    }
    let cache = match &options.cache {
        Some(dir) => Some(ChunkCache::new(
            dir,
            options.cache_max.unwrap_or(DEFAULT_CACHE_MAX),
        )?),
        None => None,
    };
    Ok(StoreChain::new(cache, stores))
}
