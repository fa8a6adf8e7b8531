//! `otasync diff ARCHIVE|INDEX DIR` and `otasync verify ARCHIVE|INDEX DIR` (casync lists both
//! verbs and implements neither): what differs between an archive and a directory.
//!
//! The directory is serialized with the archive's own feature flags (read from its first
//! ENTRY), exactly as `make` would archive it, and both streams are decoded side by side into
//! per-entry snapshots on their own threads; the snapshots are merged in archive order. So an
//! entry differs exactly when `make` of the directory would archive it differently: metadata
//! the archive does not record (say, mtimes in an archive made `--without=mtime`) is not
//! compared, and `.caexclude`d or nodump files are left out on both sides. Memory stays bounded
//! by the differences found, whatever the size of the trees. Nothing is printed before both
//! streams have been read completely, so a failure (a missing chunk, a dropped connection)
//! never passes for a partial answer.

use super::archive::{ArchiveStream, join, open};
use crate::cli::{Options, What};
use crate::error::{Error, Result};
use crate::tree::compare::{FieldChange, Snapshot, archive_order, compare, snapshots};
use crate::tree::{self, Flow};
use serde_json::json;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Snapshots buffered between a decoding thread and the merge.
const QUEUE: usize = 256;

/// How an entry differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// In the directory, not in the archive.
    Added,
    /// In the archive, not in the directory.
    Removed,
    /// In both, with different content or metadata.
    Changed,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// One entry that differs.
#[derive(Clone, Debug)]
pub(crate) struct Difference {
    /// The entry's path, escaped as casync's `list` prints it.
    pub(crate) path: String,
    /// How.
    pub(crate) change: Change,
    /// For [`Change::Changed`], the fields.
    pub(crate) fields: Vec<FieldChange>,
}

/// Decodes a stream into snapshots on a thread; the first one carries the archive flags.
fn decode(
    stream: ArchiveStream,
    name: PathBuf,
    flags: Option<std::sync::mpsc::SyncSender<u64>>,
) -> (Receiver<Snapshot>, JoinHandle<Result<()>>) {
    let (sender, receiver) = sync_channel(QUEUE);
    let handle = std::thread::spawn(move || {
        let mut flags = flags;
        let mut stopped = false;
        let result = snapshots(stream.reader, &name, |snapshot, archive_flags| {
            if let Some(flags) = flags.take() {
                let _ = flags.send(archive_flags);
            }
            if sender.send(snapshot).is_err() {
                stopped = true;
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        });
        // A failing producer (a missing chunk) is the cause of a truncated stream: it wins.
        let produced = join(stream.producer, stopped || result.is_err());
        produced.and(result.map_err(Error::from))
    });
    (receiver, handle)
}

fn finish(handle: JoinHandle<Result<()>>, what: &str) -> Result<()> {
    handle.join().unwrap_or_else(|_| {
        Err(Error::Io {
            context: what.into(),
            source: std::io::Error::other("panicked"),
        })
    })
}

/// Every difference between the archive at `archive` and the directory `directory`, in
/// archive order.
pub(crate) fn differences(
    options: &Options,
    archive: &str,
    directory: &Path,
) -> Result<Vec<Difference>> {
    match options.what.or_else(|| What::from_name(archive)) {
        Some(What::Archive | What::ArchiveIndex) => {}
        _ => {
            return Err(Error::Usage(format!(
                "{archive}: expected a .catar or .caidx (or give --what=)"
            )));
        }
    }
    if !directory.is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a directory",
            directory.display()
        )));
    }
    let (flags_sender, flags_receiver) = sync_channel(1);
    let (from_archive, archive_thread) = decode(
        open(options, archive)?,
        PathBuf::from(archive),
        Some(flags_sender),
    );
    // The directory is serialized once the archive's flags are known.
    let dir = directory.to_owned();
    let ids = options.id_shift()?.map(tree::IdShift::keeping_ids_below);
    let (dir_sender, from_dir) = sync_channel(QUEUE);
    let dir_thread = std::thread::spawn(move || -> Result<()> {
        let Ok(flags) = flags_receiver.recv() else {
            return Ok(());
        };
        let root = dir.clone();
        let stream = ArchiveStream::spawn(move |w| {
            tree::encode_tree(&root, flags, ids, w)
                .map(drop)
                .map_err(Error::from)
        });
        let (receiver, handle) = decode(stream, dir, None);
        for snapshot in receiver {
            if dir_sender.send(snapshot).is_err() {
                break;
            }
        }
        finish(handle, "directory")
    });
    let found = merge(&from_archive, &from_dir);
    drop((from_archive, from_dir));
    finish(archive_thread, "archive")?;
    finish(dir_thread, "directory")?;
    Ok(found)
}

