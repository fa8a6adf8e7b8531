//! The server side: `otasync pull|push BASE ARCHIVE INDEX WSTORE [RSTORE…]`, the hidden verbs a
//! casync (or otasync) client runs over ssh, speaking the protocol on stdin and stdout (casync
//! `verb_pull`, `verb_push`). Nothing else may be written to stdout; messages go to stderr,
//! which ssh passes to the client's user.
//!
//! pull: sends the index and/or archive, then answers REQUESTs from the stores in order
//! (high-priority ones first, a chunk queued twice sent once), until the client says GOODBYE
//! or closes the connection.
//!
//! push: receives the index and/or archive under temporary names; for an index pushed with
//! PUSH_INDEX_CHUNKS, requests every chunk no store has, verifies each one received against its
//! id (decompressed with the size the index gives it) and writes it to WSTORE. Only when all
//! are in, and the store is synced, is the index renamed into place and GOODBYE sent. Anything
//! wrong — a bad chunk, a missing one, a broken frame, the client gone — ends with an ABORT (if
//! the client is still there), a non-zero exit and no index installed.

use super::frame::{
    self, FILE_PIECE, Frame, MAX_CHUNK_DATA, PULL_ARCHIVE, PULL_INDEX, PUSH_ARCHIVE, PUSH_INDEX,
    PUSH_INDEX_CHUNKS, READABLE_ARCHIVE, READABLE_INDEX, READABLE_STORE, WRITABLE_ARCHIVE,
    WRITABLE_INDEX, WRITABLE_STORE,
};
use crate::compression::{Compressor, DEFAULT_LEVEL, Decompressor};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use crate::store::{ChunkStore, LocalStore};
use otasync_core::{ChunkId, DigestAlgorithm, Index};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Chunks requested from a pushing client and not received yet, at most.
const REQUEST_WINDOW: usize = 4096;
/// Chunk ids per REQUEST frame.
const REQUEST_BATCH: usize = 1024;
/// Largest index received (as `commands::MAX_INDEX_BYTES`).
const MAX_INDEX_BYTES: u64 = 1 << 30;
/// errno values sent in ABORT frames.
const ENOENT: u64 = 2;
const EIO: u64 = 5;
const EBADMSG: u64 = 74;
const EPROTO: u64 = 71;

/// The verb's arguments: `BASE ARCHIVE INDEX WSTORE [RSTORE…]`, `-` for unused slots.
#[derive(Debug, Default)]
pub(crate) struct ServerArgs {
    /// The archive path.
    pub(crate) archive: Option<String>,
    /// The index path.
    pub(crate) index: Option<String>,
    /// The store written to (push) or read first (pull).
    pub(crate) wstore: Option<String>,
    /// Further stores read from.
    pub(crate) rstores: Vec<String>,
}

impl ServerArgs {
    /// Parses the positional arguments as casync does; BASE is not supported (nor by casync).
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let slot = |i: usize| args.get(i).filter(|a| !a.is_empty() && *a != "-").cloned();
        if args.len() < 4 {
            return Err(Error::Usage(
                "expected BASE ARCHIVE INDEX WSTORE [RSTORE...]".into(),
            ));
        }
        if slot(0).is_some() {
            return Err(Error::Usage(
                "a BASE directory is not supported (nor by casync)".into(),
            ));
        }
        let parsed = Self {
            archive: slot(1),
            index: slot(2),
            wstore: slot(3),
            rstores: args[4..].to_vec(),
        };
        if parsed.archive.is_none() && parsed.index.is_none() && !parsed.has_stores() {
            return Err(Error::Usage("nothing to do".into()));
        }
        Ok(parsed)
    }

    fn has_stores(&self) -> bool {
        self.wstore.is_some() || !self.rstores.is_empty()
    }

    fn stores(&self) -> Vec<LocalStore> {
        self.wstore
            .iter()
            .chain(&self.rstores)
            .map(LocalStore::new)
            .collect()
    }
}

/// stdin and stdout as files (stdout unbuffered by std, buffered here).
fn stdio() -> Result<(BufReader<File>, BufWriter<File>)> {
    let input = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context(|| "duplicating stdin".into())?;
    let output = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context(|| "duplicating stdout".into())?;
    Ok((
        BufReader::with_capacity(1 << 20, File::from(input)),
        BufWriter::with_capacity(1 << 20, File::from(output)),
    ))
}

fn protocol(reason: impl Into<String>) -> Error {
    Error::Io {
        context: "remote protocol".into(),
        source: io::Error::new(io::ErrorKind::InvalidData, reason.into()),
    }
}

