//! The client side of a pull: an index or archive read from the remote side, and a chunk store
//! whose chunks are requested on demand.
//!
//! One thread per connection reads every frame and files it in shared state: index bytes,
//! archive pieces (through a bounded channel, so a slow reader holds the sender back), and
//! CHUNK/MISSING answers for the threads waiting on them. Any number of threads may request
//! chunks at once; each REQUEST is high priority.
//!
//! A casync server answers each chunk id at most once per connection (its queue remembers every
//! id it was asked for, `ca_remote_enqueue_request`), and casync's client keeps what it got in
//! `/var/tmp/*.carem`. So every chunk received is appended to an unlinked temporary file
//! (`O_TMPFILE` in `$TMPDIR`, gone when the connection is), and a chunk needed again — a repeat
//! in a streamed archive, a FUSE read — is read back from there instead of being requested
//! again. When the connection fails (ABORT, closed, protocol error), every waiter gets the
//! error. The chunks are verified by the caller ([`crate::store::StoreChain`]), as from any
//! store.

use super::frame::{self, Frame, PULL_ARCHIVE, PULL_CHUNKS, PULL_INDEX};
use super::transport::{self, Paths, Transport, Verb};
use crate::error::{Error, Result};
use crate::store::ChunkStore;
use otasync_core::ChunkId;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Archive pieces the reader thread may hold before it waits for the consumer.
const ARCHIVE_QUEUE: usize = 64;

/// What the server said about a requested chunk.
#[derive(Clone, Copy)]
enum Answer {
    /// Where the stored bytes are in the received-chunk file.
    Chunk {
        compressed: bool,
        at: u64,
        len: u64,
    },
    Missing,
}

