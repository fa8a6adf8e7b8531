//! `otasync tune` and `otasync report` on generated image pairs: tune's predicted download
//! (index and compressed chunks, requests, store growth) is what a seeded extraction over HTTP
//! really fetches, counted at the server; indexes made with tuned sizes and levels stay
//! readable by casync; the release report page renders in headless Chromium with its figures.

use crate::fault_server::{Fault, FaultServer};
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: usize = 1 << 20;

/// Two versions of an image (8 MiB): random and text-like regions and free space (zeros),
/// then edits: overwrites, an insertion and a deletion (shifting what follows), a new block
/// that occurs twice, and newly zeroed space.
struct Pair {
    dir: tempfile::TempDir,
}

impl Pair {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = Vec::with_capacity(8 * MIB);
        v1.extend(random_bytes(3 * MIB, 1));
        v1.extend(text_bytes(2 * MIB));
        v1.extend(vec![0u8; MIB]);
        v1.extend(random_bytes(2 * MIB, 2));
        let mut v2 = v1.clone();
        for (at, seed) in [
            (300_000, 10),
            (1_500_000, 11),
            (3_500_000, 12),
            (7_000_000, 13),
        ] {
            v2.splice(at..at + 3000, random_bytes(3000, seed));
        }
        v2.splice(1_000_000..1_000_000, random_bytes(777, 14));
        v2.drain(4_200_000..4_220_000);
        let block = random_bytes(50_000, 15);
        v2.splice(6_500_000..6_500_000, block.clone());
        v2.extend(&block);
        v2[2 * MIB..2 * MIB + 300_000].fill(0);
        v2.extend(text_bytes(100_000).iter().map(|b| b.to_ascii_uppercase()));
        let pair = Self { dir };
        std::fs::write(pair.path("v1.img"), &v1).unwrap();
        std::fs::write(pair.path("v2.img"), &v2).unwrap();
        pair
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        s(&self.path(name)).to_owned()
    }

    /// `otasync tune --json` with extra arguments.
    fn tune(&self, args: &[&str]) -> Value {
        let mut all = vec!["tune".to_owned(), "--json".to_owned()];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        serde_json::from_str(&ok(otasync(&all))).unwrap()
    }
}

/// The row of `tune`'s JSON for `sizes` at `level`.
fn row<'a>(tuned: &'a Value, sizes: &str, level: i64) -> &'a Value {
    tuned["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chunk_size_arg"] == sizes && r["level"] == level)
        .unwrap_or_else(|| panic!("no row for {sizes} at level {level}: {tuned}"))
}

/// Bytes of all files below `dir`.
fn bytes_below(dir: &Path) -> u64 {
    files_below(dir)
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum()
}

