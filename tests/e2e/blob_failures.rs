//! Bad stores, bad indexes and block-device targets: each failure exits with its documented
//! code, names what is wrong, and leaves no output (or temporary file) behind.

use crate::support::*;
use std::path::{Path, PathBuf};

/// Exit codes documented in README.md.
const EXIT_USAGE: i32 = 2;
const EXIT_INVALID_INPUT: i32 = 3;
const EXIT_CHUNK_MISSING: i32 = 4;
const EXIT_CHUNK_CORRUPT: i32 = 5;

struct Fixture {
    dir: tempfile::TempDir,
    data: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut data = text_bytes(600_000);
        data.extend(random_bytes(400_000, 11));
        std::fs::write(dir.path().join("in.img"), &data).unwrap();
        let store_arg = format!("--store={}", s(&dir.path().join("store")));
        ok(otasync(&[
            &store_arg,
            "make",
            s(&dir.path().join("x.caibx")),
            s(&dir.path().join("in.img")),
        ]));
        Self { dir, data }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store_arg(&self) -> String {
        format!("--store={}", s(&self.path("store")))
    }

    /// Some chunk file of the store.
    fn a_chunk(&self) -> PathBuf {
        let files = files_below(&self.path("store"));
        self.path("store").join(&files[files.len() / 2])
    }

    fn chunk_id(chunk: &Path) -> String {
        chunk
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".cacnk")
            .to_owned()
    }

    /// Extracting to `out` fails with `code`; returns stderr after checking nothing was left.
    fn extract_fails(&self, code: i32) -> String {
        let out = self.path("out/target.img");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let stderr = fails(
            &mut otasync(&[
                "extract",
                &self.store_arg(),
                s(&self.path("x.caibx")),
                s(&out),
            ]),
            code,
        );
        assert!(
            std::fs::read_dir(self.path("out"))
                .unwrap()
                .next()
                .is_none(),
            "output or a temporary file was left behind"
        );
        stderr
    }
}

#[test]
fn missing_chunk_names_chunk_and_store() {
    let f = Fixture::new();
    let chunk = f.a_chunk();
    std::fs::remove_file(&chunk).unwrap();
    let stderr = f.extract_fails(EXIT_CHUNK_MISSING);
    assert!(stderr.contains(&Fixture::chunk_id(&chunk)), "{stderr}");
    assert!(stderr.contains(s(&f.path("store"))), "{stderr}");
}

#[test]
fn corrupt_chunk_names_chunk_and_store() {
    let f = Fixture::new();
    let chunk = f.a_chunk();
    let mut bytes = std::fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last / 2] ^= 0x55;
    std::fs::remove_file(&chunk).unwrap();
    std::fs::write(&chunk, &bytes).unwrap();
    let stderr = f.extract_fails(EXIT_CHUNK_CORRUPT);
    assert!(
        stderr.contains(&Fixture::chunk_id(&chunk)) && stderr.contains("corrupt"),
        "{stderr}"
    );
}

#[test]
fn chunk_swapped_for_another_is_caught_by_its_id() {
    let f = Fixture::new();
    let files = files_below(&f.path("store"));
    let (a, b) = (
        f.path("store").join(&files[0]),
        f.path("store").join(&files[1]),
    );
    std::fs::remove_file(&a).unwrap();
    std::fs::copy(&b, &a).unwrap();
    let stderr = f.extract_fails(EXIT_CHUNK_CORRUPT);
    assert!(stderr.contains(&Fixture::chunk_id(&a)), "{stderr}");
}

#[test]
fn zstd_bomb_is_refused_without_expanding() {
    let f = Fixture::new();
    let chunk = f.a_chunk();
    // 64 MiB of zeros compress to a few KiB; the index promises at most 256 KiB.
    let bomb = zstd_frame_of_zeros(64 << 20);
    assert!(bomb.len() < 64 * 1024);
    std::fs::remove_file(&chunk).unwrap();
    std::fs::write(&chunk, bomb).unwrap();
    let stderr = f.extract_fails(EXIT_CHUNK_CORRUPT);
    assert!(stderr.contains("more than"), "{stderr}");
}

