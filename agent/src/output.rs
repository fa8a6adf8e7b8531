//! Where extracted blobs go: a file (written under a temporary name, renamed when complete and
//! verified), or a block device (opened exclusively, size-checked, written in place).

use crate::blockdev;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Write back to the device after this many bytes (see [`PositionalSink`]).
pub(crate) const DEVICE_SYNC_EVERY: u64 = 64 << 20;

/// An opened extraction target.
pub(crate) enum Target {
    /// A file under a temporary name, renamed over the target once complete and verified.
    /// `resumed` when an interrupted run left it: it may already hold chunks.
    File { temp: TempFile, resumed: bool },
    /// A block device, opened exclusively and written in place.
    Device(File),
}

impl Target {
    /// Opens `path` to receive `size` bytes.
    pub(crate) fn open(path: &Path, size: u64) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_block_device() => {
                let device = blockdev::open_exclusive(path, "block device")?;
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
                let (temp, resumed) = TempFile::resume_or_create(path, 0o666)?;
                if resumed {
                    log::info!(
                        "resuming the interrupted extraction into {}",
                        path.display()
                    );
                }
                temp.file().set_len(size).at("sizing", path)?;
                Ok(Self::File { temp, resumed })
            }
        }
    }

    /// The file to write to.
    pub(crate) fn file(&self) -> &File {
        match self {
            Self::File { temp, .. } => temp.file(),
            Self::Device(device) => device,
        }
    }

    /// The target when it may already hold chunks at their offsets: a device, or a file an
    /// interrupted run left.
    pub(crate) fn previous_content(&self) -> Option<&File> {
        match self {
            Self::File { resumed: false, .. } => None,
            _ => Some(self.file()),
        }
    }

    /// True for a block device.
    pub(crate) fn is_device(&self) -> bool {
        matches!(self, Self::Device(_))
    }

    /// True when unwritten ranges already read as zeros (a new sparse file).
    pub(crate) fn is_sparse(&self) -> bool {
        matches!(self, Self::File { resumed: false, .. })
    }

    /// How often written data is forced out to the medium.
    pub(crate) fn sync_every(&self) -> Option<u64> {
        matches!(self, Self::Device(_)).then_some(DEVICE_SYNC_EVERY)
    }

    /// Makes the written data durable (and, for a file, puts it in place).
    pub(crate) fn finish(self, path: &Path) -> Result<()> {
        match self {
            Self::File { temp, .. } => temp.commit(),
            Self::Device(device) => device.sync_all().at("syncing", path),
        }
    }
}
