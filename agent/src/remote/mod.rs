//! casync's remote protocol over ssh (spec §8.7): `host:/path` locators for indexes, archives
//! and stores, as client and as server.
//!
//! - [`frame`]: the frame codec, size-checked before any allocation.
//! - [`locator`]: `[user@]host:path`, classified as casync does.
//! - [`transport`]: the ssh child (`$CASYNC_SSH_PATH`, `$CASYNC_REMOTE_PATH`) and the HELLO.
//! - [`pull`]: index and archive downloads, and a [`crate::store::ChunkStore`] fetching chunks
//!   on demand.
//! - [`push`]: index (with the chunks the remote store lacks) and archive uploads.
//! - [`server`]: the hidden `pull`/`push` verbs a client runs on this machine.
//!
//! As casync does, an index and the store beside it on the same host share one connection:
//! [`read_index`] opens it and keeps it for [`open_store`].

pub(crate) mod frame;
pub(crate) mod locator;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod server;
pub(crate) mod transport;

pub(crate) use locator::is_ssh;

use crate::error::{Error, Result};
use crate::store::ChunkStore;
use pull::{ArchiveReader, PullConnection, RemoteStore};
use std::sync::{Arc, Mutex, PoisonError};
use transport::Paths;

/// Connections opened with an index and kept for its store, by store locator.
static SHARED: Mutex<Vec<(String, Arc<PullConnection>)>> = Mutex::new(Vec::new());

fn parse(locator: &str) -> Result<locator::SshLocator<'_>> {
    locator::parse(locator)
        .ok_or_else(|| Error::Usage(format!("{locator}: not an ssh locator (host:path)")))
}

/// Reads the index at ssh locator `index`, at most `limit` bytes. When `store` (the store the
/// command will read chunks from) is on the same host, the connection pulls it too and is kept
/// for [`open_store`], as casync does.
pub(crate) fn read_index(
    index: &str,
    store: Option<&str>,
    rate_limit_bps: Option<u64>,
    limit: u64,
) -> Result<Vec<u8>> {
    let at = parse(index)?;
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let store = store
        .and_then(|s| locator::parse(s).map(|l| (s, l)))
        .filter(|(s, l)| l.host == at.host && !shared.iter().any(|(k, _)| k == s));
    let paths = Paths {
        index: Some(at.path.to_owned()),
        wstore: store.map(|(_, l)| l.path.to_owned()),
        ..Paths::default()
    };
    let connection = PullConnection::open(index.to_owned(), at.host, &paths, rate_limit_bps)?;
    let bytes = connection.index(limit)?;
    if let Some((locator, _)) = store {
        shared.push((locator.to_owned(), connection));
    }
    Ok(bytes)
}

/// The store at ssh locator `store`: over the connection [`read_index`] kept for it, or a new
/// one.
pub(crate) fn open_store(store: &str, rate_limit_bps: Option<u64>) -> Result<Box<dyn ChunkStore>> {
    let kept = {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        let at = shared.iter().position(|(k, _)| k == store);
        at.map(|i| shared.remove(i).1)
    };
    let connection = match kept {
        Some(connection) => connection,
        None => {
            let at = parse(store)?;
            let paths = Paths {
                wstore: Some(at.path.to_owned()),
                ..Paths::default()
            };
            PullConnection::open(store.to_owned(), at.host, &paths, rate_limit_bps)?
        }
    };
    debug_assert!(connection.serves_chunks());
    Ok(Box::new(RemoteStore::new(connection, store.to_owned())))
}

/// The archive at ssh locator `archive`, as a stream.
pub(crate) fn open_archive(archive: &str, rate_limit_bps: Option<u64>) -> Result<ArchiveReader> {
    let at = parse(archive)?;
    let paths = Paths {
        archive: Some(at.path.to_owned()),
        ..Paths::default()
    };
    PullConnection::open(archive.to_owned(), at.host, &paths, rate_limit_bps)?.archive()
}

/// The store casync uses beside an index at ssh locator `index`.
pub(crate) fn default_store(index: &str) -> Option<String> {
    locator::parse(index).map(|l| locator::default_store(&l))
}