/// A zstd frame of `len` zeros, made by the zstd tool if present, else by otasync itself
/// (a store made with --chunk-size large enough holds such a chunk).
fn zstd_frame_of_zeros(len: usize) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("zeros");
    std::fs::write(&input, vec![0u8; len]).unwrap();
    let store = tmp.path().join("store");
    let size = format!("--chunk-size={len}:{len}:{len}");
    ok(otasync(&[
        &size,
        &format!("--store={}", s(&store)),
        "make",
        s(&tmp.path().join("z.caibx")),
        s(&input),
    ]));
    let files = files_below(&store);
    assert_eq!(files.len(), 1);
    std::fs::read(store.join(&files[0])).unwrap()
}

#[test]
fn second_store_serves_what_the_first_lacks() {
    let f = Fixture::new();
    let chunk = f.a_chunk();
    let rel = chunk.strip_prefix(f.path("store")).unwrap().to_owned();
    let other = f.path("other");
    std::fs::create_dir_all(other.join(rel.parent().unwrap())).unwrap();
    std::fs::rename(&chunk, other.join(&rel)).unwrap();
    let out = f.path("out.img");
    let extra = format!("--extra-store={}", s(&other));
    ok(otasync(&[
        "extract",
        &f.store_arg(),
        &extra,
        s(&f.path("x.caibx")),
        s(&out),
    ]));
    assert!(std::fs::read(&out).unwrap() == f.data);
}

#[test]
fn corrupt_index_is_invalid_input() {
    let f = Fixture::new();
    let mut index = std::fs::read(f.path("x.caibx")).unwrap();
    index.truncate(index.len() - 7);
    std::fs::write(f.path("x.caibx"), &index).unwrap();
    let stderr = f.extract_fails(EXIT_INVALID_INPUT);
    assert!(
        stderr.contains("truncated") || stderr.contains("tail"),
        "{stderr}"
    );
    std::fs::write(
        f.path("y.caibx"),
        b"not an index at all, just some text that is long enough to parse",
    )
    .unwrap();
    let stderr = fails(
        &mut otasync(&["info", s(&f.path("y.caibx"))]),
        EXIT_INVALID_INPUT,
    );
    assert!(stderr.contains("y.caibx"), "{stderr}");
}

#[test]
fn usage_errors() {
    let f = Fixture::new();
    fails(
        &mut otasync(&["make", s(&f.path("x.idx")), s(&f.path("in.img"))]),
        EXIT_USAGE,
    );
    fails(
        &mut otasync(&[
            "--chunk-size=1:16:32",
            "make",
            s(&f.path("z.caibx")),
            s(&f.path("in.img")),
        ]),
        EXIT_USAGE,
    );
    fails(
        &mut otasync(&[
            "--chunk-size=1K:4K",
            "make",
            s(&f.path("z.caibx")),
            s(&f.path("in.img")),
        ]),
        EXIT_USAGE,
    );
    fails(
        &mut otasync(&["make", s(&f.path("z.caibx")), s(f.dir.path())]),
        EXIT_USAGE,
    );
    assert!(!f.path("z.caibx").exists());
}

#[test]
fn extracts_onto_a_loop_device_in_place() {
    if !is_root() {
        return;
    }
    let f = Fixture::new();
    let backing = f.path("disk.img");
    std::fs::write(&backing, vec![0xAAu8; 2 << 20]).unwrap();
    let device = LoopDevice::attach(&backing);
    ok(otasync(&[
        "extract",
        &f.store_arg(),
        s(&f.path("x.caibx")),
        &device.path,
    ]));
    let written = std::fs::read(&backing).unwrap();
    assert!(
        written[..f.data.len()] == f.data[..],
        "image written at the start of the device"
    );
    assert!(
        written[f.data.len()..].iter().all(|&b| b == 0xAA),
        "nothing written past the image"
    );

    // A device smaller than the image is refused before anything is written.
    let small = f.path("small.img");
    std::fs::write(&small, vec![0x55u8; 512 * 1024]).unwrap();
    let small_dev = LoopDevice::attach(&small);
    let stderr = fails(
        &mut otasync(&[
            "extract",
            &f.store_arg(),
            s(&f.path("x.caibx")),
            &small_dev.path,
        ]),
        EXIT_USAGE,
    );
    assert!(stderr.contains("device holds"), "{stderr}");
    drop(small_dev);
    assert!(std::fs::read(&small).unwrap().iter().all(|&b| b == 0x55));

    // And make reads a block device like a file.
    let index = f.path("dev.caibx");
    ok(otasync(&[&f.store_arg(), "make", s(&index), &device.path]));
    let out = f.path("dev-copy.img");
    ok(otasync(&["extract", &f.store_arg(), s(&index), s(&out)]));
    assert!(std::fs::read(&out).unwrap() == written);
}
