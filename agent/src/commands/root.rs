//! `otasync root create` writes a trust root from `.pub` files; `otasync root rotate` moves a
//! trusted root forward through newer versions, each signed by both versions' root thresholds.

use super::keyfiles::{parse_time, read_public_key, signing_error, system_time, write_replace};
use super::verify::{read_root, rotate};
use crate::error::{Error, Result};
use clap::{Args, Subcommand};
use otasync_signing::{PublicKey, Timestamp, TrustRoot};
use std::path::{Path, PathBuf};

/// What `otasync root` does.
#[derive(Debug, Subcommand)]
pub(crate) enum RootAction {
    /// Write a new trust root (sign it with `otasync sign`: for version N+1, with a threshold
    /// of version N's root keys and a threshold of its own).
    Create(CreateArgs),
    /// Check newer trust roots (each with FILE.sig) in version order and install the last one
    /// over the trusted root.
    Rotate {
        /// The currently trusted root; replaced atomically on success.
        #[arg(long, value_name = "ROOT.json")]
        trusted: PathBuf,
        /// Only check; leave the trusted root as it is.
        #[arg(long)]
        check: bool,
        /// Version N+1, N+2, …
        #[arg(required = true)]
        updates: Vec<PathBuf>,
    },
}

/// Arguments of `otasync root create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Where to write the root.
    pub(crate) output: PathBuf,
    /// Its version: 1 for a first root, N+1 to replace version N.
    #[arg(long = "version", default_value_t = 1)]
    pub(crate) root_version: u64,
    /// When it expires (default: 365 days from now).
    #[arg(long, value_parser = parse_time)]
    pub(crate) expires: Option<Timestamp>,
    /// A root key (.pub); repeatable.
    #[arg(long = "root-key", required = true, value_name = "KEY.pub")]
    pub(crate) root_keys: Vec<PathBuf>,
    /// How many root keys must sign the next root.
    #[arg(long = "root-threshold", default_value_t = 1)]
    pub(crate) root_threshold: usize,
    /// A release key (.pub); repeatable.
    #[arg(long = "release-key", required = true, value_name = "KEY.pub")]
    pub(crate) release_keys: Vec<PathBuf>,
    /// How many release keys must sign a manifest.
    #[arg(long = "release-threshold", default_value_t = 1)]
    pub(crate) release_threshold: usize,
}

pub(crate) fn run(action: &RootAction) -> Result<()> {
    match action {
        RootAction::Create(args) => create(args),
        RootAction::Rotate {
            trusted,
            check,
            updates,
        } => run_rotate(trusted, updates, *check),
    }
}

fn create(args: &CreateArgs) -> Result<()> {
    let read = |paths: &[PathBuf]| -> Result<Vec<PublicKey>> {
        paths.iter().map(|p| read_public_key(p)).collect()
    };
    let expires = args
        .expires
        .unwrap_or(Timestamp(system_time().0 + 365 * 86_400));
    let root = TrustRoot::new(
        args.root_version,
        expires,
        (&read(&args.root_keys)?, args.root_threshold),
        (&read(&args.release_keys)?, args.release_threshold),
    )
    .map_err(|e| signing_error(&args.output, e))?;
    write_replace(&args.output, &root.to_json())
}

fn run_rotate(trusted: &Path, updates: &[PathBuf], check: bool) -> Result<()> {
    let mut root = read_root(trusted)?;
    let mut reset = false;
    let mut last = trusted;
    for path in updates {
        let rotation = rotate(&root, path)?;
        reset |= rotation.release_keys_changed;
        root = rotation.root;
        last = path;
    }
    root.check_expiry(system_time())
        .map_err(|e| signing_error(last, e))?;
    if !check {
        let bytes = std::fs::read(last).map_err(|source| Error::Io {
            context: format!("reading {}", last.display()),
            source,
        })?;
        write_replace(trusted, &bytes)?;
    }
    println!("trust root version {}", root.version());
    if reset {
        println!("release keys changed: reset the metadata version floor (--last-version 0)");
    }
    Ok(())
}
