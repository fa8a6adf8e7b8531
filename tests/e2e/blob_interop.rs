//! Blob indexes are interchangeable with casync's: for a corpus of inputs, chunk-size settings
//! and both digests, our `.caibx` is byte-identical to casync's, the stores hold the same chunk
//! names, each tool extracts from the other's store, and digests agree.

use crate::support::*;
use std::path::Path;

/// Inputs: (name, bytes).
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut mixed = random_bytes(300_000, 1);
    mixed.extend(vec![0u8; 600_000]);
    mixed.extend(text_bytes(200_000));
    mixed.extend(random_bytes(150_000, 2));
    vec![
        ("empty", Vec::new()),
        ("one-byte", vec![0x42]),
        ("below-min", random_bytes(1000, 3)),
        ("zeros", vec![0u8; 1 << 20]),
        ("random", random_bytes(1_500_000, 4)),
        ("mixed", mixed),
        ("text", text_bytes(700_000)),
    ]
}

/// `--chunk-size=` settings: casync's default and non-default ones, fixed-size and min < 48.
const CHUNK_SIZES: &[Option<&str>] = &[
    None,
    Some("8K"),
    Some("1K:4K:16K"),
    Some("16:64:256"),
    Some("64:256:1024"),
    Some("4K:4K:4K"),
    Some("100000"),
];

fn args<'a>(chunk_size: &'a Option<String>, digest: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = chunk_size.iter().map(String::as_str).collect();
    all.push(digest);
    all.extend_from_slice(rest);
    all
}

#[test]
fn make_and_extract_are_interchangeable_with_casync() {
    if !have_casync() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (name, data) in corpus() {
        let input = tmp.path().join(name);
        std::fs::write(&input, &data).unwrap();
        for size in CHUNK_SIZES {
            // The smallest chunks make many files: keep those runs to the smaller inputs.
            if size.is_some_and(|s| s.starts_with("16:")) && data.len() > 300_000 {
                continue;
            }
            let size_opt = size.map(|s| format!("--chunk-size={s}"));
            for digest in ["--digest=sha512-256", "--digest=sha256"] {
                let label = format!("{name} {size_opt:?} {digest}");
                let case = tmp.path().join(format!("case{checked}"));
                std::fs::create_dir(&case).unwrap();
                check_case(&case, &input, &data, &args(&size_opt, digest, &[]), &label);
                checked += 1;
            }
        }
    }
    assert!(checked >= 80, "only {checked} cases ran");
}

