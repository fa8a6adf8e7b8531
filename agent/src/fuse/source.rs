//! Positional reads of the byte stream a mount shows: a `.catar` file as it is, or the blob or
//! archive stream an index describes (see [`super::chunks`]).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Who reads, which decides whether a stream able to fetch ahead does so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A program reading on (a file, the blob): what follows is fetched ahead.
    Program,
    /// The mount itself (records, files pushed ahead), which names what it reads next through
    /// [`ReadAt::will_read`] or [`ReadAt::fetch`]: nothing more is fetched.
    Hinted,
}

/// A fixed-size byte stream read at any offset, from any thread.
pub(crate) trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the stream.
    fn read_at(&self, offset: u64, buf: &mut [u8], access: Access) -> io::Result<usize>;

    /// Size of the stream in bytes.
    fn size(&self) -> u64;

    /// Tells the stream that the bytes in `ranges` (ascending) will be read soon, so that a
    /// stream able to fetch ahead starts on them; by default nothing happens.
    fn will_read(&self, _ranges: &[Range<u64>]) {}

    /// Makes the bytes in `ranges` (ascending) quick to read now: a stream that fetches them
    /// side by side does so before returning; by default nothing happens.
    fn fetch(&self, _ranges: &[Range<u64>]) {}

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` past the end.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8], access: Access) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} bytes at offset {offset} are past the end of the archive",
                    buf.len()
                ),
            ));
        }
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(offset + done as u64, &mut buf[done..], access)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

/// A local file (a `.catar`), read with `pread`.
pub(crate) struct FileSource {
    file: File,
    size: u64,
}

impl FileSource {
    /// Wraps an open file, whose size must not change while it is mounted.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(Self { file, size })
    }
}

impl ReadAt for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8], _: Access) -> io::Result<usize> {
        let len = buf.len().min(self.size.saturating_sub(offset) as usize);
        let mut done = 0;
        while done < len {
            match self.file.read_at(&mut buf[done..len], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_reads_stop_at_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let source = FileSource::new(file).unwrap();
        let mut buf = [0u8; 4];
        let access = Access::Program;
        assert_eq!(source.read_at(8, &mut buf, access).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(source.read_at(10, &mut buf, access).unwrap(), 0);
        source.read_exact_at(3, &mut buf, access).unwrap();
        assert_eq!(&buf, b"3456");
        let err = source.read_exact_at(7, &mut buf, access).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(source.read_exact_at(u64::MAX, &mut buf, access).is_err());
    }
}
