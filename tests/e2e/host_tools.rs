//! gc and verify of stores, files and devices.

use crate::support::*;
use otasync_core::Index;
use std::collections::BTreeSet;
use std::path::Path;

fn chunk_names(index: &Path) -> BTreeSet<String> {
    let index = Index::decode(&std::fs::read(index).unwrap()).unwrap();
    index
        .chunks
        .iter()
        .map(|c| {
            let h = c.id.to_string();
            format!("{}/{h}.cacnk", &h[..4])
        })
        .collect()
}

#[test]
fn gc_keeps_exactly_the_referenced_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    for (name, seed) in [("a", 1), ("b", 2)] {
        let image = tmp.path().join(format!("{name}.img"));
        let mut data = text_bytes(300_000);
        data.extend(random_bytes(300_000, seed));
        std::fs::write(&image, data).unwrap();
        ok(otasync(&[
            &store_arg,
            "make",
            s(&tmp.path().join(format!("{name}.caibx"))),
            s(&image),
        ]));
    }
    let a = tmp.path().join("a.caibx");
    let all: BTreeSet<String> = files_below(&store).into_iter().collect();
    assert!(all.len() > chunk_names(&a).len());
    // Within the default grace period, and in a dry run, nothing goes.
    ok(otasync(&[&store_arg, "gc", s(&a)]));
    ok(otasync(&[
        &store_arg,
        "gc",
        "--dry-run",
        "--grace=0",
        s(&a),
    ]));
    assert_eq!(
        files_below(&store).into_iter().collect::<BTreeSet<_>>(),
        all
    );
    let report = ok(otasync(&[&store_arg, "gc", "--grace=0", s(&a)]));
    assert!(report.contains("removed"), "{report}");
    assert_eq!(
        files_below(&store).into_iter().collect::<BTreeSet<_>>(),
        chunk_names(&a)
    );
    // What is left still extracts.
    ok(otasync(&[
        &store_arg,
        "extract",
        s(&a),
        s(&tmp.path().join("a.out")),
    ]));
}

#[test]
fn verify_finds_corrupt_chunks_and_differing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    let image = tmp.path().join("image.img");
    let mut data = text_bytes(500_000);
    data.extend(random_bytes(500_000, 3));
    std::fs::write(&image, &data).unwrap();
    let index = tmp.path().join("image.caibx");
    ok(otasync(&[&store_arg, "make", s(&index), s(&image)]));
    let report = ok(otasync(&[&store_arg, "verify", s(&index), s(&image)]));
    assert!(report.contains(", 0 problems"), "{report}");

    // A flipped byte in a chunk file: found, named, and removed with --repair.
    let files = files_below(&store);
    let victim = store.join(&files[files.len() / 2]);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, &bytes).unwrap();
    let id = victim
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(".cacnk")
        .to_owned();
    let out = otasync(&[&store_arg, "verify", s(&index)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("corrupt chunk {id}")));
    fails(otasync(&[&store_arg, "verify", "--repair", s(&index)]), 5);
    assert!(!victim.exists(), "--repair removed the corrupt chunk");
    let out = otasync(&[&store_arg, "verify", s(&index)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "now it is missing");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("missing chunk {id}")));

    // A file that differs in one byte: the range is listed.
    ok(otasync(&[&store_arg, "make", s(&index), s(&image)]));
    let copy = tmp.path().join("copy.img");
    let mut changed = data.clone();
    changed[700_000] ^= 0x80;
    std::fs::write(&copy, &changed).unwrap();
    let out = otasync(&[&store_arg, "verify", s(&index), s(&copy)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("differ"))
        .expect("a differing range");
    let range = line
        .split("bytes ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let (start, end) = range.split_once("..").unwrap();
    let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
    assert!(start <= 700_000 && 700_000 < end, "{line}");

    // The same check on a block device.
    if is_root() {
        let device = LoopDevice::attach(&copy);
        let out = otasync(&[&store_arg, "verify", s(&index), &device.path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5));
    }
}

#[test]
fn gc_keeps_chunks_a_running_make_reuses() {
    // A `make` that finds a chunk already stored marks it as just written, so that a gc
    // running before that make's index exists (and so without it) keeps the chunk.
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    for (name, seed) in [("a", 5), ("b", 6)] {
        let image = tmp.path().join(format!("{name}.img"));
        std::fs::write(&image, random_bytes(400_000, seed)).unwrap();
        let index = tmp.path().join(format!("{name}.caibx"));
        ok(otasync(&[&store_arg, "make", s(&index), s(&image)]));
    }
    let all: BTreeSet<String> = files_below(&store).into_iter().collect();
    // Every chunk is older than the grace period…
    let aged = std::process::Command::new("find")
        .arg(&store)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2 hours ago",
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(aged.success());
    // …until b is made again: all its chunks are found in the store, and refreshed.
    let again = tmp.path().join("b-again.caibx");
    ok(otasync(&[
        &store_arg,
        "make",
        s(&again),
        s(&tmp.path().join("b.img")),
    ]));
    let a = tmp.path().join("a.caibx");
    ok(otasync(&[&store_arg, "gc", "--grace=3600", s(&a)]));
    assert_eq!(
        files_below(&store).into_iter().collect::<BTreeSet<_>>(),
        all,
        "chunks the new make reused are kept"
    );
    ok(otasync(&[&store_arg, "gc", "--grace=0", s(&a)]));
    assert_eq!(
        files_below(&store).into_iter().collect::<BTreeSet<_>>(),
        chunk_names(&a)
    );
}
