//! Command-line parsing. otasync accepts casync's syntax so that it can be installed as `casync`:
//! `otasync [OPTIONS] VERB ARGS…` with options before or after the verb, `--opt=value` or
//! `--opt value`, and casync's yes/no booleans (`--seed-output=no`).

use crate::compression::{Compression, DEFAULT_LEVEL};
use crate::store::http::HttpSettings;
use std::time::Duration;

/// Parallel requests to remote stores unless `--concurrency` says otherwise.
pub(crate) const DEFAULT_CONCURRENCY: usize = 8;
use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand};
use otasync_core::{ChunkSizes, DigestAlgorithm};

/// casync-compatible content-addressable sync and OTA updates.
#[derive(Debug, Parser)]
#[command(name = "otasync", version, about, args_override_self = true)]
pub(crate) struct Cli {
    /// Options every verb accepts.
    #[command(flatten)]
    pub(crate) options: Options,
    /// What to do.
    #[command(subcommand)]
    pub(crate) verb: Verb,
}

/// casync's options; they may stand before or after the verb.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct Options {
    /// Show progress and statistics on stderr.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    /// Log level: err, warning, info, debug, trace.
    #[arg(short = 'l', long = "log-level", global = true, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Chunk store (a directory); repeat to read from several, the first is written to.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) store: Vec<String>,
    /// Additional chunk store to read chunks from.
    #[arg(long = "extra-store", global = true, value_name = "PATH")]
    pub(crate) extra_store: Vec<String>,
    /// Chunk size limits: AVG, or MIN:AVG:MAX, with K/M/G suffixes.
    #[arg(long = "chunk-size", global = true, value_name = "[MIN:]AVG[:MAX]", value_parser = parse_chunk_size)]
    pub(crate) chunk_size: Option<ChunkSizes>,
    /// Digest naming chunks: sha512-256 (default) or sha256.
    #[arg(long, global = true, value_name = "DIGEST", value_parser = parse_digest)]
    pub(crate) digest: Option<DigestAlgorithm>,
    /// Chunk compression: zstd (default) or none.
    #[arg(long, global = true, value_name = "COMPRESSION", value_parser = parse_compression)]
    pub(crate) compression: Option<Compression>,
    /// zstd level for new chunks, 1-22 (default 3, as casync); higher levels make smaller
    /// downloads at a higher make-time cost, and stay plain zstd frames any casync reads.
    #[arg(long = "compression-level", global = true, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=22))]
    pub(crate) compression_level: Option<i32>,
    /// Leave all-zero runs of extracted files as holes (yes/no, default yes).
    #[arg(long = "punch-holes", global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) punch_holes: Option<bool>,
    /// What the input or output is, instead of guessing from the file name:
    /// archive, archive-index, blob, blob-index, directory.
    #[arg(long, global = true, value_name = "WHAT", value_parser = parse_what)]
    pub(crate) what: Option<What>,
    /// A file or block device holding data like the index's (e.g. the active slot); repeatable.
    /// `INDEX.caibx:PATH` gives an index of PATH's content, so it need not be read whole.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) seed: Vec<String>,
    /// Reuse what the output already holds (yes/no, default yes).
    #[arg(long = "seed-output", global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) seed_output: Option<bool>,
    /// Keep indexes of seeds and written targets here, so seeds are not re-read next time.
    #[arg(long = "seed-index-dir", global = true, value_name = "DIR")]
    pub(crate) seed_index_dir: Option<std::path::PathBuf>,
    /// A local chunk cache: chunks are read from it first, and fetched ones are kept in it.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache: Option<std::path::PathBuf>,
    /// Size cap of the --cache directory (K/M/G suffixes; default 1G), kept by removing the
    /// least recently used chunks.
    #[arg(long = "cache-max", global = true, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) cache_max: Option<u64>,
    /// Print where the chunks came from when done.
    #[arg(long = "print-stats", global = true)]
    pub(crate) print_stats: bool,
    /// Machine-readable output (JSON) where a verb prints a report.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// CA certificates (PEM) trusted for HTTPS; without it HTTPS fails (no built-in roots).
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) ca: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --client-key.
    #[arg(
        long = "client-cert",
        global = true,
        value_name = "PEM",
        requires = "client_key"
    )]
    pub(crate) client_cert: Option<std::path::PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs --client-cert.
    #[arg(
        long = "client-key",
        global = true,
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub(crate) client_key: Option<std::path::PathBuf>,
    /// Extra HTTP request header, `Name: value` (e.g. `Authorization: Bearer …`); repeatable.
    #[arg(long, global = true, value_name = "HEADER", value_parser = parse_header)]
    pub(crate) header: Vec<(String, String)>,
    /// Cap the download rate, bytes per second (K/M/G suffixes).
    #[arg(long = "rate-limit-bps", global = true, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) rate_limit_bps: Option<u64>,
    /// Parallel HTTP requests when a store is remote (default 8).
    #[arg(long, global = true, value_name = "N")]
    pub(crate) concurrency: Option<std::num::NonZeroUsize>,
    /// Seconds allowed to connect to a server (default 10).
    #[arg(long = "connect-timeout", global = true, value_name = "SECONDS")]
    pub(crate) connect_timeout: Option<u64>,
    /// Seconds a transfer may stall without receiving a byte (default 30).
    #[arg(long = "read-timeout", global = true, value_name = "SECONDS")]
    pub(crate) read_timeout: Option<u64>,
    /// Seconds one request may take in all (default 300).
    #[arg(long = "request-timeout", global = true, value_name = "SECONDS")]
    pub(crate) request_timeout: Option<u64>,
    /// Abandon (and retry) a transfer averaging less than this many bytes per second after its
    /// first 5 seconds (K/M suffixes).
    #[arg(long = "min-rate-bps", global = true, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) min_rate_bps: Option<u64>,
    /// Seconds the whole command may spend on the network before it gives up.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub(crate) deadline: Option<u64>,
    /// Retries of a request that failed in a way that may pass (5xx, reset, timeout; default 3).
    #[arg(long, global = true, value_name = "N")]
    pub(crate) retries: Option<u32>,
    /// Archive feature to store (`--with=help` lists them; casync's names); repeatable.
    #[arg(long, global = true, value_name = "FEATURE")]
    pub(crate) with: Vec<String>,
    /// Archive feature to leave out; repeatable (wins over --with, as with casync).
    #[arg(long, global = true, value_name = "FEATURE")]
    pub(crate) without: Vec<String>,
    /// Leave out files with chattr +d (yes/no, default yes).
    #[arg(long = "exclude-nodump", global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) exclude_nodump: Option<bool>,
    /// Leave out other file systems mounted in the tree (yes/no, default no).
    #[arg(long = "exclude-submounts", global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) exclude_submounts: Option<bool>,
    /// Honour .caexclude files (yes/no, default yes).
    #[arg(long = "exclude-file", global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) exclude_file: Option<bool>,
    /// Remove what an existing target directory has and the archive does not (default yes).
    #[arg(long, global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) delete: Option<bool>,
    /// Archive a tree whose ids start at SHIFT as if they started at 0 (`make`), or extract
    /// archive ids at SHIFT on (`extract`); `yes` is 0 (ids then only wrap at --uid-range).
    #[arg(long = "uid-shift", global = true, value_name = "yes|no|SHIFT", value_parser = parse_uid_shift)]
    pub(crate) uid_shift: Option<UidShift>,
    /// The span of ids with --uid-shift (default 65536).
    #[arg(long = "uid-range", global = true, value_name = "RANGE", value_parser = parse_uid_range)]
    pub(crate) uid_range: Option<u32>,
    /// `list` descends into directories (yes/no, default yes).
    #[arg(long, global = true, value_name = "BOOL", value_parser = parse_bool)]
    pub(crate) recursive: Option<bool>,
    /// Worker threads (default: one per core).
    #[arg(long, global = true, value_name = "N")]
    pub(crate) threads: Option<std::num::NonZeroUsize>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    /// Chunk a file or block device into a store and write its .caibx index; or archive a
    /// directory as a .catar, or chunk its archive into a store as a .caidx.
    Make {
        /// What to write: INDEX.caibx, ARCHIVE.catar or INDEX.caidx.
        index: String,
        /// The file, block device ("-": stdin) or directory (default for archives: ".").
        input: Option<String>,
    },
    /// Reassemble a .caibx into a file, a block device or stdout ("-"); or a .catar/.caidx into
    /// a directory.
    Extract {
        /// The index or archive to read.
        index: String,
        /// Where to write (for archives a directory, default ".").
        output: Option<String>,
        /// For archives: extract only this subtree, as a child of OUTPUT.
        subpath: Option<String>,
    },
    /// Print the digest of a file, block device, blob index, directory or archive (or of a
    /// directory or file inside an archive).
    Digest {
        /// What to digest ("-" or absent: stdin).
        input: Option<String>,
        /// For archives and directories: a directory or file inside it.
        subpath: Option<String>,
    },
    /// List the entries of a directory, .catar or .caidx, as casync does.
    List {
        /// Directory, archive or archive index (default ".").
        input: Option<String>,
        /// Start the listing at this entry.
        subpath: Option<String>,
    },
    /// Print an mtree(5) description of a directory, .catar or .caidx, as casync does.
    Mtree {
        /// Directory, archive or archive index (default ".").
        input: Option<String>,
        /// Start at this entry.
        subpath: Option<String>,
    },
    /// Show one entry of a directory, .catar or .caidx, as casync does.
    Stat {
        /// Directory, archive or archive index (default ".").
        input: Option<String>,
        /// The entry (default: the top).
        path: Option<String>,
    },
    /// Show a .catar or .caidx as a read-only directory tree (FUSE) until interrupted.
    Mount {
        /// The archive or archive index.
        input: String,
        /// Where to mount it (created if missing).
        mountpoint: String,
    },
    /// Show the blob of a .caibx as a read-only file, MOUNTPOINT/<index name without .caibx>,
    /// in a FUSE mount until interrupted (`mount -o loop,ro` mounts an image from it).
    Mkdev {
        /// The blob index.
        index: String,
        /// Where to mount it (default: a new directory under $TMPDIR).
        mountpoint: Option<String>,
    },
    /// Remove the chunks of a local store that no given index references.
    Gc {
        /// Only list what would be removed.
        #[arg(short = 'n', long = "dry-run")]
        dry_run: bool,
        /// Keep unreferenced chunks modified less than this many seconds ago (a `make` may be
        /// writing them).
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        grace: u64,
        /// The indexes whose chunks are kept.
        #[arg(required = true)]
        indexes: Vec<String>,
    },
    /// Verify a signed release manifest against a trust root (--root); an index against its
    /// stores and optionally a file or block device; or a directory against an archive or
    /// archive index (exit code 5 and the differences listed when they differ).
    Verify(crate::commands::verify::VerifyArgs),
    /// List what differs between an archive (.catar, or .caidx with its stores) and a
    /// directory: entries added, removed, or changed in content or metadata (--json too).
    Diff {
        /// The archive or archive index (a path, URL or HOST:PATH).
        archive: String,
        /// The directory.
        directory: String,
    },
    /// Serve an index, archive and chunks on stdin/stdout in casync's remote protocol: what a
    /// client runs over ssh for `HOST:PATH` locators (casync's hidden verb).
    #[command(hide = true)]
    Pull {
        /// BASE ARCHIVE INDEX WSTORE [RSTORE...], "-" for unused slots.
        #[arg(required = true, num_args = 4.., allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Receive an index, archive and chunks on stdin/stdout in casync's remote protocol (the
    /// server side of `make HOST:PATH`; casync's hidden verb).
    #[command(hide = true)]
    Push {
        /// BASE ARCHIVE INDEX WSTORE [RSTORE...], "-" for unused slots.
        #[arg(required = true, num_args = 4.., allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Find the chunk sizes and zstd level that make the smallest download from old images
    /// to a new one (index included), without writing a store.
    Tune(crate::commands::tune::TuneArgs),
    /// Write an HTML page showing, for a new release against older ones, the download size
    /// and which regions of the image are reused or fetched.
    Report(crate::commands::report::ReportArgs),
    /// Generate an Ed25519 key pair in signify's formats (the secret key with mode 0600).
    Keygen {
        /// Where to write the secret key (must not exist).
        #[arg(long = "secret-key", value_name = "KEY.sec")]
        secret_key: std::path::PathBuf,
        /// Where to write the public key (must not exist).
        #[arg(long = "public-key", value_name = "KEY.pub")]
        public_key: std::path::PathBuf,
        /// Comment for both files' untrusted comment line.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Sign a file: write FILE.sig with one signify signature per --key.
    Sign {
        /// The file to sign (a manifest or a trust root).
        file: std::path::PathBuf,
        /// A secret key (.sec); repeat for a threshold.
        #[arg(long = "key", required = true, value_name = "KEY.sec")]
        keys: Vec<std::path::PathBuf>,
        /// The signature file (default: FILE.sig).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Add to the existing signature file instead of replacing it (co-signing).
        #[arg(long)]
        append: bool,
    },
    /// Trust roots: create one, or rotate to newer versions.
    Root {
        /// What to do.
        #[command(subcommand)]
        action: crate::commands::root::RootAction,
    },
    /// Release manifests.
    Manifest {
        /// What to do.
        #[command(subcommand)]
        action: crate::commands::manifest::ManifestAction,
    },
    /// Chunk images into a store (a directory or s3://BUCKET/PREFIX, only what it lacks), write
    /// their indexes, and write and sign the release manifest: what a build pipeline runs.
    Publish(crate::commands::publish::PublishArgs),
    /// Serve a store directory (and index files in it) read-only over HTTP(S), for
    /// development and tests.
    Serve {
        /// Address to listen on (port 0: any free port, printed on the first line).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Server certificate chain (PEM): serve HTTPS.
        #[arg(long = "tls-cert", value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// Server private key (PEM).
        #[arg(long = "tls-key", value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Require client certificates signed by this CA (PEM): mutual TLS.
        #[arg(long = "client-ca", value_name = "PEM", requires = "tls_cert")]
        client_ca: Option<std::path::PathBuf>,
    },
    /// Describe an index: flags, digest, chunk sizes and counts; with --seed, what an
    /// extraction would fetch (a dry run).
    Info {
        /// The index (.caibx or .caidx).
        index: String,
    },
    /// The device verbs: update, daemon, mark-good, mark-bad, status, check-config.
    #[command(flatten)]
    Device(crate::commands::device::DeviceVerb),
}

/// Kinds of input and output (`--what=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    /// A `.catar` archive.
    Archive,
    /// A `.caidx` archive index.
    ArchiveIndex,
    /// A plain file or block device.
    Blob,
    /// A `.caibx` blob index.
    BlobIndex,
    /// A directory tree.
    Directory,
}

impl What {
    /// The kind a file name implies (casync checks the suffix before any `?` or `;`).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        let name = name.split(['?', ';']).next().unwrap_or(name);
        if name.ends_with(".catar") {
            Some(Self::Archive)
        } else if name.ends_with(".caidx") {
            Some(Self::ArchiveIndex)
        } else if name.ends_with(".caibx") {
            Some(Self::BlobIndex)
        } else {
            None
        }
    }
}

