//! The ssh side of the verbs: `make HOST:PATH …` (push), and the hidden server verbs
//! `pull`/`push` a client runs here over ssh.
//!
//! `make HOST:/p/x.caidx|.caibx` builds the index and its chunks locally first, into a
//! temporary directory (casync does the same with its cache store), then pushes the index: the
//! remote side requests exactly the chunks its store lacks. The store (default:
//! `HOST:/p/default.castr`) must be on the same host as the index: casync's protocol only
//! uploads chunks an index names (casync itself silently uploads nothing to a store on another
//! host), and a casync server never finishes an index pushed without a store (it waits
//! forever), so both are refused up front. `make HOST:/p/x.catar` archives into a temporary
//! file and pushes it.

use crate::cli::{Options, What};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::random_u64;
use crate::remote::locator::{self, SshLocator};
use crate::remote::push::{push_archive, push_index};
use crate::remote::server::{ServerArgs, serve_pull, serve_push};
use crate::remote::transport::Paths;
use crate::store::LocalStore;
use std::fs;
use std::path::{Path, PathBuf};

/// A directory removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("otasync-push-{:016x}", random_u64()));
        fs::create_dir(&path).at("creating", &path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::Usage(format!("{}: not UTF-8", path.display())))
}

/// `make HOST:PATH [INPUT]`.
pub(crate) fn make(options: &Options, output: &str, input: Option<&str>) -> Result<()> {
    let Some(at) = locator::parse(output) else {
        return super::make::run(options, output, input);
    };
    let what = options.what.or_else(|| What::from_name(at.path));
    let suffix = match what {
        Some(What::Archive) => "catar",
        Some(What::ArchiveIndex) => "caidx",
        Some(What::BlobIndex) => "caibx",
        _ => {
            return Err(Error::Usage(format!(
                "{output}: the output of make must end in .caibx, .catar or .caidx (or give --what=)"
            )));
        }
    };
    let temp = TempDir::create()?;
    let local = temp.0.join(format!("out.{suffix}"));
    let local_str = path_str(&local)?.to_owned();
    let rate = options.rate_limit_bps;
    if what == Some(What::Archive) {
        super::make::run(options, &local_str, input)?;
        let mut file = fs::File::open(&local).at("opening", &local)?;
        let paths = Paths {
            archive: Some(at.path.to_owned()),
            ..Paths::default()
        };
        return push_archive(output, at.host, &paths, &mut file, rate);
    }
    let store = options
        .store
        .first()
        .cloned()
        .unwrap_or_else(|| super::default_store(output));
    let Some(store_at) = locator::parse(&store) else {
        return Err(Error::Usage(format!(
            "{store}: an index pushed over ssh takes its chunks to a store on the same host \
             (--store=HOST:/path; a casync server never finishes an index pushed alone)"
        )));
    };
    let remote = Remote {
        output,
        at,
        store: &store,
        store_at,
    };
    push_with_chunks(options, &remote, &temp, &local, input)
}

/// Where a `make` pushes to.
struct Remote<'a> {
    /// The index locator.
    output: &'a str,
    /// It, parsed.
    at: SshLocator<'a>,
    /// The store locator.
    store: &'a str,
    /// It, parsed.
    store_at: SshLocator<'a>,
}

/// Makes the index (at `local`) and its chunks in `temp`, then pushes both to the remote store.
fn push_with_chunks(
    options: &Options,
    remote: &Remote<'_>,
    temp: &TempDir,
    local: &Path,
    input: Option<&str>,
) -> Result<()> {
    let Remote {
        output,
        at,
        store,
        store_at: remote_store,
    } = *remote;
    if remote_store.host != at.host {
        return Err(Error::Usage(format!(
            "{store}: casync's protocol uploads chunks only with an index on the same host; \
             use a store on {} or a local one",
            at.host
        )));
    }
    let local_store = temp.0.join("store");
    let mut local_options = options.clone();
    local_options.store = vec![path_str(&local_store)?.to_owned()];
    super::make::run(&local_options, path_str(local)?, input)?;
    let index = fs::read(local).at("reading", local)?;
    let paths = Paths {
        index: Some(at.path.to_owned()),
        wstore: Some(remote_store.path.to_owned()),
        ..Paths::default()
    };
    let chunks = LocalStore::new(&local_store);
    let report = push_index(
        output,
        at.host,
        &paths,
        &index,
        &chunks,
        options.rate_limit_bps,
    )?;
    log::info!(
        "pushed {output}: the remote store lacked {} chunks, {} bytes sent",
        report.requested,
        report.sent_bytes
    );
    Ok(())
}

/// The hidden server verbs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ServerVerb {
    /// Serve files and chunks to a pulling client.
    Pull,
    /// Receive them from a pushing client.
    Push,
}

/// `otasync pull|push BASE ARCHIVE INDEX WSTORE [RSTORE…]`.
pub(crate) fn serve(verb: ServerVerb, args: &[String]) -> Result<()> {
    let args = ServerArgs::parse(args)?;
    match verb {
        ServerVerb::Pull => serve_pull(&args),
        ServerVerb::Push => serve_push(&args),
    }
}
