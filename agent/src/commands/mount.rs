//! `otasync mount [--store=…] ARCHIVE.catar|INDEX.caidx MOUNTPOINT`: a read-only FUSE view of
//! an archive, with the archived modes, owners, times, symlinks, devices, xattrs and ACLs.
//! Entries are decoded when first looked up (through the goodbye tables); a `.caidx`'s chunks
//! are fetched when first read, from local or HTTP stores. The mount point is created if
//! missing. Runs until SIGINT/SIGTERM/SIGHUP, then unmounts.

use super::mkdev::{open_blob, report};
use super::{read_index, read_stores};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::fuse::archive::Archive;
use crate::fuse::archive_fs::ArchiveFs;
use crate::fuse::prelist::Lister;
use crate::fuse::push::{NotifierSlot, Pusher};
use crate::fuse::session::{MountSettings, Signals, serve};
use crate::fuse::source::{FileSource, ReadAt};
use crate::seed::SeedSet;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// Bytes of an archive index's chunks fetched ahead of a reader going forward: less than for a
/// blob, as walking a tree jumps about more.
const ARCHIVE_READ_AHEAD: u64 = 4 << 20;

/// Mounts `input` at `mountpoint` and serves it until a signal or an unmount from outside.
pub(crate) fn run(options: &Options, input: &str, mountpoint: &str) -> Result<()> {
    // Before any thread starts, so that every thread inherits the blocked signals.
    let signals = Signals::block()?;
    crate::fuse::heap::limit_arenas();
    let (source, blob): (Arc<dyn ReadAt>, _) = match options.what.or_else(|| What::from_name(input))
    {
        Some(What::Archive) => {
            let path = Path::new(input);
            let file = std::fs::File::open(path).at("opening", path)?;
            (Arc::new(FileSource::new(file).at("reading", path)?), None)
        }
        Some(What::ArchiveIndex) => {
            let index = read_index(options, input)?;
            let stores = read_stores(options, input)?;
            let seeds = SeedSet::empty();
            let blob = Arc::new(open_blob(
                options,
                index,
                stores,
                seeds,
                ARCHIVE_READ_AHEAD,
            )?);
            (Arc::clone(&blob) as Arc<dyn ReadAt>, Some(blob))
        }
        _ => {
            return Err(Error::Usage(format!(
                "{input}: mount takes a .catar or .caidx (or --what=archive|archive-index)"
            )));
        }
    };
    let archive = Archive::open(source).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::InvalidInput {
            path: input.to_owned(),
            reason: e.to_string(),
        },
        _ => Error::Io {
            context: format!("reading {input}"),
            source: e,
        },
    })?;
    let dir = Path::new(mountpoint);
    std::fs::create_dir_all(dir).at("creating", dir)?;
    let archive = Arc::new(archive);
    let notifier = NotifierSlot::default();
    let push = Pusher::start(Arc::clone(&archive), Arc::clone(&notifier))
        .at("starting", Path::new("the read-ahead thread"))?;
    let pushed = push.pushed();
    let lister = Lister::start(Arc::clone(&archive))
        .at("starting", Path::new("the listing-ahead thread"))?;
    let settings = MountSettings {
        fsname: input.to_owned(),
        threads: options.threads().max(2),
        notifier: Some(notifier),
    };
    serve(
        ArchiveFs::new(archive, Some(push), Some(lister)),
        dir,
        &settings,
        signals,
        || {
            println!("Mounted: {mountpoint}");
            let _ = io::stdout().flush();
        },
    )?;
    let line = format!(
        "files handed to the kernel's cache ahead of reads: {}",
        pushed.load(std::sync::atomic::Ordering::Relaxed)
    );
    match options.print_stats {
        true => eprintln!("{line}"),
        false => log::info!("{line}"),
    }
    if let Some(blob) = blob {
        report(options, &blob);
        blob.stores().finish()?;
    }
    Ok(())
}
