//! The client side of a push: an index (whose chunks the remote side requests as it lacks
//! them) or an archive sent to a remote `casync push` (or `otasync push`).
//!
//! A thread reads the remote side's frames into a channel while this one writes, so neither
//! side can block the other: the server may send REQUESTs while we are still sending the
//! index, and we answer them as they come. The upload counts as done only when the server
//! says GOODBYE, which it sends after it has stored (and, for otasync and casync alike,
//! verified) everything.

use super::frame::{
    self, FILE_PIECE, Frame, MAX_CHUNK_DATA, PUSH_ARCHIVE, PUSH_CHUNKS, PUSH_INDEX,
    PUSH_INDEX_CHUNKS,
};
use super::transport::{self, Paths, Transport, Verb};
use crate::error::{Error, Result};
use crate::store::{ChunkStore, LocalStore};
use otasync_core::ChunkId;
use std::collections::HashSet;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::mpsc::{Receiver, TryRecvError, channel};

/// What a push did.
#[derive(Debug, Default)]
pub(crate) struct PushReport {
    /// Chunks the remote side asked for (those its stores lacked).
    pub(crate) requested: u64,
    /// Stored bytes of the chunks sent.
    pub(crate) sent_bytes: u64,
}

/// Frames from the remote side, read on their own thread.
type Inbox = Receiver<io::Result<Option<Frame>>>;

fn spawn_reader(mut input: BufReader<ChildStdout>) -> io::Result<Inbox> {
    let (sender, receiver) = channel();
    std::thread::Builder::new()
        .name("remote-reader".into())
        .spawn(move || {
            loop {
                let frame = frame::read_frame(&mut input);
                let last = !matches!(frame, Ok(Some(_)));
                if sender.send(frame).is_err() || last {
                    return;
                }
            }
        })?;
    Ok(receiver)
}

/// A push in progress.
struct Push {
    name: String,
    child: Child,
    output: BufWriter<ChildStdin>,
    inbox: Inbox,
}