#[test]
fn tune_predicts_what_a_seeded_extract_fetches() {
    let pair = Pair::new();
    let candidates = "2K:8K:32K,4K:6K:24K,16K:64K:256K";
    let tuned = pair.tune(&[
        &format!("--old={}", pair.p("v1.img")),
        &format!("--new={}", pair.p("v2.img")),
        &format!("--candidates={candidates}"),
        "--levels=3,19",
        "--exact",
    ]);
    assert_eq!(tuned["candidates"].as_array().unwrap().len(), 6);
    let recommended: Vec<&Value> = tuned["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["recommended"] == true)
        .collect();
    assert_eq!(recommended.len(), 1);
    let smallest = tuned["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["download_bytes"].as_u64().unwrap())
        .min()
        .unwrap();
    assert_eq!(recommended[0]["download_bytes"], smallest);

    for sizes in candidates.split(',') {
        for level in [3, 19] {
            let predicted = row(&tuned, sizes, level);
            assert_eq!(predicted["estimated"], false, "--exact");
            let work = pair.path(&format!("{}-{level}", sizes.replace(':', "_")));
            let www = work.join("www");
            let store = www.join("default.castr");
            std::fs::create_dir_all(&www).unwrap();
            let make = |image: &str, index: &Path| {
                ok(otasync(&[
                    &format!("--chunk-size={sizes}"),
                    &format!("--compression-level={level}"),
                    &format!("--store={}", s(&store)),
                    "make",
                    s(index),
                    &pair.p(image),
                ]));
            };
            // Store growth: what v2 adds to a store holding v1's chunks.
            make("v1.img", &work.join("v1.caibx"));
            let before = bytes_below(&store);
            make("v2.img", &www.join("v2.caibx"));
            let growth = bytes_below(&store) - before;
            let old = &predicted["olds"][0];
            assert_eq!(old["store_growth_bytes"], growth, "{sizes} level {level}");
            assert_eq!(
                predicted["index_bytes"],
                std::fs::metadata(www.join("v2.caibx")).unwrap().len(),
                "{sizes}: index size"
            );

            // The update: a device holding v1 fetches v2 over HTTP.
            let server = FaultServer::start(www.clone(), Fault::None);
            let out = work.join("out.img");
            let stats: Value = serde_json::from_str(&ok(otasync(&[
                "extract",
                "--json",
                &format!("--seed={}", pair.p("v1.img")),
                &format!("--store={}", server.url("default.castr")),
                &server.url("v2.caibx"),
                s(&out),
            ])))
            .unwrap();
            assert_eq!(
                std::fs::read(&out).unwrap(),
                std::fs::read(pair.path("v2.img")).unwrap()
            );
            // Counted at the server: chunk requests and the bytes of the files served.
            let requests = server.requests.lock().unwrap().clone();
            let chunk_paths: Vec<String> = requests
                .iter()
                .filter_map(|r| r.split_whitespace().nth(1).map(str::to_owned))
                .filter(|p| p.ends_with(".cacnk"))
                .collect();
            let served: u64 = chunk_paths
                .iter()
                .map(|p| {
                    std::fs::metadata(www.join(p.trim_start_matches('/')))
                        .unwrap()
                        .len()
                })
                .sum();
            let what = format!("{sizes} level {level}");
            assert_eq!(
                old["requests"],
                chunk_paths.len() as u64,
                "{what}: requests"
            );
            assert_eq!(old["chunk_bytes"], served, "{what}: chunk bytes");
            assert_eq!(server.count("v2.caibx"), 1);
            // The extraction's own figures, index included.
            assert_eq!(stats["download"]["chunk_bytes"], served, "{what}");
            assert_eq!(
                stats["download"]["total_bytes"], old["download_bytes"],
                "{what}"
            );
            assert_eq!(stats["download"]["chunks"], old["requests"], "{what}");
            // The dry run agrees, index included.
            let info: Value = serde_json::from_str(&ok(otasync(&[
                "info",
                "--json",
                &format!("--seed={}", pair.p("v1.img")),
                &format!("--store={}", s(&store)),
                s(&www.join("v2.caibx")),
            ])))
            .unwrap();
            assert_eq!(
                info["fetch"]["download_bytes"], old["download_bytes"],
                "{what}"
            );
        }
    }
}

#[test]
fn an_old_index_stands_for_the_old_image_with_its_sizes() {
    let pair = Pair::new();
    ok(otasync(&[
        "--chunk-size=4K:6K:24K",
        &format!("--store={}", pair.p("store")),
        "make",
        &pair.p("v1.caibx"),
        &pair.p("v1.img"),
    ]));
    let new = format!("--new={}", pair.p("v2.img"));
    let from_image = pair.tune(&[
        &format!("--old={}", pair.p("v1.img")),
        &new,
        "--candidates=4K:6K:24K",
        "--levels=5",
    ]);
    // Without --candidates, the index's sizes are the candidate.
    let from_index = pair.tune(&[&format!("--old={}", pair.p("v1.caibx")), &new, "--levels=5"]);
    let (a, b) = (&from_image["candidates"][0], &from_index["candidates"][0]);
    assert_eq!(b["chunk_size_arg"], "4K:6K:24K");
    for field in ["download_bytes", "requests", "index_bytes", "chunks"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert!(a["requests"].as_u64().unwrap() > 0);
    // Other sizes need the old image.
    let err = fails(
        otasync(&[
            "tune",
            &format!("--old={}", pair.p("v1.caibx")),
            &new,
            "--candidates=4K:6K:24K,2K:8K:32K",
        ]),
        2,
    );
    assert!(err.contains("was made with chunk sizes 4K:6K:24K"), "{err}");
    assert!(err.contains("--old=OLD.img"), "{err}");
}

#[test]
fn casync_extracts_an_index_made_with_tuned_size_and_level() {
    if !have_casync() {
        return;
    }
    let pair = Pair::new();
    let store = format!("--store={}", pair.p("store"));
    ok(otasync(&[
        "--chunk-size=4K:6K:24K",
        "--compression-level=19",
        &store,
        "make",
        &pair.p("v2.caibx"),
        &pair.p("v2.img"),
    ]));
    let v2 = std::fs::read(pair.path("v2.img")).unwrap();
    ok(casync(&[
        &store,
        "extract",
        &pair.p("v2.caibx"),
        &pair.p("plain.img"),
    ]));
    assert_eq!(std::fs::read(pair.path("plain.img")).unwrap(), v2);
    // casync cuts its seed with the index's (non-default) sizes and reuses it.
    ok(casync(&[
        &store,
        &format!("--seed={}", pair.p("v1.img")),
        "extract",
        &pair.p("v2.caibx"),
        &pair.p("seeded.img"),
    ]));
    assert_eq!(std::fs::read(pair.path("seeded.img")).unwrap(), v2);
}

/// True when headless Chromium can be run. CI installs it, so there its absence fails the
/// test; elsewhere the caller skips with a visible message.
fn have_chromium() -> bool {
    let have = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium must be installed in CI (.ci/run)"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
    }
    have
}

/// Headless Chromium with `args` on the page at `path`.
fn chromium(page: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ])
    .args(args)
    .arg(format!("file://{}", s(page)))
    .env("HOME", page.parent().unwrap());
    ok(cmd)
}