/// Merges the two snapshot sequences (both in archive order).
fn merge(archive: &Receiver<Snapshot>, directory: &Receiver<Snapshot>) -> Vec<Difference> {
    let mut found = Vec::new();
    let (mut a, mut d) = (archive.recv().ok(), directory.recv().ok());
    loop {
        let order = match (&a, &d) {
            (None, None) => return found,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => archive_order(&x.path, &y.path),
        };
        match order {
            Ordering::Less => {
                if let Some(x) = a.take() {
                    found.push(Difference {
                        path: x.shown_path(),
                        change: Change::Removed,
                        fields: Vec::new(),
                    });
                }
                a = archive.recv().ok();
            }
            Ordering::Greater => {
                if let Some(y) = d.take() {
                    found.push(Difference {
                        path: y.shown_path(),
                        change: Change::Added,
                        fields: Vec::new(),
                    });
                }
                d = directory.recv().ok();
            }
            Ordering::Equal => {
                if let (Some(x), Some(y)) = (a.take(), d.take()) {
                    let fields = compare(&x, &y);
                    if !fields.is_empty() {
                        found.push(Difference {
                            path: x.shown_path(),
                            change: Change::Changed,
                            fields,
                        });
                    }
                }
                (a, d) = (archive.recv().ok(), directory.recv().ok());
            }
        }
    }
}

/// The differences as text, one line per entry.
fn text(found: &[Difference]) -> String {
    let mut out = String::new();
    for difference in found {
        out += &format!("{:<8}{}", difference.change.word(), difference.path);
        for (i, f) in difference.fields.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            out += &format!("{sep}{} {} -> {}", f.field, f.archive, f.directory);
        }
        out.push('\n');
    }
    out
}

fn counts(found: &[Difference]) -> [usize; 3] {
    let count = |c: Change| found.iter().filter(|d| d.change == c).count();
    [
        count(Change::Added),
        count(Change::Removed),
        count(Change::Changed),
    ]
}

fn json(archive: &str, directory: &Path, found: &[Difference]) -> serde_json::Value {
    let [added, removed, changed] = counts(found);
    json!({
        "archive": archive,
        "directory": directory.display().to_string(),
        "matches": found.is_empty(),
        "added": added,
        "removed": removed,
        "changed": changed,
        "differences": found.iter().map(|d| {
            let mut entry = json!({ "path": d.path, "change": d.change.word() });
            if d.change == Change::Changed {
                entry["fields"] = d.fields.iter().map(|f| json!({
                    "field": f.field,
                    "archive": f.archive,
                    "directory": f.directory,
                })).collect();
            }
            entry
        }).collect::<Vec<_>>(),
    })
}

/// `otasync diff ARCHIVE|INDEX DIR`: prints the differences (nothing when there are none);
/// exit code 0 either way.
pub(crate) fn run(options: &Options, archive: &str, directory: &str) -> Result<()> {
    let dir = Path::new(directory);
    let found = differences(options, archive, dir)?;
    match options.json {
        true => println!("{}", json(archive, dir, &found)),
        false => print!("{}", text(&found)),
    }
    Ok(())
}

/// `otasync verify ARCHIVE|INDEX DIR`: the differences, then exit code 0 when there are none
/// and 5 otherwise.
pub(crate) fn verify(options: &Options, archive: &str, directory: &str) -> Result<()> {
    let dir = Path::new(directory);
    let found = differences(options, archive, dir)?;
    let [added, removed, changed] = counts(&found);
    match options.json {
        true => println!("{}", json(archive, dir, &found)),
        false => {
            print!("{}", text(&found));
            if found.is_empty() {
                println!("{directory} matches {archive}");
            }
        }
    }
    match found.is_empty() {
        true => Ok(()),
        false => Err(Error::Differs(format!(
            "{directory} differs from {archive}: {added} added, {removed} removed, {changed} changed"
        ))),
    }
}
