//! Seeds and in-place assembly: an update downloads only what no seed (and not the target
//! itself) already holds; the result is what casync produces; stale or damaged seeds cost a
//! fetch, never a wrong byte; an interrupted extraction resumes without fetching again what it
//! already wrote.

use crate::support::*;
use otasync_core::{ChunkId, Index};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Two versions of a root file system image, their stores, and a store holding only the
/// chunks v2 has and v1 lacks (so any failure to reuse v1 fails the extraction).
struct Update {
    dir: tempfile::TempDir,
}

impl Update {
    fn new() -> Option<Self> {
        if !have_mkfs_ext4() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let u = Self { dir };
        let (v1, v2) = (u.path("rootfs-v1"), u.path("rootfs-v2"));
        write_tree(&v1, 1);
        copy_tree(&v1, &v2);
        // The update: some files rewritten, some removed, a new directory.
        for i in (0..60).step_by(7) {
            let f = v2.join(format!("lib/module{i}.so"));
            let mut data = std::fs::read(&f).unwrap();
            let at = data.len() / 3;
            data.splice(at..at + 10, random_bytes(40, i as u64 + 100));
            std::fs::write(&f, data).unwrap();
        }
        std::fs::remove_file(v2.join("lib/module5.so")).unwrap();
        std::fs::create_dir_all(v2.join("share/new")).unwrap();
        for i in 0..20 {
            std::fs::write(
                v2.join(format!("share/new/f{i}.txt")),
                text_bytes(3000 + i * 500),
            )
            .unwrap();
        }
        mkfs_ext4(&v1, &u.path("v1.img"));
        mkfs_ext4(&v2, &u.path("v2.img"));
        for v in ["v1", "v2"] {
            let store = format!("--store={}", s(&u.path(&format!("{v}.castr"))));
            ok(otasync(&[
                &store,
                "make",
                s(&u.path(&format!("{v}.caibx"))),
                s(&u.path(&format!("{v}.img"))),
            ]));
        }
        // delta.castr: v2's chunks that v1's store lacks.
        let (v1s, v2s, delta) = (
            u.path("v1.castr"),
            u.path("v2.castr"),
            u.path("delta.castr"),
        );
        for f in files_below(&v2s) {
            if !v1s.join(&f).exists() {
                std::fs::create_dir_all(delta.join(&f).parent().unwrap()).unwrap();
                std::fs::copy(v2s.join(&f), delta.join(&f)).unwrap();
            }
        }
        assert!(
            !files_below(&delta).is_empty(),
            "the update changes something"
        );
        Some(u)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn index(&self, v: &str) -> Index {
        Index::decode(&std::fs::read(self.path(&format!("{v}.caibx"))).unwrap()).unwrap()
    }

    /// Chunk references of v2 that v1 does not hold: what must be fetched.
    fn missing_from_v1(&self) -> u64 {
        let v1: HashSet<ChunkId> = self.index("v1").chunks.iter().map(|c| c.id).collect();
        let zero = zero_id(&self.index("v2"));
        self.index("v2")
            .chunks
            .iter()
            .filter(|c| !v1.contains(&c.id) && Some(c.id) != zero)
            .count() as u64
    }

    fn extract(&self, extra: &[&str], target: &Path) -> serde_json::Value {
        let store = format!("--store={}", s(&self.path("delta.castr")));
        let index = self.path("v2.caibx");
        let mut args = vec!["extract", "--json", &store];
        args.extend_from_slice(extra);
        args.extend([s(&index), s(target)]);
        serde_json::from_str(&ok(otasync(&args))).unwrap()
    }

    fn assert_is_v2(&self, file: &Path) {
        assert!(
            std::fs::read(file).unwrap() == std::fs::read(self.path("v2.img")).unwrap(),
            "{} is not v2",
            file.display()
        );
    }
}

/// The id of a chunk of `max` zeros (which extraction writes without fetching).
fn zero_id(index: &Index) -> Option<ChunkId> {
    Some(
        index
            .header
            .digest()
            .digest(&vec![0; index.header.sizes.max as usize]),
    )
}

fn fetched_chunks(stats: &serde_json::Value) -> u64 {
    stats["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["chunks"].as_u64().unwrap())
        .sum()
}

fn have_mkfs_ext4() -> bool {
    let have = std::process::Command::new("mkfs.ext4")
        .arg("-V")
        .output()
        .is_ok();
    if !have {
        assert!(std::env::var_os("CI").is_none(), "CI installs e2fsprogs");
        eprintln!("SKIPPED: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
    }
    have
}

fn mkfs_ext4(tree: &Path, image: &Path) {
    std::fs::File::create(image)
        .unwrap()
        .set_len(24 << 20)
        .unwrap();
    ok(std::process::Command::new("mkfs.ext4").args(["-q", "-F", "-d", s(tree), s(image)]));
}

/// A small root file system: "libraries" (random, incompressible) and text files.
fn write_tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::create_dir_all(root.join("share/doc")).unwrap();
    for i in 0..60u64 {
        std::fs::write(
            root.join(format!("lib/module{i}.so")),
            random_bytes(40_000 + (i as usize % 9) * 23_000, seed * 1000 + i),
        )
        .unwrap();
    }
    for i in 0..80usize {
        std::fs::write(
            root.join(format!("share/doc/readme{i}.txt")),
            text_bytes(2000 + i * 311),
        )
        .unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    ok(std::process::Command::new("cp").args(["-a", s(from), s(to)]));
}

#[test]
fn seeded_extract_fetches_only_what_the_seed_lacks() {
    let Some(u) = Update::new() else { return };
    let out = u.path("out.img");
    let stats = u.extract(&[&format!("--seed={}", s(&u.path("v1.img")))], &out);
    u.assert_is_v2(&out);
    assert_eq!(fetched_chunks(&stats), u.missing_from_v1(), "{stats}");
    assert!(stats["seeds"][0]["chunks"].as_u64().unwrap() > 0);
    // The bytes fetched are exactly the compressed size of the delta store's chunks.
    let delta_bytes: u64 = files_below(&u.path("delta.castr"))
        .iter()
        .map(|f| {
            std::fs::metadata(u.path("delta.castr").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        stats["stores"][0]["fetched_bytes"], delta_bytes,
        "each missing chunk fetched once"
    );
    // The dry run predicted exactly that, before anything was written.
    let store = format!("--store={}", s(&u.path("delta.castr")));
    let seed = format!("--seed={}", s(&u.path("v1.img")));
    let info: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "info",
        "--json",
        &store,
        &seed,
        s(&u.path("v2.caibx")),
    ])))
    .unwrap();
    assert_eq!(info["fetch"]["chunks"], u.missing_from_v1());
    assert_eq!(info["fetch"]["stored_bytes"], delta_bytes);
    assert_eq!(info["fetch"]["not_in_any_store"], 0);

    if have_casync() {
        let theirs = u.path("casync.img");
        let store = format!("--store={}", s(&u.path("delta.castr")));
        ok(casync(&[
            "extract",
            &store,
            &format!("--seed={}", s(&u.path("v1.img"))),
            s(&u.path("v2.caibx")),
            s(&theirs),
        ]));
        assert!(
            std::fs::read(&theirs).unwrap() == std::fs::read(&out).unwrap(),
            "same bytes as casync"
        );
    }
}

#[test]
fn seed_given_with_its_index_and_cached_seed_indexes() {
    let Some(u) = Update::new() else { return };
    let seed = format!("--seed={}:{}", s(&u.path("v1.caibx")), s(&u.path("v1.img")));
    let stats = u.extract(&[&seed], &u.path("a.img"));
    u.assert_is_v2(&u.path("a.img"));
    assert_eq!(fetched_chunks(&stats), u.missing_from_v1());

    let cache = format!("--seed-index-dir={}", s(&u.path("seed-indexes")));
    let plain_seed = format!("--seed={}", s(&u.path("v1.img")));
    u.extract(&[&plain_seed, &cache], &u.path("b.img"));
    let cached = files_below(&u.path("seed-indexes"));
    assert_eq!(
        cached.len(),
        2,
        "the seed's index and the written target's: {cached:?}"
    );
    let stats = u.extract(&[&plain_seed, &cache], &u.path("c.img"));
    u.assert_is_v2(&u.path("c.img"));
    assert_eq!(fetched_chunks(&stats), u.missing_from_v1());
    assert_eq!(stats["stale_seed_chunks"], 0);
}

#[test]
fn damaged_seed_costs_fetches_never_wrong_bytes() {
    let Some(u) = Update::new() else { return };
    let cache = format!("--seed-index-dir={}", s(&u.path("seed-indexes")));
    let seed_path = u.path("seed.img");
    std::fs::copy(u.path("v1.img"), &seed_path).unwrap();
    let seed = format!("--seed={}", s(&seed_path));
    // Index the intact seed into the cache, then damage 1 MiB of it.
    u.extract(&[&seed, &cache], &u.path("first.img"));
    let mut bytes = std::fs::read(&seed_path).unwrap();
    for b in &mut bytes[4 << 20..5 << 20] {
        *b ^= 0xA5;
    }
    std::fs::write(&seed_path, &bytes).unwrap();
    // The full v2 store can serve what the seed no longer has.
    let full = format!("--extra-store={}", s(&u.path("v2.castr")));
    let stats = u.extract(&[&seed, &cache, &full], &u.path("second.img"));
    u.assert_is_v2(&u.path("second.img"));
    assert!(
        stats["stale_seed_chunks"].as_u64().unwrap() > 0,
        "the stale cache was noticed: {stats}"
    );
    // Re-cut without the cache, the damaged seed still yields a correct image.
    let stats = u.extract(&[&seed, &full], &u.path("third.img"));
    u.assert_is_v2(&u.path("third.img"));
    assert!(
        fetched_chunks(&stats) > u.missing_from_v1(),
        "damaged chunks came from the store"
    );
}

#[test]
fn interrupted_extraction_resumes_from_what_it_wrote() {
    let Some(u) = Update::new() else { return };
    let out = u.path("out.img");
    let v2 = std::fs::read(u.path("v2.img")).unwrap();
    // What a run killed half-way leaves: the partial file with the first half written.
    let partial = u.path(".#out.img.partial");
    let mut half = v2.clone();
    for b in &mut half[v2.len() / 2..] {
        *b = 0;
    }
    std::fs::write(&partial, &half).unwrap();
    let full = format!("--store={}", s(&u.path("v2.castr")));
    let stats: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &full,
        s(&u.path("v2.caibx")),
        s(&out),
    ])))
    .unwrap();
    u.assert_is_v2(&out);
    assert!(!partial.exists(), "the partial file was renamed into place");
    // Only chunks starting in the second half (or straddling it) were fetched.
    let index = u.index("v2");
    let zero = zero_id(&index);
    let second_half = index
        .spans()
        .filter(|c| c.end > (v2.len() / 2) as u64 && Some(c.id) != zero)
        .count() as u64;
    assert!(fetched_chunks(&stats) <= second_half, "{stats}");
    assert!(stats["in_place"]["bytes"].as_u64().unwrap() >= (v2.len() / 2) as u64 - (256 << 10));
}