impl Options {
    /// Chunk sizes to cut with; refuses limits casync could not write an index for.
    pub(crate) fn chunk_sizes(&self) -> Result<ChunkSizes> {
        let sizes = self.chunk_size.unwrap_or_default();
        let window = otasync_core::chunker::WINDOW_SIZE as u64;
        if !sizes.is_fixed() && sizes.max < window {
            return Err(Error::Usage(format!(
                "--chunk-size: a maximum of {} is below the {window}-byte hash window, so chunks \
                 would exceed it (casync fails the same way); use a larger size",
                sizes.max
            )));
        }
        Ok(sizes)
    }

    /// The id shift of `--uid-shift`/`--uid-range`, if either is given (and not `no`).
    pub(crate) fn id_shift(&self) -> Result<Option<crate::tree::IdShift>> {
        let shift = match self.uid_shift {
            Some(UidShift::Off) => return Ok(None),
            Some(UidShift::From(shift)) => shift,
            None if self.uid_range.is_some() => 0,
            None => return Ok(None),
        };
        let range = self.uid_range.unwrap_or(crate::tree::DEFAULT_RANGE);
        match crate::tree::IdShift::new(shift, range) {
            Some(ids) => Ok(Some(ids)),
            None => Err(Error::Usage(format!(
                "--uid-shift={shift} --uid-range={range} reaches past the last user id"
            ))),
        }
    }