/// `1234567` as `1,234,567`, as the page writes numbers.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[test]
fn the_release_report_renders_with_its_figures() {
    let pair = Pair::new();
    // v0: an older release that shares less with v2.
    let mut v0 = std::fs::read(pair.path("v1.img")).unwrap();
    v0[..2 * MIB].copy_from_slice(&random_bytes(2 * MIB, 99));
    std::fs::write(pair.path("v0.img"), v0).unwrap();
    let store = format!("--store={}", pair.p("store"));
    for v in ["v0", "v1", "v2"] {
        ok(otasync(&[
            "--chunk-size=4K:6K:24K",
            "--compression-level=19",
            &store,
            "make",
            &pair.p(&format!("{v}.caibx")),
            &pair.p(&format!("{v}.img")),
        ]));
    }
    let page = pair.path("report.html");
    let summary: Value = serde_json::from_str(&ok(otasync(&[
        &store,
        "report",
        "--json",
        &format!("--new={}", pair.p("v2.caibx")),
        &format!("--old={}", pair.p("v1.caibx")),
        &format!("--old={}", pair.p("v0.caibx")),
        &format!("--out={}", s(&page)),
    ])))
    .unwrap();
    let olds = summary["olds"].as_array().unwrap();
    assert_eq!(olds.len(), 2);
    // The figures are what a seeded extraction would download (the dry run agrees).
    for (old, name) in olds.iter().zip(["v1", "v0"]) {
        assert_eq!(old["old"], name);
        let info: Value = serde_json::from_str(&ok(otasync(&[
            "info",
            "--json",
            &store,
            &format!("--seed={}", pair.p(&format!("{name}.img"))),
            &pair.p("v2.caibx"),
        ])))
        .unwrap();
        assert_eq!(
            old["download_bytes"], info["fetch"]["download_bytes"],
            "{name}"
        );
        assert_eq!(old["requests"], info["fetch"]["chunks"], "{name}");
        assert_eq!(old["not_in_stores"], 0);
    }
    assert!(olds[1]["download_bytes"].as_u64() > olds[0]["download_bytes"].as_u64());

    if !have_chromium() {
        return;
    }
    // The DOM after Chromium has parsed and laid out the page.
    let dom = chromium(&page, &["--dump-dom"]);
    assert!(dom.contains("Update report: v2"), "{dom}");
    for old in olds {
        let download = grouped(old["download_bytes"].as_u64().unwrap());
        assert!(
            dom.contains(&format!("Download <b>{download}</b> bytes")),
            "{download} missing from the rendered page"
        );
        assert!(
            dom.contains(&format!("<td>{download}</td>")),
            "summary row {download}"
        );
        let requests = grouped(old["requests"].as_u64().unwrap());
        assert!(
            dom.contains(&format!("in {requests} requests")),
            "{requests} requests"
        );
    }
    for map in ["map0", "map1"] {
        assert!(dom.contains(&format!("<svg id=\"{map}\"")), "{map}");
    }
    // A map of 1024 cells per old release, fetched ones among them.
    assert_eq!(dom.matches("<rect ").count(), 2 * 1024);
    assert!(dom.contains("class=\"f\""), "some cells fetched");
    assert!(dom.contains("class=\"r\""), "some cells reused");
    assert!(dom.contains("class=\"z\""), "some cells all zeros");
    // And it paints: a screenshot is written.
    let shot = pair.path("report.png");
    chromium(
        &page,
        &[
            &format!("--screenshot={}", s(&shot)),
            "--window-size=1000,1600",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{}",
        png.len()
    );
}