/// Exchanges HELLOs: ours first, then the client's, which must be compatible.
fn handshake(input: &mut impl Read, output: &mut impl Write, local: u64) -> Result<u64> {
    Frame::Hello(local)
        .write_to(output)
        .and_then(|()| output.flush())
        .context(|| "sending HELLO".into())?;
    match frame::read_frame(input).context(|| "reading HELLO".into())? {
        Some(Frame::Hello(remote)) => {
            frame::check_hello(local, remote).map_err(protocol)?;
            Ok(remote)
        }
        Some(other) => Err(protocol(format!("expected HELLO, got {}", other.name()))),
        None => Err(protocol("the client closed the connection before HELLO")),
    }
}

/// Sends an ABORT for `error` (best effort: the client may be gone) and returns the error. The
/// errno is the system call's, when one failed, else `errno`.
fn abort(output: &mut impl Write, errno: u64, error: Error) -> Error {
    let os = match &error {
        Error::Io { source, .. } => source.raw_os_error().and_then(|e| u64::try_from(e).ok()),
        _ => None,
    };
    let frame = Frame::Abort {
        errno: os.unwrap_or(errno),
        reason: error.to_string(),
    };
    let _ = frame.write_to(output).and_then(|()| output.flush());
    error
}

/// `otasync pull …`: serve an index, an archive and chunks.
pub(crate) fn serve_pull(args: &ServerArgs) -> Result<()> {
    let (mut input, mut output) = stdio()?;
    let local = if args.has_stores() { READABLE_STORE } else { 0 }
        | args.index.as_ref().map_or(0, |_| READABLE_INDEX)
        | args.archive.as_ref().map_or(0, |_| READABLE_ARCHIVE);
    let remote = handshake(&mut input, &mut output, local)?;
    let queue = Arc::new(Queue::default());
    let reader = {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("remote-reader".into())
            .spawn(move || queue.fill(input))
            .context(|| "starting a thread".into())?
    };
    let result = serve_files(&mut output, args, remote)
        .and_then(|()| serve_chunks(&mut output, &args.stores(), &queue));
    match result {
        Ok(()) => {}
        // The client may end a pull whenever it likes (casync: "he's welcome to terminate any
        // time he likes"); a write to a closed connection is that.
        Err(e) if e.is_broken_pipe() => {}
        Err(e) => return Err(abort(&mut output, EIO, e)),
    }
    drop(output);
    let _ = reader.join();
    match queue.outcome() {
        Some(Err(reason)) => Err(protocol(reason)),
        _ => Ok(()),
    }
}

/// Sends the index and the archive the client wants.
fn serve_files(output: &mut BufWriter<File>, args: &ServerArgs, remote: u64) -> Result<()> {
    let files = [
        (PULL_INDEX, &args.index, true),
        (PULL_ARCHIVE, &args.archive, false),
    ];
    for (flag, path, index) in files {
        let Some(path) = path.as_deref().filter(|_| remote & flag != 0) else {
            continue;
        };
        let mut file = File::open(path).at("opening", Path::new(path))?;
        let mut piece = vec![0u8; FILE_PIECE];
        loop {
            let n = file.read(&mut piece).at("reading", Path::new(path))?;
            if n == 0 {
                break;
            }
            let data = piece[..n].to_vec();
            let frame = if index {
                Frame::Index(data)
            } else {
                Frame::Archive(data)
            };
            frame.write_to(output).context(|| "sending".into())?;
        }
        let end = if index {
            Frame::IndexEof
        } else {
            Frame::ArchiveEof
        };
        end.write_to(output)
            .and_then(|()| output.flush())
            .context(|| "sending".into())?;
    }
    Ok(())
}

/// Answers requests until the client is done.
fn serve_chunks(output: &mut BufWriter<File>, stores: &[LocalStore], queue: &Queue) -> Result<()> {
    let mut buf = Vec::new();
    while let Some(id) = queue.next() {
        let mut found = None;
        for store in stores {
            found = store
                .fetch(&id, MAX_CHUNK_DATA as u64, &mut buf)
                .context(|| format!("reading chunk {id} from {}", store.name()))?;
            if found.is_some() {
                break;
            }
        }
        let frame = match found {
            Some(compressed) => Frame::Chunk {
                compressed,
                id,
                data: std::mem::take(&mut buf),
            },
            None => Frame::Missing(id),
        };
        frame.write_to(output).context(|| "sending".into())?;
        if queue.is_idle() {
            output.flush().context(|| "sending".into())?;
        }
    }
    output.flush().context(|| "sending".into())
}

