//! `otasync publish --key=KEY.sec --manifest-out=manifest.json … SLOT=IMAGE…`: what a build
//! pipeline runs to release images. In this order, so that nothing published refers to
//! anything missing:
//!
//! 1. chunk each image into the store (a directory, or `s3://bucket/prefix`), writing or
//!    uploading only the chunks it lacks, and pin the image's SHA-256 on the way;
//! 2. once every chunk is durable (synced, or acknowledged by S3), write each index as
//!    `<slot>-<release>.caibx` beside the manifest or into `--index-dir`;
//! 3. write the manifest as `manifest create` does and its signature as `sign` does, each
//!    under a temporary name renamed into place. `--unsigned` leaves the signing to
//!    `otasync sign` on another machine (offline keys, HSM).
//!
//! Keys and the bucket's credentials are checked before any chunk is cut, so a mistake there
//! costs nothing.

use super::keyfiles::{signature_path, write_replace};
use super::make::blob_index_flags;
use super::manifest::{ReleaseFields, SlotEntry, manifest_json, slot_entry};
use super::sign::Signer;
use super::{Input, default_store, open_input};
use crate::chunking::{ChunkJob, chunk_stream};
use crate::cli::{DEFAULT_CONCURRENCY, Options};
use crate::compression::Compression;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::parent_dir;
use crate::store::http::{HttpClient, is_url};
use crate::store::s3::{S3Client, S3Location, S3Store, is_s3};
use crate::store::{ChunkSink, LocalStore};
use clap::Args;
use otasync_core::index::IndexHeader;
use otasync_core::{DigestAlgorithm, Index, digest::Hasher};
use otasync_signing::{Pinned, Sha256, SignatureFile};
use serde_json::json;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// CA bundles tried for HTTPS to S3 when neither `--ca` nor `AWS_CA_BUNDLE` names one: a
/// build host's system store (Debian, Fedora). Devices never use this: they trust only `--ca`.
const SYSTEM_CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Arguments of `otasync publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// SLOT=IMAGE: a slot and the image file or block device it gets; repeatable.
    #[arg(required = true, value_name = "SLOT=IMAGE")]
    pub(crate) slots: Vec<String>,
    /// Where to write the manifest; its signature goes beside it as PATH.sig.
    #[arg(long = "manifest-out", value_name = "PATH")]
    pub(crate) manifest_out: PathBuf,
    /// A secret key (.sec) to sign the manifest with; repeat for a threshold.
    #[arg(
        long = "key",
        value_name = "KEY.sec",
        required_unless_present = "unsigned",
        conflicts_with = "unsigned"
    )]
    pub(crate) keys: Vec<PathBuf>,
    /// Write the manifest unsigned, to be signed elsewhere with `otasync sign` (offline key,
    /// HSM).
    #[arg(long)]
    pub(crate) unsigned: bool,
    /// Where the indexes go: a directory or s3://BUCKET/PREFIX (default: beside the
    /// manifest). Devices fetch them beside the manifest's URL.
    #[arg(long = "index-dir", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub(crate) index_dir: Option<String>,
    /// What the manifest says about the release.
    #[command(flatten)]
    pub(crate) release: ReleaseFields,
}

/// Where chunks go.
enum Target {
    /// A store directory.
    Local(LocalStore),
    /// A bucket.
    S3(S3Store, S3Location),
}

/// Where indexes go.
enum IndexDir {
    /// A directory.
    Local(PathBuf),
    /// A bucket and prefix.
    S3(S3Location, Arc<S3Client>),
}

/// What publishing one slot did.
struct SlotReport {
    name: String,
    index: String,
    chunks: u64,
    new: u64,
    reused: u64,
    new_bytes: u64,
    image_bytes: u64,
}

/// Publishes the release `args` describes; see the module documentation for the order.
pub(crate) fn run(options: &Options, args: &PublishArgs) -> Result<()> {
    let slots = parse_slots(&args.slots)?;
    let release = args.release.release_name();
    check_name("release", &release)?;
    if args.manifest_out.is_dir() || args.manifest_out.as_os_str().is_empty() {
        return Err(Error::Usage(format!(
            "--manifest-out={}: expected a file name",
            args.manifest_out.display()
        )));
    }
    let signer = match args.unsigned {
        true => None,
        false => Some(Signer::load(&args.keys)?),
    };
    let compression = options.compression();
    let sizes = options.chunk_sizes()?;
    let digest = options.digest.unwrap_or_default();
    let first_index = format!("{}-{release}.caibx", slots[0].0);
    let dest = Destinations::open(options, args, &first_index)?;
    // Everything that can refuse us does so now, before hours of chunking.
    dest.prepare(&args.manifest_out)?;

    let header = IndexHeader {
        feature_flags: blob_index_flags(digest),
        sizes,
    };
    let job = ChunkJob {
        sizes,
        digest,
        store: Some((dest.sink(), compression)),
        stream_digest: false,
        threads: match dest.target {
            // Workers then mostly wait on the network.
            Target::S3(..) => options
                .threads()
                .max(options.concurrency.map_or(DEFAULT_CONCURRENCY, usize::from)),
            Target::Local(_) => options.threads(),
        },
    };
    let mut reports = Vec::new();
    let mut indexes = Vec::new();
    let mut entries = Vec::new();
    for (name, image) in &slots {
        let index_name = format!("{name}-{release}.caibx");
        let (report, entry, bytes) = publish_slot(name, image, &index_name, header, &job)?;
        reports.push(report);
        entries.push(entry);
        indexes.push((index_name, bytes));
    }
    // An index may only appear once every chunk it names is durable.
    if let Target::Local(store) = &dest.target {
        store.sync()?;
    }
    let index_locations = indexes
        .iter()
        .map(|(name, bytes)| dest.write_index(name, bytes))
        .collect::<Result<Vec<_>>>()?;
    let manifest = manifest_json(&args.release, signing_compression(compression), entries)?;
    write_manifest(&args.manifest_out, &manifest, signer.as_ref())?;
    Outcome {
        reports: &reports,
        indexes: &index_locations,
        store: &dest.store_name,
        manifest: &args.manifest_out,
        signed_by: signer.as_ref().map_or(0, Signer::len),
        requests: dest.client.as_ref().map(|c| &c.requests),
    }
    .print(options.json);
    Ok(())
}

/// Where a publish writes: the chunk store and the index directory, and the S3 client when
/// either is in a bucket.
struct Destinations {
    target: Target,
    store_name: String,
    index_dir: IndexDir,
    client: Option<Arc<S3Client>>,
}

impl Destinations {
    /// Reads `--store` and `--index-dir`; `first_index` names the first index, beside which
    /// the default store is (casync's rule for `make`: `$CASYNC_STORE`, else `default.castr`).
    fn open(options: &Options, args: &PublishArgs, first_index: &str) -> Result<Self> {
        if options.store.len() > 1 {
            return Err(Error::Usage(
                "publish writes to one --store (a directory or s3://BUCKET/PREFIX)".into(),
            ));
        }
        let index_location = match &args.index_dir {
            Some(dir) if is_s3(dir) => Some(S3Location::parse(dir).map_err(Error::Usage)?),
            Some(dir) if is_url(dir) => {
                return Err(Error::Usage(format!(
                    "--index-dir={dir}: HTTP is read-only; give a directory or s3://BUCKET/PREFIX"
                )));
            }
            _ => None,
        };
        let local_index_dir = match &args.index_dir {
            Some(dir) => PathBuf::from(dir),
            None => parent_dir(&args.manifest_out).to_owned(),
        };
        let store = match (options.store.first(), &index_location) {
            (Some(store), _) => store.clone(),
            (None, Some(location)) => format!("{location}/default.castr"),
            (None, None) => default_store(&local_index_dir.join(first_index).to_string_lossy()),
        };
        if is_url(&store) {
            return Err(Error::Usage(format!(
                "--store={store}: HTTP stores are read-only; publish to a directory or \
                 s3://BUCKET/PREFIX"
            )));
        }
        let client = match is_s3(&store) || index_location.is_some() {
            true => Some(Arc::new(S3Client::from_env(s3_http_client(options)?)?)),
            false => None,
        };
        let target = match &client {
            Some(client) if is_s3(&store) => {
                if options.compression() == Compression::None {
                    return Err(Error::Usage(
                        "S3 stores hold zstd chunks (.cacnk), which is what HTTP stores serve; \
                         --compression=none is for directory stores"
                            .into(),
                    ));
                }
                let location = S3Location::parse(&store).map_err(Error::Usage)?;
                Target::S3(S3Store::new(location.clone(), Arc::clone(client)), location)
            }
            _ => Target::Local(LocalStore::new(&store)),
        };
        let index_dir = match (index_location, &client) {
            (Some(location), Some(client)) => IndexDir::S3(location, Arc::clone(client)),
            _ => IndexDir::Local(local_index_dir),
        };
        let store_name = match &target {
            Target::S3(_, location) => location.to_string(),
            Target::Local(_) => store,
        };
        Ok(Self {
            target,
            store_name,
            index_dir,
            client,
        })
    }

    /// Checks access to the buckets and creates the directories written to.
    fn prepare(&self, manifest_out: &Path) -> Result<()> {
        let store = match &self.target {
            Target::S3(_, location) => Some(location),
            Target::Local(_) => None,
        };
        let index = match &self.index_dir {
            IndexDir::S3(location, _) => Some(location),
            IndexDir::Local(_) => None,
        };
        let buckets = store.into_iter().chain(index.filter(|i| Some(*i) != store));
        if let Some(client) = &self.client {
            for location in buckets {
                client
                    .check(location)
                    .map_err(|e| e.at("checking access to", &location.to_string()))?;
            }
        }
        if let Target::Local(store) = &self.target {
            store.create()?;
        }
        if let IndexDir::Local(dir) = &self.index_dir {
            std::fs::create_dir_all(dir).at("creating", dir)?;
        }
        let manifest_dir = parent_dir(manifest_out);
        std::fs::create_dir_all(manifest_dir).at("creating", manifest_dir)
    }

    /// Where new chunks go.
    fn sink(&self) -> &dyn ChunkSink {
        match &self.target {
            Target::Local(store) => store,
            Target::S3(store, _) => store,
        }
    }

    /// Writes index `name` (a temporary file renamed into place, or one upload); returns
    /// where it went.
    fn write_index(&self, name: &str, bytes: &[u8]) -> Result<String> {
        match &self.index_dir {
            IndexDir::Local(dir) => {
                let path = dir.join(name);
                write_replace(&path, bytes)?;
                Ok(path.display().to_string())
            }
            IndexDir::S3(location, client) => {
                let key = location.key(name);
                let url = format!("s3://{}/{key}", location.bucket);
                client
                    .put(&location.bucket, &key, bytes)
                    .map_err(|e| e.at("uploading", &url))?;
                Ok(url)
            }
        }
    }
}

/// Chunks `image` into the job's store as slot `name`; returns what happened, the manifest
/// entry and the index's bytes (to be written as `index_name` later).
fn publish_slot(
    name: &str,
    image: &str,
    index_name: &str,
    header: IndexHeader,
    job: &ChunkJob<'_>,
) -> Result<(SlotReport, SlotEntry, Vec<u8>)> {
    let source = match open_input(Some(image))? {
        Input::Stream(source) => source,
        Input::Directory(dir) => {
            return Err(Error::Usage(format!(
                "{}: a directory; publish takes image files or block devices",
                dir.display()
            )));
        }
    };
    let mut pinning = Pinning::new(source);
    let chunked = chunk_stream(&mut pinning, job).map_err(|e| in_image(e, image))?;
    let stats = chunked.stats;
    let index = Index {
        header,
        chunks: chunked.entries,
    };
    let bytes = index.encode();
    let pin = pinning.finish();
    log::info!(
        "{name}: {} chunks, {} new ({} bytes), {} reused",
        index.chunks.len(),
        stats.written,
        stats.written_bytes,
        stats.present
    );
    let report = SlotReport {
        name: name.to_owned(),
        index: index_name.to_owned(),
        chunks: index.chunks.len() as u64,
        new: stats.written,
        reused: stats.present,
        new_bytes: stats.written_bytes,
        image_bytes: pin.size,
    };
    let entry = slot_entry(name, index_name, &bytes, &index, image, pin)?;
    Ok((report, entry, bytes))
}

/// Writes the manifest, then its signature by `signer` (computed first, so that a failure
/// leaves the previous pair), each renamed into place; without a signer, removes the
/// signature of an earlier manifest, which would only confuse whoever signs this one.
fn write_manifest(path: &Path, manifest: &[u8], signer: Option<&Signer>) -> Result<()> {
    let signature_path = signature_path(path, None);
    let signatures = match signer {
        Some(signer) => {
            let mut signatures = SignatureFile::default();
            signer.sign_into(manifest, &mut signatures, &signature_path)?;
            Some(signatures)
        }
        None => None,
    };
    write_replace(path, manifest)?;
    match signatures {
        Some(signatures) => write_replace(&signature_path, signatures.to_file().as_bytes()),
        None => match std::fs::remove_file(&signature_path) {
            Ok(()) => {
                log::info!("removed the stale {}", signature_path.display());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at("removing the stale", &signature_path),
        },
    }
}

/// What to print when done.
struct Outcome<'a> {
    reports: &'a [SlotReport],
    indexes: &'a [String],
    store: &'a str,
    manifest: &'a Path,
    signed_by: usize,
    requests: Option<&'a crate::store::s3::RequestCounts>,
}

impl Outcome<'_> {
    fn print(&self, as_json: bool) {
        let new: u64 = self.reports.iter().map(|r| r.new).sum();
        let reused: u64 = self.reports.iter().map(|r| r.reused).sum();
        let bytes: u64 = self.reports.iter().map(|r| r.new_bytes).sum();
        let manifest = self.manifest.display().to_string();
        if as_json {
            let slots: serde_json::Map<String, serde_json::Value> = self
                .reports
                .iter()
                .map(|r| {
                    let value = json!({
                        "index": r.index, "image_bytes": r.image_bytes, "chunks": r.chunks,
                        "chunks_new": r.new, "chunks_reused": r.reused, "bytes_new": r.new_bytes,
                    });
                    (r.name.clone(), value)
                })
                .collect();
            let requests = self.requests.map(|r| {
                json!({
                    "head": r.head.load(Ordering::Relaxed),
                    "put": r.put.load(Ordering::Relaxed),
                    "get": r.get.load(Ordering::Relaxed),
                })
            });
            let report = json!({
                "store": self.store, "slots": slots, "indexes": self.indexes,
                "chunks_new": new, "chunks_reused": reused, "bytes_uploaded": bytes,
                "manifest": manifest, "signed": self.signed_by > 0,
                "signatures": self.signed_by, "s3_requests": requests,
            });
            println!("{report}");
            return;
        }
        for r in self.reports {
            println!(
                "{}: {} bytes in {} chunks: {} new, {} reused",
                r.name, r.image_bytes, r.chunks, r.new, r.reused
            );
        }
        println!(
            "chunks: {new} new, {reused} reused; {bytes} bytes uploaded to {}",
            self.store
        );
        for index in self.indexes {
            println!("index: {index}");
        }
        match self.signed_by {
            0 => println!(
                "manifest: {manifest} (unsigned: sign it with `otasync sign {manifest} --key KEY.sec`)"
            ),
            n => println!(
                "manifest: {manifest} (signed with {n} key{})",
                if n == 1 { "" } else { "s" }
            ),
        }
    }
}

/// The HTTP client for S3: the command's settings, trusting the system's CA bundle when no
/// `--ca` (or `AWS_CA_BUNDLE`) is given, as AWS tools do on a build host.
fn s3_http_client(options: &Options) -> Result<Arc<HttpClient>> {
    let mut settings = options.http_settings();
    if settings.ca.is_none() {
        settings.ca = std::env::var_os("AWS_CA_BUNDLE")
            .map(PathBuf::from)
            .or_else(|| {
                SYSTEM_CA_BUNDLES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
            });
    }
    Ok(Arc::new(HttpClient::new(settings)?))
}

/// The manifest's name for a store compression.
fn signing_compression(compression: Compression) -> otasync_signing::Compression {
    match compression {
        Compression::Zstd(_) => otasync_signing::Compression::Zstd,
        Compression::None => otasync_signing::Compression::None,
    }
}

/// Names the image in errors that do not already say which.
fn in_image(error: Error, image: &str) -> Error {
    match error {
        Error::Io { context, source } if context == "reading input" => Error::Io {
            context: format!("reading {image}"),
            source,
        },
        other => other,
    }
}

/// `SLOT=IMAGE…` as (slot, image) pairs, slot names checked and distinct.
fn parse_slots(specs: &[String]) -> Result<Vec<(String, String)>> {
    if specs.is_empty() {
        return Err(Error::Usage("publish: give at least one SLOT=IMAGE".into()));
    }
    let mut slots: Vec<(String, String)> = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((name, image)) = spec.split_once('=') else {
            return Err(Error::Usage(format!("{spec:?}: expected SLOT=IMAGE")));
        };
        check_name("slot", name)?;
        if image.is_empty() || image == "-" {
            return Err(Error::Usage(format!(
                "{spec:?}: the image must be a file or block device"
            )));
        }
        if slots.iter().any(|(n, _)| n == name) {
            return Err(Error::Usage(format!("slot {name} given twice")));
        }
        slots.push((name.to_owned(), image.to_owned()));
    }
    Ok(slots)
}

/// Slot and release names become file names and object keys (`<slot>-<release>.caibx`):
/// letters, digits and `. _ + ~ -`, not starting with a dot, at most 100 characters.
fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'~' | b'-'));
    match valid {
        true => Ok(()),
        false => Err(Error::Usage(format!(
            "{what} name {name:?}: use letters, digits and . _ + ~ - (it names the index file)"
        ))),
    }
}

/// A reader that hashes (SHA-256) and counts what passes through: the image's pin in the
/// manifest, without reading the image twice.
struct Pinning<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> Pinning<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: DigestAlgorithm::Sha256.hasher(),
            size: 0,
        }
    }

    /// The SHA-256 and length of everything read.
    fn finish(self) -> Pinned {
        Pinned {
            sha256: Sha256(self.hasher.finalize().0),
            size: self.size,
        }
    }
}

impl<R: Read> Read for Pinning<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn slots_are_named_and_distinct() {
        let slots = parse_slots(&specs(&["rootfs=a.img", "boot=/dev/x=y"])).unwrap();
        assert_eq!(
            slots,
            [
                ("rootfs".to_owned(), "a.img".to_owned()),
                ("boot".to_owned(), "/dev/x=y".to_owned())
            ]
        );
        for bad in [
            &["rootfs"][..],
            &["=a.img"],
            &["../x=a.img"],
            &["a/b=a.img"],
            &[".hidden=a.img"],
            &["rootfs=-"],
            &["rootfs="],
            &["a=x", "a=y"],
        ] {
            assert!(
                matches!(parse_slots(&specs(bad)), Err(Error::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(check_name("release", "2026.08.1+rc~1_x-y").is_ok());
        assert!(check_name("release", "v 2").is_err());
        assert!(check_name("release", &"x".repeat(101)).is_err());
    }

    #[test]
    fn pinning_hashes_what_passes() {
        let data = b"hello world".repeat(1000);
        let mut pinning = Pinning::new(&data[..]);
        let mut sink = Vec::new();
        pinning.read_to_end(&mut sink).unwrap();
        let pin = pinning.finish();
        assert_eq!(pin.size, data.len() as u64);
        assert_eq!(pin.sha256.0, DigestAlgorithm::Sha256.digest(&data).0);
    }
}
