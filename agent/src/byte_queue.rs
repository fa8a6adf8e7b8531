//! A pipe between two threads of this process: the producer's `Write` fills blocks that a
//! bounded queue hands to the consumer's `Read`, and emptied blocks travel back for reuse.
//! Against a kernel pipe (64 KiB) this saves two copies of the stream and a pair of wake-ups
//! per 64 KiB; a tree extraction moves its whole archive through one.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

/// Bytes in each block handed over.
const BLOCK: usize = 1 << 20;
/// Blocks that may wait in the queue (the producer's lead over the consumer).
const QUEUED: usize = 4;

/// Creates the two ends.
pub(crate) fn byte_queue() -> (QueueReader, QueueWriter) {
    let (full_tx, full_rx) = sync_channel(QUEUED);
    // Room for every block in flight, so returning one never blocks.
    let (empty_tx, empty_rx) = sync_channel(QUEUED + 2);
    let reader = QueueReader {
        full: full_rx,
        empty: empty_tx,
        block: Vec::new(),
        at: 0,
    };
    let writer = QueueWriter {
        full: Some(full_tx),
        empty: empty_rx,
        block: Vec::with_capacity(BLOCK),
        finished: false,
    };
    (reader, writer)
}

/// An empty block: the writer was dropped without [`QueueWriter::finish`] (its producer
/// failed), so the stream is cut short, not complete.
const ABANDONED: Vec<u8> = Vec::new();

/// The consuming end: reads the blocks in order; end of stream once the writer has finished,
/// an error if it was abandoned.
pub(crate) struct QueueReader {
    full: Receiver<Vec<u8>>,
    empty: SyncSender<Vec<u8>>,
    block: Vec<u8>,
    at: usize,
}

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            let Ok(next) = self.full.recv() else {
                return Ok(0);
            };
            if next.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream's producer stopped before its end",
                ));
            }
            let mut used = std::mem::replace(&mut self.block, next);
            used.clear();
            // The writer may be gone or have enough spares: then the block is dropped (as is
            // the empty one the reader starts with).
            if used.capacity() >= BLOCK {
                let _ = self.empty.try_send(used);
            }
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The producing end: a write fails with `BrokenPipe` once the reader is gone; `flush` hands
/// over a partly filled block; [`finish`](Self::finish) ends the stream. Dropped unfinished, it
/// tells the reader the stream was cut short (what was not flushed is lost).
pub(crate) struct QueueWriter {
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    block: Vec<u8>,
    finished: bool,
}

impl QueueWriter {
    /// Hands over what is left and ends the stream: the reader then sees its end.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.finished = true;
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let spare = match self.empty.try_recv() {
            Ok(spare) => spare,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(BLOCK),
        };
        let full = std::mem::replace(&mut self.block, spare);
        let sender = self.full.as_ref().ok_or(io::ErrorKind::BrokenPipe)?;
        sender.send(full).map_err(|_| {
            self.full = None;
            io::Error::from(io::ErrorKind::BrokenPipe)
        })
    }
}

impl Write for QueueWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.full.is_none() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = data.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&data[..n]);
        if self.block.len() == BLOCK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for QueueWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Some(full) = &self.full
        {
            // Fails only if the reader is gone, which then needs no telling.
            let _ = full.send(ABANDONED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_a_stream_in_order_across_threads() {
        let data: Vec<u8> = (0..5 * BLOCK + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let (mut reader, mut writer) = byte_queue();
        let sent = data.clone();
        let producer = std::thread::spawn(move || {
            for piece in sent.chunks(100_003) {
                writer.write_all(piece).unwrap();
            }
            writer.finish().unwrap();
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        producer.join().unwrap();
        assert!(got == data);
    }

    #[test]
    fn writer_sees_broken_pipe_once_reader_is_gone() {
        let (reader, mut writer) = byte_queue();
        drop(reader);
        let err = writer.write_all(&vec![0; 2 * BLOCK]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_writer_dropped_unfinished_cuts_the_stream_short() {
        let (mut reader, mut writer) = byte_queue();
        writer.write_all(b"flushed").unwrap();
        writer.flush().unwrap();
        writer.write_all(b"lost").unwrap();
        drop(writer);
        let mut got = [0u8; 7];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"flushed");
        let err = reader.read(&mut got).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