/// The requests of a pulling client, in casync's two-level priority order.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Default)]
struct QueueState {
    high: VecDeque<ChunkId>,
    low: VecDeque<ChunkId>,
    /// Every id asked for on this connection, and where it stands.
    seen: HashMap<ChunkId, Queued>,
    /// Set when the client is done: `Ok` for GOODBYE or a close, `Err` for a broken protocol.
    done: Option<std::result::Result<(), String>>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the client's frames into the queue (the reader thread).
    fn fill(&self, mut input: BufReader<File>) {
        let done = loop {
            match frame::read_frame(&mut input) {
                Ok(Some(Frame::Request { high_priority, ids })) => {
                    let mut state = self.lock();
                    for id in ids {
                        state.push(id, high_priority);
                    }
                    drop(state);
                    self.changed.notify_all();
                }
                Ok(Some(Frame::Goodbye) | None) => break Ok(()),
                Ok(Some(Frame::Abort { errno, reason })) => {
                    break Err(format!("the client aborted: {reason} (errno {errno})"));
                }
                Ok(Some(other)) => {
                    break Err(format!("unexpected {} frame from the client", other.name()));
                }
                Err(e) => break Err(format!("reading from the client: {e}")),
            }
        };
        self.lock().done = Some(done);
        self.changed.notify_all();
    }

    /// The next chunk to send; `None` once the client is done.
    fn next(&self) -> Option<ChunkId> {
        let mut state = self.lock();
        loop {
            if state.done.is_some() {
                return None;
            }
            if let Some(id) = state.pop() {
                return Some(id);
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn is_idle(&self) -> bool {
        let state = self.lock();
        state.high.is_empty() && state.low.is_empty()
    }

    fn outcome(&self) -> Option<std::result::Result<(), String>> {
        self.lock().done.clone()
    }
}

/// Where a requested chunk stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queued {
    Low,
    High,
    Sent,
}

impl QueueState {
    /// Queues `id` as casync does (`ca_remote_enqueue_request`): a chunk already queued is not
    /// queued again (a low-priority one is moved up), and one already sent is not sent again
    /// (a casync client keeps what it received).
    fn push(&mut self, id: ChunkId, high: bool) {
        match (self.seen.get(&id), high) {
            (None, false) => {
                self.seen.insert(id, Queued::Low);
                self.low.push_back(id);
            }
            (None | Some(Queued::Low), true) => {
                self.seen.insert(id, Queued::High);
                self.high.push_back(id);
            }
            _ => {}
        }
    }

    fn pop(&mut self) -> Option<ChunkId> {
        let mut take = |queue: &mut VecDeque<ChunkId>, wanted: Queued| {
            while let Some(id) = queue.pop_front() {
                // A low-priority entry whose chunk moved up is stale.
                if self.seen.get(&id) == Some(&wanted) {
                    self.seen.insert(id, Queued::Sent);
                    return Some(id);
                }
            }
            None
        };
        let high = take(&mut self.high, Queued::High);
        high.or_else(|| take(&mut self.low, Queued::Low))
    }
}

/// `otasync push …`: receive an index with its chunks, or an archive.
pub(crate) fn serve_push(args: &ServerArgs) -> Result<()> {
    let (mut input, mut output) = stdio()?;
    let local = args.wstore.as_ref().map_or(0, |_| WRITABLE_STORE)
        | args.index.as_ref().map_or(0, |_| WRITABLE_INDEX)
        | args.archive.as_ref().map_or(0, |_| WRITABLE_ARCHIVE);
    if local == 0 {
        return Err(Error::Usage(
            "push needs a store, an index or an archive".into(),
        ));
    }
    let remote = handshake(&mut input, &mut output, local)?;
    let mut receiver = Receiver::new(args, remote)?;
    match receiver.run(&mut input, &mut output) {
        Ok(()) => Ok(()),
        Err((errno, e)) => Err(abort(&mut output, errno, e)),
    }
}

/// What a push has delivered so far.
struct Receiver<'a> {
    args: &'a ServerArgs,
    remote: u64,
    stores: Vec<LocalStore>,
    index: Vec<u8>,
    index_done: bool,
    decoded: Option<Index>,
    archive: Option<TempFile>,
    archive_done: bool,
    /// Chunks to request, with their sizes.
    wanted: VecDeque<(ChunkId, usize)>,
    /// Chunks requested and not received yet, with their sizes.
    outstanding: HashMap<ChunkId, usize>,
    written: u64,
    decompressor: Decompressor,
    compressor: Compressor,
    scratch: Vec<u8>,
}

/// An error and the errno to ABORT with.
type Failure = (u64, Error);

impl<'a> Receiver<'a> {
    fn new(args: &'a ServerArgs, remote: u64) -> Result<Self> {
        let archive = match &args.archive {
            Some(path) if remote & PUSH_ARCHIVE != 0 => {
                Some(TempFile::create_for(Path::new(path), 0o666)?)
            }
            _ => None,
        };
        Ok(Self {
            args,
            remote,
            stores: args.stores(),
            index: Vec::new(),
            index_done: false,
            decoded: None,
            archive,
            archive_done: false,
            wanted: VecDeque::new(),
            outstanding: HashMap::new(),
            written: 0,
            decompressor: Decompressor::default(),
            compressor: Compressor::new(DEFAULT_LEVEL),
            scratch: Vec::new(),
        })
    }

