//! Writing a slot with checkpoints (ota-agent.md §6.2 step 4): every chunk the assembly writes
//! (or finds already in place) is marked done; every [`CHECKPOINT_EVERY`] bytes the slot is
//! synced and then, only then, the number of chunks done from the start of the image is handed
//! to the journal. A resumed installation skips those chunks; the final re-hash of the whole
//! image still checks them.

use super::slot_io::SlotIo;
use crate::error::{Error, Result};
use crate::sink::{ChunkSink, write_zeros_by_block};
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes written between two checkpoints: what a power cut can cost again.
pub(crate) const CHECKPOINT_EVERY: u64 = 32 << 20;

/// Which chunks are done, and the longest done prefix.
struct Progress {
    done: Vec<bool>,
    /// Chunks `0..prefix` (relative to `first`) are all done.
    prefix: usize,
}

/// A [`ChunkSink`] writing into a slot, checkpointing as it goes.
pub(crate) struct CheckpointSink<'a> {
    io: &'a dyn SlotIo,
    /// Start offsets of the chunks from `first` on.
    starts: Vec<u64>,
    /// Number of the first chunk this run assembles.
    first: usize,
    progress: Mutex<Progress>,
    /// Serialises checkpoints (sync, then journal).
    checkpointing: Mutex<()>,
    unsynced: AtomicU64,
    every: u64,
    on_checkpoint: &'a (dyn Fn(u64) -> Result<()> + Sync),
}

impl<'a> CheckpointSink<'a> {
    /// A sink for the chunks from number `first` on, starting at the offsets `starts`;
    /// `on_checkpoint(n)` records that chunks `0..n` are durable.
    pub(crate) fn new(
        io: &'a dyn SlotIo,
        first: usize,
        starts: Vec<u64>,
        every: u64,
        on_checkpoint: &'a (dyn Fn(u64) -> Result<()> + Sync),
    ) -> Self {
        let count = starts.len();
        Self {
            io,
            starts,
            first,
            progress: Mutex::new(Progress {
                done: vec![false; count],
                prefix: 0,
            }),
            checkpointing: Mutex::new(()),
            unsynced: AtomicU64::new(0),
            every,
            on_checkpoint,
        }
    }

    /// Syncs and records everything done so far.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let _one_at_a_time = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        // The prefix is read before the sync, so every chunk it covers is in the synced data.
        let prefix = self
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prefix;
        self.io.sync().map_err(|source| Error::Io {
            context: "syncing the slot".into(),
            source,
        })?;
        (self.on_checkpoint)((self.first + prefix) as u64)
    }

    fn mark_done(&self, offset: u64) {
        let Ok(k) = self.starts.binary_search(&offset) else {
            return;
        };
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        progress.done[k] = true;
        while progress.prefix < progress.done.len() && progress.done[progress.prefix] {
            progress.prefix += 1;
        }
    }

    fn wrote(&self, offset: u64, len: usize) -> io::Result<()> {
        self.mark_done(offset);
        let unsynced = self.unsynced.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if unsynced >= self.every {
            self.unsynced.fetch_sub(unsynced, Ordering::Relaxed);
            self.checkpoint().map_err(io::Error::other)?;
        }
        Ok(())
    }
}

impl ChunkSink for CheckpointSink<'_> {
    fn write_chunk(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.io.write_at(data, offset)?;
        self.wrote(offset, data.len())
    }

    fn write_zeros(&self, offset: u64, len: usize) -> io::Result<()> {
        write_zeros_by_block(offset, len, |zeros, at| self.io.write_at(zeros, at))?;
        self.wrote(offset, len)
    }

    fn kept(&self, offset: u64) {
        self.mark_done(offset);
    }
}
