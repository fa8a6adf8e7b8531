//! File-system helpers: crash-safe replacement of files and temporary names.

use crate::error::{IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A random value for temporary names.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // The process id keeps names of concurrent runs apart; asked for once, not per name.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    h.write_u32(*PID.get_or_init(std::process::id));
    h.finish()
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file written under a temporary name beside its target (`.#<name><16 hex>`, as casync
/// names them) and renamed over the target only by [`TempFile::commit`]. Dropped uncommitted,
/// it is removed: a failed command leaves neither a partial target nor litter.
pub(crate) struct TempFile {
    file: File,
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates the temporary file for `target` with `mode` (before umask).
    pub(crate) fn create_for(target: &Path, mode: u32) -> Result<Self> {
        let name = target
            .file_name()
            .unwrap_or(target.as_os_str())
            .to_string_lossy();
        let path = parent_dir(target).join(format!(".#{name}{:016x}", random_u64()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .at("creating", &path)?;
        Ok(Self {
            file,
            path,
            target: target.to_owned(),
            committed: false,
        })
    }

    /// Opens the partial file an interrupted run left for `target` (`.#<name>.partial`), or
    /// creates it. Returns whether it already existed: its content may then be reused where it
    /// verifies. Unlike [`TempFile::create_for`] the name is fixed, so that a run killed before
    /// it could clean up is resumed by the next one.
    pub(crate) fn resume_or_create(target: &Path, mode: u32) -> Result<(Self, bool)> {
        let name = target
            .file_name()
            .unwrap_or(target.as_os_str())
            .to_string_lossy();
        let path = parent_dir(target).join(format!(".#{name}.partial"));
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .open(&path)
            .at("opening", &path)?;
        Ok((
            Self {
                file,
                path,
                target: target.to_owned(),
                committed: false,
            },
            existed,
        ))
    }

    /// The open temporary file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Makes the content durable and atomically puts it in place of the target.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.file.sync_all().at("syncing", &self.path)?;
        fs::rename(&self.path, &self.target).at("renaming into place", &self.target)?;
        self.committed = true;
        sync_dir(parent_dir(&self.target))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsyncs a directory so that a rename in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("syncing directory", dir)
}
