//! The file system `mkdev` serves: a read-only directory holding one read-only file, the blob an
//! index describes, exactly its size. Reads go straight to the chunks ([`ChunkedBlob`]).

use super::attr::{TTL, file_attr, reply_read};
use super::chunks::ChunkedBlob;
use super::source::{Access, ReadAt};
use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Inode number of the directory.
const DIR_INO: u64 = 1;
/// Inode number of the blob file.
const FILE_INO: u64 = 2;

/// Largest read served at once (the kernel asks for far less).
const MAX_READ: usize = 16 << 20;

/// One blob as a file in a directory.
pub(crate) struct BlobFs {
    blob: Arc<ChunkedBlob>,
    name: Vec<u8>,
    owner: (u32, u32),
    /// Time shown for both, in nanoseconds since the epoch.
    mtime: u64,
}

impl BlobFs {
    /// Shows `blob` as the file `name`, owned by `owner`, modified at `mtime` (ns).
    pub(crate) fn new(
        blob: Arc<ChunkedBlob>,
        name: Vec<u8>,
        owner: (u32, u32),
        mtime: u64,
    ) -> Self {
        Self {
            blob,
            name,
            owner,
            mtime,
        }
    }

    fn attr(&self, ino: u64) -> Result<fuser::FileAttr, Errno> {
        match ino {
            DIR_INO => Ok(file_attr(
                DIR_INO,
                FileType::Directory,
                0o555,
                0,
                self.owner,
                self.mtime,
                None,
            )),
            FILE_INO => Ok(file_attr(
                FILE_INO,
                FileType::RegularFile,
                0o444,
                self.blob.size(),
                self.owner,
                self.mtime,
                None,
            )),
            _ => Err(Errno::ENOENT),
        }
    }
}

impl Filesystem for BlobFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        super::attr::tune(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 != DIR_INO || name.as_bytes() != self.name {
            return reply.error(Errno::ENOENT);
        }
        match self.attr(FILE_INO) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 != FILE_INO {
            reply.error(Errno::EISDIR);
        } else if flags.acc_mode() != OpenAccMode::O_RDONLY {
            reply.error(Errno::EROFS);
        } else {
            // The blob never changes: the page cache stays valid across opens.
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush, ever: the kernel stops asking.
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino.0 != FILE_INO {
            return reply.error(Errno::EISDIR);
        }
        reply_read(
            reply,
            size,
            MAX_READ,
            |buf| self.blob.read_at(offset, buf, Access::Program),
            || format!("{size} bytes at {offset}"),
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != DIR_INO {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (DIR_INO, FileType::Directory, &b"."[..]),
            (DIR_INO, FileType::Directory, &b".."[..]),
            (FILE_INO, FileType::RegularFile, self.name.as_slice()),
        ];
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(self.blob.size().div_ceil(4096), 0, 0, 2, 0, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::NO_XATTR);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        super::attr::reply_xattr(reply, &[], size);
    }
}