    /// How new chunks are stored.
    pub(crate) fn compression(&self) -> Compression {
        match self.compression.unwrap_or(Compression::Zstd(DEFAULT_LEVEL)) {
            Compression::Zstd(level) => Compression::Zstd(self.compression_level.unwrap_or(level)),
            Compression::None => Compression::None,
        }
    }

    /// Worker threads for an assembly from `stores`: one per core, or `--concurrency` when a
    /// store is remote (the workers then mostly wait on the network).
    pub(crate) fn threads_for(&self, stores: &crate::store::StoreChain) -> usize {
        match stores.is_remote() {
            true => self.concurrency.map_or(DEFAULT_CONCURRENCY, usize::from),
            false => self.threads(),
        }
    }

    /// HTTP client settings.
    pub(crate) fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone().zip(self.client_key.clone()),
            headers: self.header.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout.unwrap_or(10)),
            read_timeout: Duration::from_secs(self.read_timeout.unwrap_or(30)),
            request_timeout: Duration::from_secs(self.request_timeout.unwrap_or(300)),
            retries: self.retries.unwrap_or(3),
            rate_limit_bps: self.rate_limit_bps,
            min_rate_bps: self.min_rate_bps,
            deadline: self
                .deadline
                .map(|s| std::time::Instant::now() + Duration::from_secs(s)),
        }
    }

    /// Worker threads for CPU-bound stages.
    pub(crate) fn threads(&self) -> usize {
        self.threads
            .map(usize::from)
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(2)
    }
}

