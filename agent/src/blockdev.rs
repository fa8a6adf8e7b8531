//! Block device helpers.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

// BLKGETSIZE64 is _IOR(0x12, 114, size_t): the size field is the platform's size_t, so the
// request number differs between 32- and 64-bit ARM; nix's `ioctl_read!` would encode 8 always.
nix::ioctl_read_bad!(
    blkgetsize64,
    nix::request_code_read!(0x12, 114, size_of::<usize>()),
    u64
);

/// Size in bytes of a block device (BLKGETSIZE64) or of a file.
pub(crate) fn size(file: &File) -> io::Result<u64> {
    if file.metadata()?.file_type().is_block_device() {
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid for that.
        unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
        return Ok(size);
    }
    let mut handle = file;
    let size = handle.seek(SeekFrom::End(0))?;
    handle.seek(SeekFrom::Start(0))?;
    Ok(size)
}

/// Opens a block device for reading and writing, exclusively: `O_EXCL` fails with `EBUSY`
/// while the device is mounted or held, which is reported as such (`what` names it).
pub(crate) fn open_exclusive(path: &Path, what: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_EXCL.bits() | OFlag::O_CLOEXEC.bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == Errno::EBUSY as i32 => Error::Usage(format!(
                "{what} {} is in use (mounted?); refusing to write to it",
                path.display()
            )),
            _ => Error::Io {
                context: format!("opening {what} {}", path.display()),
                source: e,
            },
        })
}