fn check_case(case: &Path, input: &Path, data: &[u8], opts: &[&str], label: &str) {
    let (ours, theirs) = (case.join("ours"), case.join("theirs"));
    let (our_store, their_store) = (ours.join("store"), theirs.join("store"));
    let (our_index, their_index) = (ours.join("x.caibx"), theirs.join("x.caibx"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();

    let store_arg = format!("--store={}", s(&our_store));
    let mut make: Vec<&str> = opts.to_vec();
    make.extend([store_arg.as_str(), "make", s(&our_index), s(input)]);
    let our_digest = ok(&mut otasync(&make));
    let store_arg = format!("--store={}", s(&their_store));
    let mut make: Vec<&str> = opts.to_vec();
    make.extend([store_arg.as_str(), "make", s(&their_index), s(input)]);
    let their_digest = ok(&mut casync(&make));

    assert_eq!(
        std::fs::read(&our_index).unwrap(),
        std::fs::read(&their_index).unwrap(),
        "{label}: .caibx differs from casync's"
    );
    assert_eq!(
        our_digest, their_digest,
        "{label}: make printed a different digest"
    );
    assert_eq!(
        files_below(&our_store),
        files_below(&their_store),
        "{label}: chunk names differ"
    );

    // Each tool extracts from the other's store.
    let out = case.join("from-casync-store");
    ok(otasync(&[
        "extract",
        &format!("--store={}", s(&their_store)),
        s(&our_index),
        s(&out),
    ]));
    assert!(
        std::fs::read(&out).unwrap() == data,
        "{label}: our extract from casync's store"
    );
    let out = case.join("casync-from-ours");
    ok(casync(&[
        "extract",
        &format!("--store={}", s(&our_store)),
        s(&their_index),
        s(&out),
    ]));
    assert!(
        std::fs::read(&out).unwrap() == data,
        "{label}: casync's extract from our store"
    );

    // Digests: of the file (with the chosen algorithm) and of the index's content.
    let digest_opt = opts
        .iter()
        .find(|o| o.starts_with("--digest="))
        .copied()
        .unwrap();
    let ours = ok(&mut otasync(&[digest_opt, "digest", s(input)]));
    assert_eq!(
        ours,
        ok(&mut casync(&[digest_opt, "digest", s(input)])),
        "{label}: file digest"
    );
    let store_arg = format!("--store={}", s(&our_store));
    let of_index = ok(&mut otasync(&[&store_arg, "digest", s(&our_index)]));
    // casync always prints SHA-512/256 for an index (spec §6); we print the index's own
    // algorithm, which equals casync's digest of the file with that algorithm.
    assert_eq!(of_index, ours, "{label}: digest of the index's content");
    if digest_opt.ends_with("sha512-256") {
        let theirs = ok(&mut casync(&[&store_arg, "digest", s(&our_index)]));
        assert_eq!(of_index, theirs, "{label}: casync digest of the index");
    }
    std::fs::remove_dir_all(case).unwrap();
}

#[test]
fn uncompressed_stores_work_both_ways() {
    if !have_casync() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let data = text_bytes(400_000);
    std::fs::write(&input, &data).unwrap();
    let (store, index) = (tmp.path().join("store"), tmp.path().join("x.caibx"));
    let store_arg = format!("--store={}", s(&store));
    ok(otasync(&[
        "--compression=none",
        &store_arg,
        "make",
        s(&index),
        s(&input),
    ]));
    let files = files_below(&store);
    assert!(
        !files.is_empty() && files.iter().all(|f| !f.ends_with(".cacnk")),
        "{files:?}"
    );
    let out = tmp.path().join("out");
    ok(casync(&["extract", &store_arg, s(&index), s(&out)]));
    assert!(std::fs::read(&out).unwrap() == data);
    std::fs::remove_file(&out).unwrap();
    ok(otasync(&["extract", &store_arg, s(&index), s(&out)]));
    assert!(std::fs::read(&out).unwrap() == data);
}

#[test]
fn default_store_is_beside_the_index_and_stdout_works() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.img");
    let data = random_bytes(500_000, 9);
    std::fs::write(&input, &data).unwrap();
    let index = tmp.path().join("x.caibx");
    ok(otasync(&["make", s(&index), s(&input)]));
    assert!(tmp.path().join("default.castr").is_dir());
    let out = otasync(&["extract", s(&index), "-"]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data);
}

#[test]
fn info_describes_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.img");
    let mut data = random_bytes(800_000, 5);
    data.extend(vec![0u8; 1 << 20]);
    std::fs::write(&input, &data).unwrap();
    let index = tmp.path().join("x.caibx");
    ok(otasync(&[
        "--digest=sha256",
        "--chunk-size=32K",
        "make",
        s(&index),
        s(&input),
    ]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&mut otasync(&["info", "--json", s(&index)]))).unwrap();
    assert_eq!(json["digest"], "sha256");
    assert_eq!(json["feature_flags"], 0x9000000000000000u64);
    assert_eq!(json["chunk_size"]["avg"], 32768);
    assert_eq!(json["size"], data.len() as u64);
    let index_len = std::fs::metadata(&index).unwrap().len();
    assert_eq!(json["index_size"], index_len);
    assert_eq!(json["chunks"], (index_len - 104) / 40);
    // The 1 MiB of zeros is eight identical 128 KiB chunks.
    assert!(json["unique_chunks"].as_u64() < json["chunks"].as_u64());
    let text = ok(&mut otasync(&["info", s(&index)]));
    assert!(text.contains("Digest: sha256") && text.contains("Feature flags: 0x9000000000000000"));
}

#[test]
fn large_average_uses_casync_discriminator_quirk() {
    // Above an average of ~9.3 MiB casync's discriminator formula goes negative and clamps to
    // the maximum (spec §1.1); the chunk boundaries must still match.
    if !have_casync() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::write(&input, random_bytes(40 << 20, 12)).unwrap();
    let (ours, theirs) = (
        tmp.path().join("ours.caibx"),
        tmp.path().join("theirs.caibx"),
    );
    let store = format!("--store={}", s(&tmp.path().join("store")));
    ok(otasync(&[
        "--chunk-size=1M:16M:32M",
        &store,
        "make",
        s(&ours),
        s(&input),
    ]));
    ok(casync(&[
        "--chunk-size=1M:16M:32M",
        &store,
        "make",
        s(&theirs),
        s(&input),
    ]));
    let index = std::fs::read(&ours).unwrap();
    assert_eq!(index, std::fs::read(&theirs).unwrap());
    assert!(index.len() > 104 + 40, "more than one chunk");
}

#[test]
fn higher_compression_levels_shrink_chunks_casync_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    // Real machine code compresses like a root file system does (this test binary itself).
    let mut data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    data.truncate(3 << 20);
    std::fs::write(&input, &data).unwrap();
    let mut stored = Vec::new();
    for level in ["3", "19"] {
        let store = tmp.path().join(format!("store{level}"));
        let index = tmp.path().join(format!("l{level}.caibx"));
        let store_arg = format!("--store={}", s(&store));
        ok(otasync(&[
            &store_arg,
            &format!("--compression-level={level}"),
            "make",
            s(&index),
            s(&input),
        ]));
        let bytes: u64 = files_below(&store)
            .iter()
            .map(|f| std::fs::metadata(store.join(f)).unwrap().len())
            .sum();
        stored.push(bytes);
        if have_casync() {
            let out = tmp.path().join(format!("out{level}"));
            ok(casync(&["extract", &store_arg, s(&index), s(&out)]));
            assert!(std::fs::read(&out).unwrap() == data);
        }
    }
    assert!(
        stored[1] < stored[0],
        "level 19 ({}) is smaller than level 3 ({})",
        stored[1],
        stored[0]
    );
}