#[test]
fn killed_extraction_rerun_fetches_only_what_was_not_written() {
    let Some(u) = Update::new() else { return };
    let full = format!("--store={}", s(&u.path("v2.castr")));
    let index = u.index("v2");
    let zero = zero_id(&index);
    let out = u.path("out.img");
    let partial = u.path(".#out.img.partial");
    // Kill with growing delays until a run is caught part-way.
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let mut child = otasync(&[
            "extract",
            "--threads=1",
            &full,
            s(&u.path("v2.caibx")),
            s(&out),
        ])
        .spawn()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if partial.exists() {
            break;
        }
        let _ = std::fs::remove_file(&out);
    }
    if !partial.exists() {
        eprintln!(
            "NOTE: every run finished before the kill; the resume path is covered by interrupted_extraction_resumes_from_what_it_wrote"
        );
        return;
    }
    // Chunks already correct in the partial file must not be fetched again.
    // A chunk is needed unless some occurrence of it is already right in the partial file.
    // The rerun sizes the partial file first, so what the killed run had not reached reads
    // as zeros (and a chunk of zeros there is already right).
    let mut written = std::fs::read(&partial).unwrap();
    written.resize(index.blob_size() as usize, 0);
    let present: HashSet<ChunkId> = index
        .spans()
        .filter(|c| {
            written
                .get(c.start as usize..c.end as usize)
                .is_some_and(|r| index.header.digest().digest(r) == c.id)
        })
        .map(|c| c.id)
        .collect();
    let needed: HashSet<ChunkId> = index
        .spans()
        .map(|c| c.id)
        .filter(|id| Some(*id) != zero && !present.contains(id))
        .collect();
    let needed = needed.len() as u64;
    let stats: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &full,
        s(&u.path("v2.caibx")),
        s(&out),
    ])))
    .unwrap();
    u.assert_is_v2(&out);
    assert_eq!(fetched_chunks(&stats), needed, "{stats}");
}

