//! `otasync manifest create OUT.json SLOT=INDEX.caibx:IMAGE…`: a release manifest that pins each
//! slot's index and image by SHA-256 and length. Sign it with `otasync sign`.

use super::keyfiles::{parse_time, system_time, write_replace};
use super::{MAX_INDEX_BYTES, decode_index, read_bounded};
use crate::error::{Error, IoContext, Result};
use clap::{Args, Subcommand};
use otasync_core::{DigestAlgorithm, Index};
use otasync_signing::{
    ChunkDigest, Compression, IndexRef, MANIFEST_FORMAT, Manifest, Pinned, Sha256, Slot, Timestamp,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What `otasync manifest` does.
#[derive(Debug, Subcommand)]
pub(crate) enum ManifestAction {
    /// Write a manifest for one or more slots.
    Create(CreateArgs),
}

/// Arguments of `otasync manifest create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Where to write the manifest.
    pub(crate) output: PathBuf,
    /// SLOT=INDEX.caibx:IMAGE: the slot's index and the image it assembles; repeatable.
    #[arg(required = true, value_name = "SLOT=INDEX.caibx:IMAGE")]
    pub(crate) slots: Vec<String>,
    /// What the manifest says about the release.
    #[command(flatten)]
    pub(crate) release: ReleaseFields,
    /// Chunk compression in the stores: zstd or none.
    #[arg(long = "chunk-compression", default_value = "zstd")]
    pub(crate) chunk_compression: String,
}

/// What a manifest says about a release besides its slots (`manifest create` and `publish`).
#[derive(Debug, Args)]
pub(crate) struct ReleaseFields {
    /// The devices' compatible string.
    #[arg(long)]
    pub(crate) product: String,
    /// Metadata version: higher than every earlier release's.
    #[arg(long = "metadata-version")]
    pub(crate) metadata_version: u64,
    /// Anti-rollback security version.
    #[arg(long = "security-version", default_value_t = 0)]
    pub(crate) security_version: u64,
    /// Human-readable release name (default: the metadata version).
    #[arg(long)]
    pub(crate) release: Option<String>,
    /// Signing time (default: now).
    #[arg(long = "issued-at", value_parser = parse_time)]
    pub(crate) issued_at: Option<Timestamp>,
    /// Expiry (default: 30 days after issued-at).
    #[arg(long, value_parser = parse_time)]
    pub(crate) expires: Option<Timestamp>,
    /// A hardware id the release is for; repeatable (default: any).
    #[arg(long)]
    pub(crate) hardware: Vec<String>,
    /// A device id or group the release is for; repeatable (default: any).
    #[arg(long = "device")]
    pub(crate) devices: Vec<String>,
    /// A chunk store URL; repeatable.
    #[arg(long = "chunk-store")]
    pub(crate) chunk_stores: Vec<String>,
}

impl ReleaseFields {
    /// The release name: `--release`, else the metadata version.
    pub(crate) fn release_name(&self) -> String {
        self.release
            .clone()
            .unwrap_or_else(|| self.metadata_version.to_string())
    }
}

/// One slot of a manifest, with the digest its index names chunks by.
pub(crate) struct SlotEntry {
    /// The slot's name (`rootfs`…).
    pub(crate) name: String,
    /// What the manifest pins for it.
    pub(crate) slot: Slot,
    /// The index's chunk digest.
    pub(crate) digest: DigestAlgorithm,
}

pub(crate) fn run(action: &ManifestAction) -> Result<()> {
    let ManifestAction::Create(args) = action;
    let compression = match args.chunk_compression.as_str() {
        "zstd" => Compression::Zstd,
        "none" => Compression::None,
        other => return Err(Error::Usage(format!("unknown chunk compression {other:?}"))),
    };
    let slots = args
        .slots
        .iter()
        .map(|spec| slot(spec))
        .collect::<Result<Vec<_>>>()?;
    let bytes = manifest_json(&args.release, compression, slots)?;
    write_replace(&args.output, &bytes)
}