    fn complete(&self) -> bool {
        let index = self.args.index.is_none()
            || self.remote & PUSH_INDEX == 0
            || (self.index_done && self.wanted.is_empty() && self.outstanding.is_empty());
        let archive = self.archive.is_none() || self.archive_done;
        index && archive
    }

    fn run(&mut self, input: &mut impl Read, output: &mut impl Write) -> Result<(), Failure> {
        while !self.complete() {
            let frame = match frame::read_frame(input) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    return Err((
                        EPROTO,
                        protocol("the client closed the connection before the upload was complete"),
                    ));
                }
                Err(e) => return Err((EPROTO, protocol(format!("reading from the client: {e}")))),
            };
            self.receive(frame)?;
            self.request_more(output)?;
        }
        self.install().map_err(|e| (EIO, e))?;
        Frame::Goodbye
            .write_to(output)
            .and_then(|()| output.flush())
            .context(|| "sending GOODBYE".into())
            .map_err(|e| (EIO, e))?;
        log::info!(
            "push: {} chunks received{}",
            self.written,
            self.args
                .index
                .as_deref()
                .map(|i| format!(", index {i} installed"))
                .unwrap_or_default()
        );
        Ok(())
    }

    fn receive(&mut self, frame: Frame) -> Result<(), Failure> {
        let unexpected = |f: &Frame| (EPROTO, protocol(format!("unexpected {} frame", f.name())));
        match frame {
            Frame::Index(data) if self.args.index.is_some() && !self.index_done => {
                if (self.index.len() + data.len()) as u64 > MAX_INDEX_BYTES {
                    return Err((
                        EBADMSG,
                        protocol(format!("the index exceeds {MAX_INDEX_BYTES} bytes")),
                    ));
                }
                self.index.extend_from_slice(&data);
            }
            Frame::IndexEof if self.args.index.is_some() && !self.index_done => {
                self.index_done = true;
                self.plan()?;
            }
            Frame::Archive(data) if !self.archive_done => {
                let Some(file) = &self.archive else {
                    return Err(unexpected(&Frame::Archive(data)));
                };
                file.file()
                    .write_all(&data)
                    .context(|| "writing the archive".into())
                    .map_err(|e| (EIO, e))?;
            }
            Frame::ArchiveEof if self.archive.is_some() && !self.archive_done => {
                self.archive_done = true;
            }
            Frame::Chunk {
                compressed,
                id,
                data,
            } => self.store_chunk(id, compressed, &data)?,
            Frame::Missing(id) if self.outstanding.contains_key(&id) => {
                return Err((
                    ENOENT,
                    Error::ChunkMissing {
                        id,
                        stores: vec!["the pushing client".into()],
                    },
                ));
            }
            Frame::Abort { errno, reason } => {
                return Err((
                    EPROTO,
                    protocol(format!("the client aborted: {reason} (errno {errno})")),
                ));
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// Decodes the received index and lists the chunks no store has.
    fn plan(&mut self) -> Result<(), Failure> {
        let path = self.args.index.as_deref().unwrap_or_default();
        let index =
            super::super::commands::decode_index(path, &self.index).map_err(|e| (EBADMSG, e))?;
        if self.remote & PUSH_INDEX_CHUNKS != 0 && self.args.wstore.is_some() {
            let mut seen = HashSet::new();
            for span in index.spans() {
                if !seen.insert(span.id) {
                    continue;
                }
                let mut present = false;
                for store in &self.stores {
                    present = store
                        .stored_size(&span.id)
                        .context(|| format!("looking up chunk {}", span.id))
                        .map_err(|e| (EIO, e))?
                        .is_some();
                    if present {
                        break;
                    }
                }
                if !present {
                    self.wanted.push_back((span.id, span.len() as usize));
                }
            }
        }
        log::info!(
            "push: {} chunks in the index, {} to fetch from the client",
            index.chunks.len(),
            self.wanted.len()
        );
        self.decoded = Some(index);
        Ok(())
    }

    fn request_more(&mut self, output: &mut impl Write) -> Result<(), Failure> {
        let mut sent = false;
        while !self.wanted.is_empty() && self.outstanding.len() < REQUEST_WINDOW {
            let room = (REQUEST_WINDOW - self.outstanding.len()).min(REQUEST_BATCH);
            let batch: Vec<(ChunkId, usize)> =
                self.wanted.drain(..room.min(self.wanted.len())).collect();
            self.outstanding.extend(batch.iter().copied());
            Frame::Request {
                high_priority: false,
                ids: batch.into_iter().map(|(id, _)| id).collect(),
            }
            .write_to(output)
            .context(|| "sending a request".into())
            .map_err(|e| (EIO, e))?;
            sent = true;
        }
        if sent {
            output
                .flush()
                .context(|| "sending a request".into())
                .map_err(|e| (EIO, e))?;
        }
        Ok(())
    }

    /// Verifies a received chunk against its id and writes it to the store.
    fn store_chunk(&mut self, id: ChunkId, compressed: bool, data: &[u8]) -> Result<(), Failure> {
        let Some(size) = self.outstanding.remove(&id) else {
            return Err((EPROTO, protocol(format!("chunk {id} was not requested"))));
        };
        let digest = self
            .decoded
            .as_ref()
            .map_or(DigestAlgorithm::default(), |i| i.header.digest());
        let corrupt = |reason: String| {
            (
                EBADMSG,
                Error::ChunkCorrupt {
                    id,
                    store: "the pushing client".into(),
                    reason,
                },
            )
        };
        let mut plain = std::mem::take(&mut self.scratch);
        self.decompressor
            .decode(data, compressed, size, &mut plain)
            .map_err(|e| corrupt(e.to_string()))?;
        if digest.digest(&plain) != id {
            return Err(corrupt("content does not match its id".into()));
        }
        let store = &self.stores[0];
        let result = match compressed {
            true => store.put_stored(&id, data, true),
            false => {
                let mut packed = Vec::new();
                self.compressor
                    .compress(&plain, &mut packed)
                    .map_err(|e| corrupt(e.to_string()))?;
                store.put_stored(&id, &packed, true)
            }
        };
        self.scratch = plain;
        result.map_err(|e| (EIO, e))?;
        self.written += 1;
        Ok(())
    }

    /// Puts the received files in place, the chunks first.
    fn install(&mut self) -> Result<()> {
        if self.written > 0 {
            self.stores[0].sync()?;
        }
        if let (Some(path), true) = (&self.args.index, self.index_done) {
            let target = Path::new(path);
            let temp = TempFile::create_for(target, 0o666)?;
            temp.file().write_all(&self.index).at("writing", target)?;
            temp.commit()?;
        }
        if let Some(archive) = self.archive.take() {
            archive.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_serves_high_priority_first_and_once() {
        let mut q = QueueState::default();
        let (a, b, c) = (ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32]));
        q.push(a, false);
        q.push(b, false);
        q.push(a, false);
        q.push(c, true);
        q.push(b, true);
        assert_eq!(q.pop(), Some(c));
        assert_eq!(q.pop(), Some(b));
        assert_eq!(q.pop(), Some(a));
        assert_eq!(q.pop(), None);
        // Sent once per connection, whatever the priority of a later request.
        q.push(a, true);
        q.push(c, false);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn arguments_follow_casync() {
        let args =
            |v: &[&str]| ServerArgs::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let a = args(&["-", "-", "/p/x.caidx", "/p/default.castr"]).unwrap();
        assert_eq!(a.index.as_deref(), Some("/p/x.caidx"));
        assert_eq!(a.wstore.as_deref(), Some("/p/default.castr"));
        assert!(a.archive.is_none());
        assert!(args(&["-", "-", "-", "-"]).is_err());
        assert!(args(&["/base", "-", "x", "-"]).is_err());
        assert!(args(&["-", "-"]).is_err());
        let r = args(&["-", "-", "-", "-", "/r1"]).unwrap();
        assert_eq!(r.rstores, ["/r1"]);
    }
}