/// What the reader thread has gathered.
#[derive(Default)]
struct State {
    index: Vec<u8>,
    index_done: bool,
    archive_done: bool,
    /// Chunks requested on this connection.
    requested: HashSet<ChunkId>,
    /// Their answers.
    answers: HashMap<ChunkId, Answer>,
    /// End of the received-chunk file.
    file_end: u64,
    /// Why the connection is over, once it is.
    ended: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// The received chunks, back to back.
    received: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection to a remote `casync pull` (or `otasync pull`).
pub(crate) struct PullConnection {
    name: String,
    local_flags: u64,
    shared: Arc<Shared>,
    output: Mutex<Option<BufWriter<ChildStdin>>>,
    child: Mutex<Option<Child>>,
    archive: Mutex<Option<Receiver<Vec<u8>>>>,
    requests: AtomicU64,
}

impl PullConnection {
    /// Connects to `host` for `paths`: the index, the archive and the store are pulled when
    /// given.
    pub(crate) fn open(
        name: String,
        host: &str,
        paths: &Paths,
        rate_limit_bps: Option<u64>,
    ) -> Result<Arc<Self>> {
        let flags = paths.index.as_ref().map_or(0, |_| PULL_INDEX)
            | paths.archive.as_ref().map_or(0, |_| PULL_ARCHIVE)
            | paths.wstore.as_ref().map_or(0, |_| PULL_CHUNKS);
        let (transport, _) =
            Transport::connect(name.clone(), host, Verb::Pull, paths, rate_limit_bps, flags)?;
        let (child, input, output) = transport.split();
        let received = temporary_file()
            .map_err(|e| transport::connection_error(&name, format!("a temporary file: {e}")))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            received,
        });
        let (sender, receiver) = sync_channel(ARCHIVE_QUEUE);
        let reader = Reader {
            shared: Arc::clone(&shared),
            flags,
            archive: Some(sender),
        };
        std::thread::Builder::new()
            .name("remote-reader".into())
            .spawn(move || reader.run(input))
            .map_err(|e| transport::connection_error(&name, format!("starting a thread: {e}")))?;
        Ok(Arc::new(Self {
            name,
            local_flags: flags,
            shared,
            output: Mutex::new(Some(output)),
            child: Mutex::new(Some(child)),
            archive: Mutex::new(Some(receiver)),
            requests: AtomicU64::new(0),
        }))
    }

    /// Whether chunks can be requested here.
    pub(crate) fn serves_chunks(&self) -> bool {
        self.local_flags & PULL_CHUNKS != 0
    }

    /// Waits for the whole index: fails if the connection ends before INDEX_EOF or the index
    /// grows beyond `limit` bytes.
    pub(crate) fn index(&self, limit: u64) -> Result<Vec<u8>> {
        let mut state = self.shared.lock();
        loop {
            if state.index.len() as u64 > limit {
                return Err(self.error(format!(
                    "the index is larger than the {limit}-byte limit for indexes"
                )));
            }
            if state.index_done {
                return Ok(std::mem::take(&mut state.index));
            }
            if let Some(reason) = &state.ended {
                return Err(self.error(format!("{reason} before the index was complete")));
            }
            state = self.shared.wait(state);
        }
    }

    /// The archive as a byte stream; an error if the connection ends before ARCHIVE_EOF.
    pub(crate) fn archive(self: &Arc<Self>) -> Result<ArchiveReader> {
        let receiver = self
            .archive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| self.error("the archive was already read".into()))?;
        Ok(ArchiveReader {
            connection: Arc::clone(self),
            receiver,
            piece: Vec::new(),
            at: 0,
        })
    }

    fn error(&self, reason: String) -> Error {
        transport::connection_error(&self.name, reason)
    }

    fn io_error(&self, reason: &str) -> io::Error {
        io::Error::other(format!("remote {}: {reason}", self.name))
    }

    fn send(&self, frame: &Frame) -> io::Result<()> {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(out) = output.as_mut() else {
            return Err(self.io_error("the connection is closed"));
        };
        frame.write_to(out).and_then(|()| out.flush())
    }

    /// Chunk `id` into `buf` (its stored form; whether compressed), or `None` when the server
    /// lacks it: requested unless it was before, then waited for.
    fn request(&self, id: &ChunkId, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        let first = {
            let mut state = self.shared.lock();
            if let Some(reason) = state
                .ended
                .as_ref()
                .filter(|_| !state.answers.contains_key(id))
            {
                return Err(self.io_error(reason));
            }
            state.requested.insert(*id)
        };
        if first {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = self.send(&Frame::Request {
                high_priority: true,
                ids: vec![*id],
            });
            if let Err(e) = sent {
                return Err(self.io_error(&format!("sending a request: {e}")));
            }
        }
        let mut state = self.shared.lock();
        let answer = loop {
            if let Some(answer) = state.answers.get(id) {
                break *answer;
            }
            if let Some(reason) = &state.ended {
                return Err(self.io_error(reason));
            }
            state = self.shared.wait(state);
        };
        drop(state);
        match answer {
            Answer::Missing => Ok(None),
            Answer::Chunk {
                compressed,
                at,
                len,
            } => {
                buf.clear();
                buf.resize(len as usize, 0);
                self.shared.received.read_exact_at(buf, at)?;
                Ok(Some(compressed))
            }
        }
    }
}

/// An unlinked temporary file in `$TMPDIR`.
fn temporary_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
        .mode(0o600)
        .open(&dir);
    match tmpfile {
        Ok(file) => Ok(file),
        // A file system without O_TMPFILE: create and unlink at once.
        Err(_) => {
            let path = dir.join(format!(
                ".otasync-remote-{:016x}",
                crate::fsutil::random_u64()
            ));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
    }
}

impl Drop for PullConnection {
    fn drop(&mut self) {
        // GOODBYE is optional on a pull; sending it lets the server end at once and cleanly.
        let _ = self.send(&Frame::Goodbye);
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(child) = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            && !transport::reap(child)
        {
            log::debug!("remote {}: ssh did not exit cleanly", self.name);
        }
    }
}

/// The connection's reading thread.
struct Reader {
    shared: Arc<Shared>,
    flags: u64,
    archive: Option<SyncSender<Vec<u8>>>,
}

