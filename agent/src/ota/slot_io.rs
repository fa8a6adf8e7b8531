//! A slot's storage as the installer sees it: positional writes and reads, syncs, and dropping
//! cached pages before the final re-hash. Behind a trait so that tests can cut the power after
//! any write or sync (see `sim`); [`FileSlot`] is the real block device or file.

use crate::blockdev;
use crate::error::{Error, IoContext, Result};
use nix::fcntl::{OFlag, PosixFadviseAdvice, posix_fadvise};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Storage of one slot.
pub(crate) trait SlotIo: Sync {
    /// Writes `data` at `offset` (not durable before [`SlotIo::sync`]).
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Bytes the slot holds.
    fn capacity(&self) -> u64;
    /// Forgets cached pages, so that the next reads come from the medium.
    fn drop_cache(&self) -> io::Result<()>;
    /// The open file, when there is one: the assembly reads chunks already in place from it.
    fn file(&self) -> Option<&File>;
}

/// A slot on a block device (opened `O_EXCL`: refused while mounted) or in a regular file.
pub(crate) struct FileSlot {
    file: File,
    capacity: u64,
}

impl FileSlot {
    /// Opens the slot at `path` for writing.
    pub(crate) fn open_for_writing(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).at("opening slot", path)?;
        let file = if meta.file_type().is_block_device() {
            blockdev::open_exclusive(path, "slot")?
        } else if meta.is_file() {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(OFlag::O_CLOEXEC.bits())
                .open(path)
                .at("opening slot", path)?
        } else {
            return Err(Error::Usage(format!(
                "slot {} is neither a block device nor a file",
                path.display()
            )));
        };
        let capacity = blockdev::size(&file).at("reading the size of", path)?;
        Ok(Self { file, capacity })
    }
}

impl SlotIo for FileSlot {
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn drop_cache(&self) -> io::Result<()> {
        self.file.sync_data()?;
        posix_fadvise(&self.file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
            .map_err(io::Error::from)
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

/// SHA-256 of the first `size` bytes of a slot, read after its cache was dropped.
pub(crate) fn hash_slot(io: &dyn SlotIo, size: u64) -> io::Result<[u8; 32]> {
    io.drop_cache()?;
    let mut hasher = otasync_core::DigestAlgorithm::Sha256.hasher();
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        io.read_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().0)
}
