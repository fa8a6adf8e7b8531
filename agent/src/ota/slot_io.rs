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

/// Bytes read from the slot at a time by [`hash_slot`].
const HASH_BLOCK: usize = 4 << 20;

/// SHA-256 of the first `size` bytes of a slot, read after its cache was dropped. A thread
/// reads the next block while this one hashes the last (two blocks in memory).
pub(crate) fn hash_slot(io: &dyn SlotIo, size: u64) -> io::Result<[u8; 32]> {
    io.drop_cache()?;
    let (full, blocks) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(1);
    let (empty, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        let _ = empty.send(vec![0u8; HASH_BLOCK]);
    }
    std::thread::scope(|scope| {
        // Dropped when hashing ends, before the reader is waited for: it cannot wait for a
        // block forever.
        let empty = empty;
        scope.spawn(move || {
            let mut at = 0;
            while at < size {
                // The hasher stopped (it failed or the slot ended): so does the reader.
                let Ok(mut buf) = spare.recv() else { return };
                let n = (size - at).min(HASH_BLOCK as u64) as usize;
                buf.truncate(n);
                let read = io.read_at(&mut buf, at).map(|()| buf);
                let failed = read.is_err();
                if full.send(read).is_err() || failed {
                    return;
                }
                at += n as u64;
            }
        });
        let mut hasher = otasync_core::DigestAlgorithm::Sha256.hasher();
        let mut hashed = 0;
        while hashed < size {
            let buf = blocks
                .recv()
                .map_err(|_| io::Error::other("the slot reader stopped early"))??;
            hasher.update(&buf);
            hashed += buf.len() as u64;
            let _ = empty.send(buf);
        }
        Ok(hasher.finalize().0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_slot_covers_exactly_the_image_across_block_edges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot");
        let content: Vec<u8> = (0..2 * HASH_BLOCK + 5)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let slot = FileSlot::open_for_writing(&path).unwrap();
        for size in [
            0,
            1,
            HASH_BLOCK - 1,
            HASH_BLOCK,
            HASH_BLOCK + 1,
            content.len(),
        ] {
            let expected = otasync_core::DigestAlgorithm::Sha256.digest(&content[..size]);
            assert_eq!(
                hash_slot(&slot, size as u64).unwrap(),
                expected.0,
                "{size} bytes"
            );
        }
        // An image longer than the slot: the short read fails the hash, it does not hang.
        let err = hash_slot(&slot, content.len() as u64 + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