#[test]
fn block_device_updated_in_place() {
    let Some(u) = Update::new() else { return };
    if !is_root() {
        return;
    }
    // The inactive slot holds v1; RAUC-style call: seed = active slot (v1), no output seeding.
    let slot = u.path("slot.img");
    std::fs::copy(u.path("v1.img"), &slot).unwrap();
    let device = LoopDevice::attach(&slot);
    let seed = format!("--seed={}", s(&u.path("v1.img")));
    let stats = u.extract(&[&seed, "--seed-output=no"], Path::new(&device.path));
    assert_eq!(
        stats["in_place"]["chunks"], 0,
        "--seed-output=no does not look at the target"
    );
    assert_eq!(fetched_chunks(&stats), u.missing_from_v1());
    drop(device);
    u.assert_is_v2(&slot);
    // Again, in place: everything is already there; nothing is fetched or written.
    let device = LoopDevice::attach(&slot);
    let stats = u.extract(&[], Path::new(&device.path));
    assert_eq!(fetched_chunks(&stats), 0);
    assert_eq!(stats["written_bytes"], 0, "{stats}");
    // A mounted device is refused.
    let mnt = u.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(std::process::Command::new("mount").args(["-o", "ro", &device.path, s(&mnt)]));
    let stderr = fails(
        otasync(&[
            "extract",
            &format!("--store={}", s(&u.path("v2.castr"))),
            s(&u.path("v2.caibx")),
            &device.path,
        ]),
        2,
    );
    let _ = std::process::Command::new("umount").arg(s(&mnt)).status();
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn chunk_cache_serves_the_next_run_and_keeps_its_cap() {
    let Some(u) = Update::new() else { return };
    let cache_dir = u.path("cache");
    let cache = format!("--cache={}", s(&cache_dir));
    let full = format!("--store={}", s(&u.path("v2.castr")));
    let index = u.path("v2.caibx");
    let first: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &cache,
        &full,
        s(&index),
        s(&u.path("a.img")),
    ])))
    .unwrap();
    u.assert_is_v2(&u.path("a.img"));
    let cached = files_below(&cache_dir);
    assert!(!cached.is_empty());
    assert!(
        cached.iter().all(|f| !f.ends_with(".tmp")),
        "no temporary files: {cached:?}"
    );
    assert_eq!(first["stores"][0]["chunks"], 0, "the cache was empty");
    // The store is gone: the cache alone serves the next run.
    let empty = format!("--store={}", s(&u.path("empty.castr")));
    std::fs::create_dir(u.path("empty.castr")).unwrap();
    let second: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &cache,
        &empty,
        s(&index),
        s(&u.path("b.img")),
    ])))
    .unwrap();
    u.assert_is_v2(&u.path("b.img"));
    assert_eq!(
        second["stores"][0]["chunks"], first["stores"][1]["chunks"],
        "{second}"
    );
    // A cap below the cache's size trims it.
    let cap = 100_000u64;
    ok(otasync(&[
        "extract",
        &cache,
        &format!("--cache-max={cap}"),
        &full,
        s(&index),
        s(&u.path("c.img")),
    ]));
    let size: u64 = files_below(&cache_dir)
        .iter()
        .map(|f| std::fs::metadata(cache_dir.join(f)).unwrap().len())
        .sum();
    assert!(size <= cap, "cache holds {size} bytes");
}

#[test]
fn block_device_reuses_its_own_content_at_other_offsets() {
    let Some(u) = Update::new() else { return };
    if !is_root() {
        return;
    }
    // The device holds v2 shifted by 5000 bytes: nearly every chunk is there, elsewhere.
    let v2 = std::fs::read(u.path("v2.img")).unwrap();
    let mut shifted = random_bytes(5000, 4242);
    shifted.extend_from_slice(&v2[..v2.len() - 5000]);
    let slot = u.path("slot.img");
    std::fs::write(&slot, &shifted).unwrap();
    let device = LoopDevice::attach(&slot);
    let full = format!("--store={}", s(&u.path("v2.castr")));
    let stats: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &full,
        s(&u.path("v2.caibx")),
        &device.path,
    ])))
    .unwrap();
    drop(device);
    u.assert_is_v2(&slot);
    let from_target: u64 = stats["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["seed"] == "the target before the update")
        .map(|s| s["chunks"].as_u64().unwrap())
        .sum();
    let total = u.index("v2").chunks.len() as u64;
    assert!(
        from_target * 2 > total,
        "most chunks came from the device itself: {stats}"
    );
    assert!(
        fetched_chunks(&stats) * 4 < total,
        "few were fetched: {stats}"
    );
}