/// The manifest's bytes: `release`'s fields and `slots` (their indexes must share a digest,
/// and their names be distinct), as `manifest create` and `publish` write it.
pub(crate) fn manifest_json(
    release: &ReleaseFields,
    compression: Compression,
    slots: Vec<SlotEntry>,
) -> Result<Vec<u8>> {
    let mut digest = None;
    let mut by_name = BTreeMap::new();
    for entry in slots {
        if digest.is_some_and(|d| d != entry.digest) {
            return Err(Error::Usage("the indexes use different digests".into()));
        }
        digest = Some(entry.digest);
        if by_name.contains_key(&entry.name) {
            return Err(Error::Usage(format!("slot {} given twice", entry.name)));
        }
        by_name.insert(entry.name, entry.slot);
    }
    let issued_at = release.issued_at.unwrap_or_else(system_time);
    let list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        product: release.product.clone(),
        hardware: list(&release.hardware),
        devices: list(&release.devices),
        version: release.metadata_version,
        security_version: release.security_version,
        release: release.release_name(),
        issued_at,
        expires: release
            .expires
            .unwrap_or(Timestamp(issued_at.0 + 30 * 86_400)),
        digest: match digest {
            Some(DigestAlgorithm::Sha256) => ChunkDigest::Sha256,
            _ => ChunkDigest::Sha512_256,
        },
        compression,
        chunk_stores: release.chunk_stores.clone(),
        slots: by_name,
    };
    manifest
        .to_json()
        .map_err(|e| Error::Usage(format!("manifest: {e}")))
}

/// Reads `SLOT=INDEX.caibx:IMAGE`: the index and the image it assembles.
fn slot(spec: &str) -> Result<SlotEntry> {
    let parsed = spec
        .split_once('=')
        .and_then(|(name, rest)| Some((name, rest.split_once(':')?)));
    let Some((name, (index_path, image_path))) = parsed else {
        return Err(Error::Usage(format!(
            "{spec:?}: expected SLOT=INDEX.caibx:IMAGE"
        )));
    };
    let bytes = read_bounded(index_path, MAX_INDEX_BYTES)?;
    let index = decode_index(index_path, &bytes)?;
    let image = hash_file(Path::new(image_path))?;
    let file_name = Path::new(index_path).file_name().unwrap_or_default();
    slot_entry(
        name,
        &file_name.to_string_lossy(),
        &bytes,
        &index,
        image_path,
        image,
    )
}

/// The manifest entry of slot `name`: its index (`index_bytes`, decoded as `index`, served as
/// `index_name` beside the manifest) and the image at `image_path` it assembles, whose hash
/// and length are `image`. Refuses an index that describes another length.
pub(crate) fn slot_entry(
    name: &str,
    index_name: &str,
    index_bytes: &[u8],
    index: &Index,
    image_path: &str,
    image: Pinned,
) -> Result<SlotEntry> {
    let total = index.chunks.last().map_or(0, |c| c.end);
    if image.size != total {
        return Err(Error::InvalidInput {
            path: image_path.to_owned(),
            reason: format!("{} bytes, but the index describes {total}", image.size),
        });
    }
    Ok(SlotEntry {
        name: name.to_owned(),
        slot: Slot {
            index: IndexRef {
                path: index_name.to_owned(),
                sha256: Sha256(DigestAlgorithm::Sha256.digest(index_bytes).0),
                size: index_bytes.len() as u64,
            },
            image,
            chunk_size_max: index.header.sizes.max,
        },
        digest: index.header.digest(),
    })
}

/// SHA-256 and length of a file or block device, streamed.
fn hash_file(path: &Path) -> Result<Pinned> {
    let mut file = std::fs::File::open(path).at("opening", path)?;
    let mut hasher = DigestAlgorithm::Sha256.hasher();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).at("reading", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok(Pinned {
        sha256: Sha256(hasher.finalize().0),
        size,
    })
}
