//! What both file systems share: attributes, errno mapping, xattr replies and the kernel
//! connection settings.

use fuser::{Errno, FileAttr, FileType, INodeNo, InitFlags, KernelConfig, ReplyData, ReplyXattr};
use std::cell::RefCell;
use std::io;
use std::time::{Duration, SystemTime};

/// How long the kernel may cache attributes and names: the mounted data never changes.
pub(crate) const TTL: Duration = Duration::from_secs(24 * 3600);

/// Read-ahead asked of the kernel (it grants at most what it offers, usually 128 KiB).
const MAX_READAHEAD: u32 = 1 << 20;

/// Requests the kernel may have in flight in the background (read-ahead).
const MAX_BACKGROUND: u16 = 64;

thread_local! {
    /// Each FUSE thread's read buffer.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Answers a READ of `size` bytes (at most `max`) with what `read` puts into this thread's
/// buffer; a failure is logged, naming `what`, and returned as its errno.
pub(crate) fn reply_read(
    reply: ReplyData,
    size: u32,
    max: usize,
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    what: impl FnOnce() -> String,
) {
    READ_BUF.with_borrow_mut(|buf| {
        buf.resize((size as usize).min(max), 0);
        match read(buf) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => {
                log::warn!("reading {}: {e}", what());
                reply.error(errno(&e));
            }
        }
    });
}

/// The errno a failed operation returns: the OS error if it is one, else EIO.
pub(crate) fn errno(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) => Errno::from_i32(code),
        None => Errno::EIO,
    }
}

/// `st_rdev` as the FUSE protocol carries it: the kernel's 32-bit `new_encode_dev`.
pub(crate) fn encode_dev(major: u64, minor: u64) -> u32 {
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)) as u32
}

/// The attributes of a node; `mtime` in nanoseconds since the epoch (also used as atime and
/// ctime, which archives do not keep).
pub(crate) fn file_attr(
    ino: u64,
    kind: FileType,
    mode: u32,
    size: u64,
    (uid, gid): (u32, u32),
    mtime: u64,
    rdev: Option<(u64, u64)>,
) -> FileAttr {
    let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm: (mode & 0o7777) as u16,
        // Directories too: 1 tells tools (find's leaf optimization) that the count of
        // subdirectories is unknown.
        nlink: 1,
        uid,
        gid,
        rdev: rdev.map_or(0, |(major, minor)| encode_dev(major, minor)),
        blksize: 4096,
        flags: 0,
    }
}

/// Answers `getxattr`/`listxattr`: the size when asked for it (`size` 0), else the value if it
/// fits.
pub(crate) fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

/// Connection settings for fast reads of immutable data: large read-ahead, many background
/// requests, cached symlinks, parallel lookups.
pub(crate) fn tune(config: &mut KernelConfig) {
    if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
        let _ = config.set_max_readahead(max);
    }
    let _ = config.set_max_background(MAX_BACKGROUND);
    for wanted in [
        InitFlags::FUSE_CACHE_SYMLINKS,
        InitFlags::FUSE_PARALLEL_DIROPS,
    ] {
        if config.add_capabilities(wanted).is_err() {
            log::debug!("the kernel lacks {wanted:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_as_the_kernel_encodes_them() {
        // new_encode_dev(MKDEV(1, 3)) and (MKDEV(259, 0x12345)).
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(7, 0), 0x700);
        assert_eq!(
            encode_dev(259, 0x12345),
            0x45 | (259 << 8) | (0x12300 << 12)
        );
    }

    #[test]
    fn os_errors_pass_through() {
        assert_eq!(
            errno(&io::Error::from_raw_os_error(libc::ENOTDIR)),
            Errno::ENOTDIR
        );
        assert_eq!(errno(&io::Error::other("no store has it")), Errno::EIO);
    }
}