impl Push {
    fn connect(
        name: &str,
        host: &str,
        paths: &Paths,
        rate: Option<u64>,
        flags: u64,
    ) -> Result<Self> {
        let (transport, _) =
            Transport::connect(name.to_owned(), host, Verb::Push, paths, rate, flags)?;
        let (child, input, output) = transport.split();
        let inbox = spawn_reader(input)
            .map_err(|e| transport::connection_error(name, format!("starting a thread: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            output,
            inbox,
        })
    }

    fn error(&self, reason: String) -> Error {
        transport::connection_error(&self.name, reason)
    }

    fn send(&mut self, frame: &Frame) -> Result<()> {
        frame
            .write_to(&mut self.output)
            .map_err(|e| self.error(format!("sending {}: {e}", frame.name())))
    }

    fn flush(&mut self) -> Result<()> {
        self.output
            .flush()
            .map_err(|e| self.error(format!("sending: {e}")))
    }

    /// Sends `data` as file frames of `kind`, then the end frame.
    fn send_file(&mut self, data: &mut dyn Read, index: bool) -> Result<()> {
        let mut piece = vec![0u8; FILE_PIECE];
        loop {
            let n = match data.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(format!("reading what is pushed: {e}"))),
            };
            let frame = match index {
                true => Frame::Index(piece[..n].to_vec()),
                false => Frame::Archive(piece[..n].to_vec()),
            };
            self.send(&frame)?;
            self.check_abort()?;
        }
        self.send(match index {
            true => &Frame::IndexEof,
            false => &Frame::ArchiveEof,
        })?;
        self.flush()
    }

    /// Fails early if the remote side has already given up.
    fn check_abort(&self) -> Result<()> {
        match self.inbox.try_recv() {
            Ok(Ok(Some(Frame::Abort { errno, reason }))) => {
                Err(self.error(format!("the remote side aborted: {reason} (errno {errno})")))
            }
            Ok(Ok(Some(other))) => {
                Err(self.error(format!("protocol error: unexpected {} frame", other.name())))
            }
            Ok(Ok(None)) => Err(self.error("the connection closed during the upload".into())),
            Ok(Err(e)) => Err(self.error(format!("reading from the connection: {e}"))),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Ok(()),
        }
    }

    /// Answers REQUESTs from `store` until the remote side says GOODBYE.
    fn serve_until_goodbye(
        &mut self,
        store: Option<&LocalStore>,
        index_ids: &HashSet<ChunkId>,
    ) -> Result<PushReport> {
        let mut report = PushReport::default();
        let mut buf = Vec::new();
        loop {
            let frame = match self.inbox.recv() {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) | Err(_) => {
                    return Err(self.error(
                        "the connection closed before the remote side confirmed the upload \
                         (no GOODBYE); see the messages above"
                            .into(),
                    ));
                }
                Ok(Err(e)) => return Err(self.error(format!("reading from the connection: {e}"))),
            };
            match frame {
                Frame::Request { ids, .. } => {
                    let Some(store) = store else {
                        return Err(self.error("protocol error: REQUEST on an archive push".into()));
                    };
                    for id in ids {
                        // Only chunks of the pushed index are ever served.
                        let found = match index_ids.contains(&id) {
                            true => store
                                .fetch(&id, MAX_CHUNK_DATA as u64, &mut buf)
                                .map_err(|e| self.error(format!("reading chunk {id}: {e}")))?,
                            false => None,
                        };
                        report.requested += 1;
                        match found {
                            Some(compressed) => {
                                report.sent_bytes += buf.len() as u64;
                                self.send(&Frame::Chunk {
                                    compressed,
                                    id,
                                    data: std::mem::take(&mut buf),
                                })?;
                            }
                            None => self.send(&Frame::Missing(id))?,
                        }
                    }
                    self.flush()?;
                }
                Frame::Goodbye => return Ok(report),
                Frame::Abort { errno, reason } => {
                    return Err(
                        self.error(format!("the remote side aborted: {reason} (errno {errno})"))
                    );
                }
                other => {
                    return Err(
                        self.error(format!("protocol error: unexpected {} frame", other.name()))
                    );
                }
            }
        }
    }

    fn finish(self) {
        let Self { child, output, .. } = self;
        drop(output);
        if !transport::reap(child) {
            log::debug!("remote {}: ssh did not exit cleanly", self.name);
        }
    }
}

/// Pushes `index` to `paths.index` on `host` with its chunks: the remote side requests those
/// its store (`paths.wstore`) lacks, and they are sent from `store` (casync's HELLO 0xe00).
pub(crate) fn push_index(
    name: &str,
    host: &str,
    paths: &Paths,
    index: &[u8],
    store: &LocalStore,
    rate: Option<u64>,
) -> Result<PushReport> {
    let flags = PUSH_INDEX | PUSH_CHUNKS | PUSH_INDEX_CHUNKS;
    let ids: HashSet<ChunkId> = otasync_core::Index::decode(index)
        .map(|i| i.chunks.iter().map(|c| c.id).collect())
        .map_err(|e| transport::connection_error(name, format!("the index to push: {e}")))?;
    let mut push = Push::connect(name, host, paths, rate, flags)?;
    push.send_file(&mut &index[..], true)?;
    let report = push.serve_until_goodbye(Some(store), &ids)?;
    push.finish();
    Ok(report)
}

/// Pushes the archive read from `archive` to `paths.archive` on `host`.
pub(crate) fn push_archive(
    name: &str,
    host: &str,
    paths: &Paths,
    archive: &mut dyn Read,
    rate: Option<u64>,
) -> Result<()> {
    let mut push = Push::connect(name, host, paths, rate, PUSH_ARCHIVE)?;
    push.send_file(archive, false)?;
    push.serve_until_goodbye(None, &HashSet::new())?;
    push.finish();
    Ok(())
}
