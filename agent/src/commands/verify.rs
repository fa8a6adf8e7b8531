//! `otasync verify`: with `--root=ROOT.json`, a release manifest and its detached signatures
//! against a trust root and this device's state (the exit code says why it is refused); without
//! it, an index against its stores and optionally a file or device (see `verify_store`).

use super::keyfiles::{
    build_epoch, parse_time, read_capped, signature_path, signing_error, system_time,
};
use crate::cli::Options;
use crate::error::{Error, Result};
use clap::Args;
use otasync_signing::{
    Clock, Device, History, MAX_DOCUMENT, MAX_SIGNATURE_FILE, Outcome, Rotation, Timestamp,
    TrustRoot, verify_manifest,
};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of `otasync verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The trusted root (ROOT.json): verify FILE as a signed release manifest.
    #[arg(long, value_name = "ROOT.json")]
    pub(crate) root: Option<PathBuf>,
    /// A newer trust root (with ROOT.json.sig) to rotate to first; repeat in version order.
    #[arg(long = "root-update", value_name = "ROOT.json", requires = "root")]
    pub(crate) root_updates: Vec<PathBuf>,
    /// The manifest's signature file (default: FILE.sig).
    #[arg(long, value_name = "SIG", requires = "root")]
    pub(crate) signature: Option<PathBuf>,
    /// This device's compatible string (the manifest's product must equal it).
    #[arg(long, requires = "root")]
    pub(crate) compatible: Option<String>,
    /// This device's hardware id.
    #[arg(long = "hardware-id", requires = "root")]
    pub(crate) hardware_id: Option<String>,
    /// This device's id.
    #[arg(long = "device-id", requires = "root")]
    pub(crate) device_id: Option<String>,
    /// A group this device belongs to; repeatable.
    #[arg(long = "group", requires = "root")]
    pub(crate) groups: Vec<String>,
    /// Metadata version of the last accepted manifest.
    #[arg(long = "last-version", default_value_t = 0)]
    pub(crate) last_version: u64,
    /// The device's security version floor.
    #[arg(long = "security-floor", default_value_t = 0)]
    pub(crate) security_floor: u64,
    /// `issued_at` of the last accepted manifest.
    #[arg(long = "last-issued-at", value_parser = parse_time)]
    pub(crate) last_issued_at: Option<Timestamp>,
    /// The time to judge expiry by, instead of the system clock.
    #[arg(long, value_parser = parse_time)]
    pub(crate) now: Option<Timestamp>,
    /// The running image's build time (default: /usr/lib/clock-epoch's mtime).
    #[arg(long = "build-epoch", value_parser = parse_time)]
    pub(crate) build_epoch: Option<Timestamp>,
    /// Without --root: remove corrupt chunk files from local stores.
    #[arg(long, conflicts_with = "root")]
    pub(crate) repair: bool,
    /// The manifest (with --root), an index (.caibx/.caidx, a path, URL or HOST:PATH), or with
    /// a directory TARGET an archive (.catar) or archive index.
    pub(crate) file: String,
    /// Without --root: a file or block device to compare with the index, or a directory to
    /// compare with the archive.
    #[arg(conflicts_with = "root")]
    pub(crate) target: Option<String>,
}

pub(crate) fn run(options: &Options, args: &VerifyArgs) -> Result<()> {
    let Some(root_path) = &args.root else {
        // A directory is compared with an archive or archive index, entry by entry.
        if let Some(target) = args.target.as_deref()
            && Path::new(target).is_dir()
        {
            return super::diff::verify(options, &args.file, target);
        }
        return super::verify_store::run(options, &args.file, args.target.as_deref(), args.repair);
    };
    let Some(compatible) = &args.compatible else {
        return Err(Error::Usage(
            "verifying a manifest needs --compatible=…".into(),
        ));
    };
    let mut root = read_root(root_path)?;
    let mut history = History {
        metadata_version: args.last_version,
        security_floor: args.security_floor,
        last_issued_at: args.last_issued_at.unwrap_or_default(),
    };
    for update in &args.root_updates {
        let rotation = rotate(&root, update)?;
        history.after_rotation(&rotation);
        root = rotation.root;
    }
    let manifest_path = Path::new(&args.file);
    let manifest = read_capped(manifest_path, MAX_DOCUMENT)?;
    let signature = signature_path(manifest_path, args.signature.as_deref());
    let signatures = read_capped(&signature, MAX_SIGNATURE_FILE)?;
    let device = Device {
        compatible: compatible.clone(),
        hardware_id: args.hardware_id.clone(),
        device_id: args.device_id.clone(),
        groups: args.groups.clone(),
    };
    let clock = Clock {
        system: args.now.unwrap_or_else(system_time),
        build_epoch: args.build_epoch.unwrap_or_else(build_epoch),
    };
    let outcome = verify_manifest(&root, &manifest, &signatures, &device, &history, clock)
        .map_err(|e| signing_error(manifest_path, e))?;
    let (word, manifest) = match &outcome {
        Outcome::Update(m) => ("update", m),
        Outcome::UpToDate(m) => ("up-to-date", m),
    };
    if options.json {
        println!(
            "{}",
            json!({
                "outcome": word,
                "product": manifest.product,
                "version": manifest.version,
                "security_version": manifest.security_version,
                "release": manifest.release,
                "trust_root_version": root.version(),
            })
        );
    } else {
        println!(
            "{word}: {} version {} ({}), security version {}",
            manifest.product, manifest.version, manifest.release, manifest.security_version
        );
    }
    Ok(())
}

/// Reads a trusted root: the anchor itself is trusted as it is (it ships with the image).
pub(crate) fn read_root(path: &Path) -> Result<TrustRoot> {
    TrustRoot::parse(&read_capped(path, MAX_DOCUMENT)?).map_err(|e| signing_error(path, e))
}

/// Checks that `next` (signed in `next.sig`) is the rotation of `root` to the next version.
pub(crate) fn rotate(root: &TrustRoot, next: &Path) -> Result<Rotation> {
    let bytes = read_capped(next, MAX_DOCUMENT)?;
    let signatures = read_capped(&signature_path(next, None), MAX_SIGNATURE_FILE)?;
    root.rotate(&bytes, &signatures)
        .map_err(|e| signing_error(next, e))
}
