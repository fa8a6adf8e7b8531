//! `otasync gc --store=DIR [--dry-run] [--grace=SECONDS] INDEX...`: remove the chunks of a local
//! store that no given index references. Chunks (and temporary files) modified within the grace
//! period are kept, so a `make` running at the same time cannot lose a chunk it just wrote.

use super::read_index;
use crate::cli::Options;
use crate::error::{Error, IoContext, Result};
use otasync_core::ChunkId;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What a collection found and did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Collected {
    kept: u64,
    removed: u64,
    removed_bytes: u64,
    too_new: u64,
}

pub(crate) fn run(
    options: &Options,
    indexes: &[String],
    dry_run: bool,
    grace: Duration,
) -> Result<()> {
    let Some(store) = options.store.first() else {
        return Err(Error::Usage("gc needs --store=DIR".into()));
    };
    if crate::store::http::is_url(store) {
        return Err(Error::Usage(format!(
            "{store}: gc works on local stores only"
        )));
    }
    let mut referenced = HashSet::new();
    for index in indexes {
        referenced.extend(read_index(options, index)?.chunks.iter().map(|c| c.id));
    }
    let collected = collect(Path::new(store), &referenced, dry_run, grace)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{} chunks referenced and kept, {verb} {} ({} bytes), {} unreferenced kept as newer than the grace period",
        collected.kept, collected.removed, collected.removed_bytes, collected.too_new
    );
    Ok(())
}

/// Walks `<store>/<4 hex>/` and removes what is not referenced and older than `grace`.
fn collect(
    store: &Path,
    referenced: &HashSet<ChunkId>,
    dry_run: bool,
    grace: Duration,
) -> Result<Collected> {
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut collected = Collected::default();
    for shard in fs::read_dir(store).at("reading store", store)? {
        let shard = shard.at("reading store", store)?.path();
        let is_shard = shard
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_shard || !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard).at("reading store", &shard)? {
            let entry = entry.at("reading store", &shard)?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<id>.cacnk`, a raw `<id>`, or a leftover `<id>.<random>.tmp`.
            let id = ChunkId::from_hex(name.get(..64).unwrap_or_default());
            if id.is_some_and(|id| referenced.contains(&id)) && !name.ends_with(".tmp") {
                collected.kept += 1;
                continue;
            }
            let meta = entry.metadata().at("reading", &path)?;
            if id.is_none() || meta.modified().is_ok_and(|m| m > cutoff) {
                collected.too_new += u64::from(id.is_some());
                continue;
            }
            collected.removed += 1;
            collected.removed_bytes += meta.len();
            if dry_run {
                println!("would remove {}", path.display());
            } else {
                fs::remove_file(&path).at("removing", &path)?;
            }
        }
        if !dry_run {
            // Only succeeds when the shard became empty.
            let _ = fs::remove_dir(&shard);
        }
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::DigestAlgorithm;

    #[test]
    fn keeps_referenced_and_recent_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let ids: Vec<ChunkId> = (0..4u8)
            .map(|i| DigestAlgorithm::Sha256.digest(&[i]))
            .collect();
        for id in &ids {
            let hex = id.to_string();
            fs::create_dir_all(store.join(&hex[..4])).unwrap();
            fs::write(store.join(&hex[..4]).join(format!("{hex}.cacnk")), b"chunk").unwrap();
        }
        fs::write(store.join("README"), b"not a shard").unwrap();
        let referenced: HashSet<ChunkId> = ids[..2].iter().copied().collect();
        // Everything is new: nothing is removed within the grace period.
        let c = collect(store, &referenced, false, Duration::from_secs(3600)).unwrap();
        assert_eq!((c.kept, c.removed, c.too_new), (2, 0, 2));
        let dry = collect(store, &referenced, true, Duration::ZERO).unwrap();
        assert_eq!((dry.removed, dry.removed_bytes), (2, 10));
        let c = collect(store, &referenced, false, Duration::ZERO).unwrap();
        assert_eq!((c.kept, c.removed), (2, 2));
        for (i, id) in ids.iter().enumerate() {
            let hex = id.to_string();
            assert_eq!(
                store.join(&hex[..4]).join(format!("{hex}.cacnk")).exists(),
                i < 2
            );
        }
        assert!(store.join("README").exists());
    }
}
