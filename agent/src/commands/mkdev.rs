//! `otasync mkdev [--store=…] [--seed=…] INDEX.caibx [MOUNTPOINT]`: the blob of an index as a
//! read-only file, `MOUNTPOINT/<name>` where `<name>` is the index's file name without
//! `.caibx` (`image.caibx` → `image`), exactly the blob's size, in a FUSE mount (casync uses
//! NBD, which is not available everywhere). `mount -o loop,ro MOUNTPOINT/<name>` mounts a file
//! system image from it. Without MOUNTPOINT a fresh directory under `$TMPDIR` is used (and
//! removed afterwards). Runs until SIGINT/SIGTERM/SIGHUP, then unmounts.

use super::{option_seeds, read_index, read_stores};
use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::fuse::blob_fs::BlobFs;
use crate::fuse::chunks::{
    BLOB_READ_AHEAD, BlobSettings, CHECK_TOGETHER, ChunkedBlob, DEFAULT_MEMORY_CACHE,
};
use crate::fuse::session::{MountSettings, Signals, serve};
use crate::seed::SeedSet;
use crate::store::StoreChain;
use otasync_core::Index;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// Name of the file when the index's name gives none.
const DEFAULT_NAME: &str = "blob";

/// Shows the blob of `index_path` in a mount at `mountpoint` (or a temporary directory) until
/// a signal or an unmount from outside.
pub(crate) fn run(options: &Options, index_path: &str, mountpoint: Option<&str>) -> Result<()> {
    // Before any thread starts, so that every thread inherits the blocked signals.
    let signals = Signals::block()?;
    crate::fuse::heap::limit_arenas();
    if options.what.or_else(|| What::from_name(index_path)) != Some(What::BlobIndex) {
        return Err(Error::Usage(format!(
            "{index_path}: mkdev takes a .caibx (or --what=blob-index)"
        )));
    }
    let index = read_index(options, index_path)?;
    let stores = read_stores(options, index_path)?;
    let seeds = option_seeds(options, &index.header)?;
    let blob = Arc::new(open_blob(options, index, stores, seeds, BLOB_READ_AHEAD)?);
    let name = file_name(index_path);
    let (dir, temporary) = match mountpoint {
        Some(dir) => (PathBuf::from(dir), false),
        None => {
            let dir = std::env::temp_dir().join(format!("otasync-mkdev-{}", std::process::id()));
            (dir, true)
        }
    };
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    let mtime = modified(index_path);
    let owner = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let fs = BlobFs::new(Arc::clone(&blob), name.clone().into_bytes(), owner, mtime);
    let settings = MountSettings {
        fsname: index_path.to_owned(),
        threads: options.threads().max(2),
        notifier: None,
    };
    let file = dir.join(&name);
    let served = serve(fs, &dir, &settings, signals, || {
        println!("Attached: {}", file.display());
        let _ = std::io::stdout().flush();
    });
    if temporary {
        let _ = std::fs::remove_dir(&dir);
    }
    served?;
    report(options, &blob);
    blob.stores().finish()
}

/// The lazily read stream of `index`, with the settings the options give.
pub(crate) fn open_blob(
    options: &Options,
    index: Index,
    stores: StoreChain,
    seeds: SeedSet,
    read_ahead: u64,
) -> Result<ChunkedBlob> {
    let remote = stores.is_remote();
    let settings = BlobSettings {
        memory_cache: DEFAULT_MEMORY_CACHE,
        prefetch_threads: options.threads_for(&stores),
        // Local chunks are checked side by side (multi-buffer hashing); remote ones are
        // fetched one per worker, in parallel.
        check_together: if remote { 1 } else { CHECK_TOGETHER },
        read_ahead,
    };
    ChunkedBlob::new(index, stores, seeds, &settings).context(|| "starting prefetch threads".into())
}

/// Logs (or with `--print-stats` prints) where the chunks came from.
pub(crate) fn report(options: &Options, blob: &ChunkedBlob) {
    let stats = blob.stats();
    let line = format!(
        "chunks read: {} from seeds, {} from stores, {} failed ({} of them ahead of the reader)",
        stats.from_seeds.load(Ordering::Relaxed),
        stats.from_stores.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.prefetched.load(Ordering::Relaxed)
    );
    if options.print_stats {
        eprintln!("{line}");
    } else {
        log::info!("{line}");
    }
}

/// The file's name: the index's last path component without `.caibx` (and, for a URL, without
/// a query).
fn file_name(index: &str) -> String {
    let path = index.split(['?', '#']).next().unwrap_or(index);
    let last = path.rsplit('/').next().unwrap_or(path);
    let stem = last.strip_suffix(".caibx").unwrap_or(last);
    match stem {
        "" | "." | ".." => DEFAULT_NAME.to_owned(),
        stem => stem.to_owned(),
    }
}

/// The index file's modification time in ns since the epoch (now for a URL).
fn modified(index: &str) -> u64 {
    let time = std::fs::metadata(Path::new(index))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_index() {
        assert_eq!(file_name("out/rootfs.caibx"), "rootfs");
        assert_eq!(file_name("http://h/a/b.caibx?token=1"), "b");
        assert_eq!(file_name("plain"), "plain");
        assert_eq!(file_name(".caibx"), "blob");
        assert_eq!(file_name("dir/"), "blob");
    }
}
