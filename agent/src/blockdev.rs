//! Block device helpers.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

/// Size in bytes of a block device (or file): the offset of its end. This needs no ioctl, so
/// it is right on 32- and 64-bit kernels alike.
pub(crate) fn size(file: &File) -> io::Result<u64> {
    let mut handle = file;
    let size = handle.seek(SeekFrom::End(0))?;
    handle.seek(SeekFrom::Start(0))?;
    Ok(size)
}