impl Reader {
    fn run(mut self, mut input: BufReader<ChildStdout>) {
        let ended = loop {
            match frame::read_frame(&mut input) {
                Ok(Some(frame)) => {
                    if let Err(reason) = self.file(frame) {
                        break reason;
                    }
                }
                Ok(None) => break "the connection closed".to_owned(),
                Err(e) => break format!("reading from the connection: {e}"),
            }
        };
        self.archive.take();
        let mut state = self.shared.lock();
        state.ended.get_or_insert(ended);
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Files one frame; `Err` ends the connection with that reason.
    fn file(&mut self, frame: Frame) -> std::result::Result<(), String> {
        let wants = |flag: u64| self.flags & flag != 0;
        let unexpected = || format!("protocol error: unexpected {} frame", frame.name());
        match &frame {
            Frame::Index(_) | Frame::IndexEof if !wants(PULL_INDEX) => return Err(unexpected()),
            Frame::Archive(_) | Frame::ArchiveEof if !wants(PULL_ARCHIVE) => {
                return Err(unexpected());
            }
            Frame::Chunk { .. } | Frame::Missing(_) if !wants(PULL_CHUNKS) => {
                return Err(unexpected());
            }
            Frame::Hello(_) | Frame::Request { .. } => return Err(unexpected()),
            _ => {}
        }
        match frame {
            Frame::Index(data) => {
                let mut state = self.shared.lock();
                if state.index_done {
                    return Err("protocol error: INDEX after INDEX_EOF".into());
                }
                state.index.extend_from_slice(&data);
            }
            Frame::IndexEof => self.shared.lock().index_done = true,
            Frame::Archive(data) => {
                if self.shared.lock().archive_done {
                    return Err("protocol error: ARCHIVE after ARCHIVE_EOF".into());
                }
                // A reader that went away no longer wants the rest.
                if let Some(sender) = &self.archive
                    && sender.send(data).is_err()
                {
                    self.archive = None;
                }
                return Ok(());
            }
            Frame::ArchiveEof => {
                self.shared.lock().archive_done = true;
                self.archive.take();
            }
            Frame::Chunk {
                compressed,
                id,
                data,
            } => {
                let mut state = self.shared.lock();
                // Answers to questions not asked, or asked and answered, are dropped.
                if state.requested.contains(&id) && !state.answers.contains_key(&id) {
                    let at = state.file_end;
                    self.shared
                        .received
                        .write_all_at(&data, at)
                        .map_err(|e| format!("keeping a received chunk: {e}"))?;
                    let len = data.len() as u64;
                    state.file_end += len;
                    state.answers.insert(
                        id,
                        Answer::Chunk {
                            compressed,
                            at,
                            len,
                        },
                    );
                }
            }
            Frame::Missing(id) => {
                let mut state = self.shared.lock();
                if state.requested.contains(&id) {
                    state.answers.entry(id).or_insert(Answer::Missing);
                }
            }
            Frame::Goodbye => return Err("the remote side said GOODBYE".into()),
            Frame::Abort { errno, reason } => {
                return Err(format!("the remote side aborted: {reason} (errno {errno})"));
            }
            Frame::Hello(_) | Frame::Request { .. } => return Err(unexpected()),
        }
        self.shared.changed.notify_all();
        Ok(())
    }
}

/// The archive of a pull, as a byte stream.
pub(crate) struct ArchiveReader {
    connection: Arc<PullConnection>,
    receiver: Receiver<Vec<u8>>,
    piece: Vec<u8>,
    at: usize,
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            match self.receiver.recv() {
                Ok(piece) => (self.piece, self.at) = (piece, 0),
                Err(_) => {
                    let state = self.connection.shared.lock();
                    if state.archive_done {
                        return Ok(0);
                    }
                    let reason = state.ended.clone().unwrap_or_default();
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "remote {}: {reason} before the archive was complete",
                            self.connection.name
                        ),
                    ));
                }
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A store on the other side of a pull connection.
pub(crate) struct RemoteStore {
    connection: Arc<PullConnection>,
    name: String,
}

impl RemoteStore {
    /// Chunks from `connection`, which must pull chunks; `name` is the store's locator.
    pub(crate) fn new(connection: Arc<PullConnection>, name: String) -> Self {
        Self { connection, name }
    }
}

impl ChunkStore for RemoteStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        let found = self.connection.request(id, buf)?;
        if found.is_some() && buf.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunk {id} is larger than {limit} bytes"),
            ));
        }
        Ok(found)
    }

    /// The protocol has no size query: the chunk is fetched (and kept for a later fetch).
    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>> {
        let mut buf = Vec::new();
        Ok(self
            .connection
            .request(id, &mut buf)?
            .map(|_| buf.len() as u64))
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn requests(&self) -> u64 {
        self.connection.requests.load(Ordering::Relaxed)
    }
}