/// Parses a size with casync's `parse_size` rules: a decimal number with an optional fraction
/// and an optional B/K/M/G/T/P/E suffix, each a power of 1024.
pub(crate) fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: u64 = match suffix.trim() {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        "P" => 1 << 50,
        "E" => 1 << 60,
        other => return Err(format!("unknown size suffix {other:?} in {text:?}")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a size: {text:?}"));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("not a size: {text:?}"))?;
    let mut value = whole
        .checked_mul(factor)
        .ok_or_else(|| format!("size too large: {text:?}"))?;
    // The fraction contributes floor(0.fraction * factor), computed exactly in integers.
    if !fraction.is_empty() {
        let digits = fraction.len().min(18) as u32;
        let numerator: u128 = fraction[..digits as usize].parse().unwrap_or(0);
        let part = numerator * u128::from(factor) / 10u128.pow(digits);
        value = value
            .checked_add(u64::try_from(part).unwrap_or(u64::MAX))
            .ok_or_else(|| format!("size too large: {text:?}"))?;
    }
    Ok(value)
}

/// `--chunk-size=`: `AVG`, `MIN:AVG:MAX` or `auto`.
pub(crate) fn parse_chunk_size(text: &str) -> std::result::Result<ChunkSizes, String> {
    let fields: Vec<&str> = text.split(':').collect();
    let (min, avg, max) = match fields.as_slice() {
        ["auto"] => (0, 0, 0),
        [avg] => (0, parse_size(avg)?, 0),
        [min, avg, max] => (parse_size(min)?, parse_size(avg)?, parse_size(max)?),
        _ => return Err("expected AVG or MIN:AVG:MAX".into()),
    };
    if fields.len() == 3 && min == 0 {
        return Err("the minimum chunk size must be at least 1".into());
    }
    if fields != ["auto"] && avg == 0 {
        return Err("the average chunk size must be at least 1".into());
    }
    ChunkSizes::derive(min, avg, max).map_err(|e| e.to_string())
}

fn parse_digest(text: &str) -> std::result::Result<DigestAlgorithm, String> {
    DigestAlgorithm::from_name(text).ok_or_else(|| "expected sha512-256 or sha256".into())
}

fn parse_compression(text: &str) -> std::result::Result<Compression, String> {
    match text {
        "zstd" | "default" => Ok(Compression::Zstd(DEFAULT_LEVEL)),
        "none" => Ok(Compression::None),
        "xz" | "gzip" => Err(format!(
            "{text} compression is not supported; use zstd or none"
        )),
        _ => Err("expected zstd or none".into()),
    }
}

/// `--header=Name: value`.
fn parse_header(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() && !name.contains(char::is_whitespace) => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err("expected `Name: value`".into()),
    }
}

