//! std adaptors: cutting an [`std::io::Read`] into chunks.

use crate::chunker::Chunker;
use alloc::vec::Vec;
use std::io::{self, Read};

/// Bytes read from the source at a time.
const READ_SIZE: usize = 256 * 1024;

/// Iterates over the chunks of a reader, each as an owned buffer.
pub struct ChunkReader<R> {
    source: R,
    chunker: Chunker,
    buffer: Vec<u8>,
    /// `buffer[consumed..filled]` has been read but not yet scanned into a chunk.
    consumed: usize,
    filled: usize,
    current: Vec<u8>,
    eof: bool,
}

impl<R: Read> ChunkReader<R> {
    /// Cuts `source` with `chunker`.
    pub fn new(source: R, chunker: Chunker) -> Self {
        Self {
            source,
            chunker,
            buffer: alloc::vec![0; READ_SIZE],
            consumed: 0,
            filled: 0,
            current: Vec::new(),
            eof: false,
        }
    }

    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.consumed == self.filled {
                if self.eof {
                    return Ok(
                        (!self.current.is_empty()).then(|| core::mem::take(&mut self.current))
                    );
                }
                self.consumed = 0;
                self.filled = loop {
                    match self.source.read(&mut self.buffer) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.eof = self.filled == 0;
                continue;
            }
            let pending = &self.buffer[self.consumed..self.filled];
            match self.chunker.scan(pending) {
                Some(n) => {
                    self.current.extend_from_slice(&pending[..n]);
                    self.consumed += n;
                    return Ok(Some(core::mem::take(&mut self.current)));
                }
                None => {
                    self.current.extend_from_slice(pending);
                    self.consumed = self.filled;
                }
            }
        }
    }
}

impl<R: Read> Iterator for ChunkReader<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkSizes;

    #[test]
    fn chunks_concatenate_to_input() {
        let data = crate::testdata::vec_bin_prefix(700_000);
        let chunks: Vec<Vec<u8>> = ChunkReader::new(&data[..], Chunker::new(ChunkSizes::default()))
            .collect::<io::Result<_>>()
            .unwrap();
        assert!(chunks.len() > 5);
        assert_eq!(chunks.concat(), data);
        assert_eq!(chunks[0].len(), 80921);
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let mut reader = ChunkReader::new(&[][..], Chunker::new(ChunkSizes::default()));
        assert!(reader.next().is_none());
    }
}
