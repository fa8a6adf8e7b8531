//! Where extracted blobs go: a new file (written under a temporary name, renamed when complete
//! and verified), a block device (written in place after a size check), or stdout.

use crate::assemble::ChunkSink;
use crate::blockdev;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

/// A sink writing each chunk at its offset in a file or device.
pub(crate) struct PositionalSink<'a> {
    file: &'a File,
    /// Zero chunks may be skipped: the file is new and sparse, so the hole reads as zeros.
    zeros_are_holes: bool,
}

impl<'a> PositionalSink<'a> {
    pub(crate) fn new(file: &'a File, zeros_are_holes: bool) -> Self {
        Self {
            file,
            zeros_are_holes,
        }
    }
}

/// Zeros written per call when a zero run has to be written out.
static ZERO_BLOCK: [u8; 64 * 1024] = [0; 64 * 1024];

impl ChunkSink for PositionalSink<'_> {
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.zeros_are_holes && data.iter().all(|&b| b == 0) {
            return Ok(());
        }
        self.file.write_all_at(data, offset)
    }

    fn write_zeros(&self, offset: u64, len: usize) -> io::Result<()> {
        if self.zeros_are_holes {
            return Ok(());
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZERO_BLOCK.len());
            self.file
                .write_all_at(&ZERO_BLOCK[..n], offset + done as u64)?;
            done += n;
        }
        Ok(())
    }
}

/// An opened extraction target.
pub(crate) enum Target {
    /// A new regular file, complete only once committed.
    File(TempFile),
    /// A block device, written in place.
    Device(File),
}

impl Target {
    /// Opens `path` to receive `size` bytes.
    pub(crate) fn open(path: &Path, size: u64) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_block_device() => {
                let device = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .at("opening block device", path)?;
                let capacity = blockdev::size(&device).at("reading the size of", path)?;
                if capacity < size {
                    return Err(Error::Usage(format!(
                        "{}: device holds {capacity} bytes, the image needs {size}",
                        path.display()
                    )));
                }
                Ok(Self::Device(device))
            }
            Ok(meta) if meta.is_dir() => Err(Error::Usage(format!(
                "{} is a directory; a blob index extracts to a file or block device",
                path.display()
            ))),
            _ => {
                let temp = TempFile::create_for(path, 0o666)?;
                temp.file().set_len(size).at("sizing", path)?;
                Ok(Self::File(temp))
            }
        }
    }

    /// The file to write to.
    pub(crate) fn file(&self) -> &File {
        match self {
            Self::File(temp) => temp.file(),
            Self::Device(device) => device,
        }
    }

    /// True when unwritten ranges already read as zeros.
    pub(crate) fn is_sparse(&self) -> bool {
        matches!(self, Self::File(_))
    }

    /// Makes the written data durable (and, for a file, puts it in place).
    pub(crate) fn finish(self, path: &Path) -> Result<()> {
        match self {
            Self::File(temp) => temp.commit(),
            Self::Device(device) => device.sync_all().at("syncing", path),
        }
    }
}