/// `--rate-limit-bps`: a size, not 0 (casync refuses 0 too).
fn parse_rate(text: &str) -> std::result::Result<u64, String> {
    match parse_size(text)? {
        0 => Err("the rate limit must be at least 1 byte per second".into()),
        rate => Ok(rate),
    }
}

/// casync's `parse_boolean`.
pub(crate) fn parse_bool(text: &str) -> std::result::Result<bool, String> {
    match text {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// What `--uid-shift` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UidShift {
    /// `no`: ids as they are.
    Off,
    /// `yes` (0) or an id: archive id 0 is this host id.
    From(u32),
}

/// `--uid-shift`: `yes` (0), `no`, or an id.
fn parse_uid_shift(text: &str) -> std::result::Result<UidShift, String> {
    match parse_bool(text) {
        Ok(true) => Ok(UidShift::From(0)),
        Ok(false) => Ok(UidShift::Off),
        Err(_) => text
            .parse()
            .map(UidShift::From)
            .map_err(|_| "expected yes, no or a user id".into()),
    }
}

/// `--uid-range`: a positive number of ids.
fn parse_uid_range(text: &str) -> std::result::Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err("expected a positive number of ids".into()),
        Ok(range) => Ok(range),
    }
}

fn parse_what(text: &str) -> std::result::Result<What, String> {
    Ok(match text {
        "archive" => What::Archive,
        "archive-index" => What::ArchiveIndex,
        "blob" => What::Blob,
        "blob-index" => What::BlobIndex,
        "directory" => What::Directory,
        _ => return Err("expected archive, archive-index, blob, blob-index or directory".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("otasync").chain(args.iter().copied()))
    }

    #[test]
    fn sizes_follow_casync_parse_size() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1.5M"), Ok(1572864));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("2B"), Ok(2));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999E").is_err());
    }

    #[test]
    fn chunk_size_forms() {
        assert_eq!(parse_chunk_size("64K"), Ok(ChunkSizes::default()));
        assert_eq!(parse_chunk_size("auto"), Ok(ChunkSizes::default()));
        assert_eq!(
            parse_chunk_size("1K:4K:16K"),
            Ok(ChunkSizes {
                min: 1024,
                avg: 4096,
                max: 16384
            })
        );
        assert!(parse_chunk_size("1K:4K").is_err());
        assert!(parse_chunk_size("0").is_err());
        assert!(parse_chunk_size("4K:1K:16K").is_err());
    }

    #[test]
    fn options_before_or_after_the_verb() {
        let a = parse(&["--store=s", "make", "x.caibx", "in"]).unwrap();
        let b = parse(&["make", "--store", "s", "x.caibx", "in"]).unwrap();
        assert_eq!(a.options.store, ["s"]);
        assert_eq!(b.options.store, ["s"]);
        let c = parse(&[
            "-v",
            "extract",
            "--store=a",
            "--extra-store=b",
            "i.caibx",
            "-",
        ])
        .unwrap();
        assert!(c.options.verbose);
        assert_eq!(c.options.extra_store, ["b"]);
        assert!(
            matches!(c.verb, Verb::Extract { ref output, .. } if output.as_deref() == Some("-"))
        );
    }

    #[test]
    fn booleans_and_enums() {
        let cli = parse(&["extract", "--punch-holes=no", "i.caibx", "o"]).unwrap();
        assert_eq!(cli.options.punch_holes, Some(false));
        // RAUC's call.
        let cli = parse(&[
            "extract",
            "--seed=/dev/a",
            "--store=s",
            "--seed-output=no",
            "i.caibx",
            "/dev/b",
        ])
        .unwrap();
        assert_eq!(
            (cli.options.seed.as_slice(), cli.options.seed_output),
            (&["/dev/a".to_owned()][..], Some(false))
        );
        assert!(parse(&["extract", "--punch-holes=maybe", "i.caibx", "o"]).is_err());
        assert!(parse(&["--digest=md5", "digest", "x"]).is_err());
        let cli = parse(&[
            "--compression=none",
            "--digest=sha256",
            "make",
            "i.caibx",
            "f",
        ])
        .unwrap();
        assert_eq!(cli.options.compression(), Compression::None);
        assert_eq!(cli.options.digest, Some(DigestAlgorithm::Sha256));
    }

    #[test]
    fn compression_levels() {
        let cli = parse(&["--compression-level=19", "make", "i.caibx", "f"]).unwrap();
        assert_eq!(cli.options.compression(), Compression::Zstd(19));
        assert!(parse(&["--compression-level=23", "make", "i.caibx", "f"]).is_err());
        assert!(parse(&["--compression-level=0", "make", "i.caibx", "f"]).is_err());
        let cli = parse(&[
            "--compression=none",
            "--compression-level=9",
            "make",
            "i.caibx",
            "f",
        ])
        .unwrap();
        assert_eq!(cli.options.compression(), Compression::None);
    }

    #[test]
    fn http_options() {
        let cli = parse(&[
            "--header=Authorization: Bearer x",
            "--rate-limit-bps=1M",
            "extract",
            "http://h/i.caibx",
            "o",
        ])
        .unwrap();
        assert_eq!(
            cli.options.header,
            [("Authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(cli.options.rate_limit_bps, Some(1 << 20));
        assert!(parse(&["--header=nocolon", "extract", "i.caibx", "o"]).is_err());
        assert!(parse(&["--rate-limit-bps=0", "extract", "i.caibx", "o"]).is_err());
        assert!(
            parse(&["--client-cert=c.pem", "extract", "i.caibx", "o"]).is_err(),
            "needs --client-key"
        );
    }

    #[test]
    fn what_from_names() {
        assert_eq!(What::from_name("a/b.caibx"), Some(What::BlobIndex));
        assert_eq!(
            What::from_name("http://h/x.caidx?q=1"),
            Some(What::ArchiveIndex)
        );
        assert_eq!(What::from_name("x.catar"), Some(What::Archive));
        assert_eq!(What::from_name("x.img"), None);
    }

    #[test]
    fn max_below_window_is_refused() {
        let cli = parse(&["--chunk-size=1:16:32", "make", "i.caibx", "f"]).unwrap();
        assert!(matches!(cli.options.chunk_sizes(), Err(Error::Usage(_))));
        let cli = parse(&["--chunk-size=16:16:16", "make", "i.caibx", "f"]).unwrap();
        assert!(cli.options.chunk_sizes().is_ok());
    }
}
