//! Archives made by Debian's casync (in the fuzz seed corpus, `fuzz/corpus/catar/`): they decode,
//! the encoder reproduces them byte for byte from the same trees, and the corrupted and
//! truncated variants fail with their specific errors.
//!
//! The trees (all mtimes `1577934245.123456789`, owned by root unless noted):
//! * `t1`: `empty/`, `hello.txt` = "hello\n", `link -> hello.txt`, `sub/a.txt` = "abc" (0640),
//!   `sub/zero` (empty); made with the default flags, `--with=unix` and `--without=all`.
//! * `t2`: `blk` (7:0), `chr` (1:3), `d/` owned by 1000:1000 (`cloudsdk`) with a default ACL
//!   `u:1:rx`, `f` = "x\n" with xattrs `user.foo=bar`, `trusted.t1=v1` and ACL `u:1:rwx`, a
//!   FIFO; default flags and `--with=unix`.
//! * `deep63`: 63 nested directories `d`, `--without=all` (one more level fails `casync make`).
//! * `ex`: the worked example of spec §4.9.

use otasync_core::catar::*;
use otasync_core::fuzzing::decode_catar;

const DEFAULT: u64 = 0xb0000001ffeffe26;
const UNIX: u64 = 0xb000000000001f09;
const NONE: u64 = 0xb000000000000000;
const MTIME: u64 = 1_577_934_245_123_456_789;

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/catar/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

/// `(path, mode)` of every node, in archive order.
fn listing(bytes: &[u8]) -> Vec<(String, u32)> {
    let (events, end) = decode_catar(bytes, &[]);
    end.unwrap();
    let mut dirs: Vec<String> = Vec::new();
    let mut name = String::from(".");
    let mut out = Vec::new();
    for event in events {
        match event {
            Event::Filename(n) => {
                let n = String::from_utf8(n).unwrap();
                name = match dirs.last() {
                    Some(d) if d != "." => format!("{d}/{n}"),
                    _ => n,
                };
            }
            Event::Entry(e) => {
                out.push((name.clone(), e.mode));
                if FileType::from_mode(e.mode.into()) == Some(FileType::Directory) {
                    dirs.push(name.clone());
                }
            }
            Event::EndDirectory => {
                dirs.pop();
            }
            _ => {}
        }
    }
    out
}

#[test]
fn casync_made_archives_decode() {
    let t1 = |dir, file, sub_a, link: bool| {
        let mut v = vec![
            (".", S_IFDIR | dir),
            ("empty", S_IFDIR | dir),
            ("hello.txt", S_IFREG | file),
        ];
        if link {
            v.push(("link", S_IFLNK | 0o777));
        }
        v.extend([
            ("sub", S_IFDIR | dir),
            ("sub/a.txt", S_IFREG | sub_a),
            ("sub/zero", S_IFREG | file),
        ]);
        v.into_iter()
            .map(|(p, m)| (p.to_string(), m))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listing(&fixture("t1-default.catar")),
        t1(0o755, 0o644, 0o640, true)
    );
    assert_eq!(
        listing(&fixture("t1-unix.catar")),
        t1(0o755, 0o644, 0o640, true)
    );
    assert_eq!(
        listing(&fixture("t1-none.catar")),
        t1(0o777, 0o666, 0o666, false)
    );
    let t2: Vec<_> = [
        (".", S_IFDIR | 0o755),
        ("blk", S_IFBLK | 0o644),
        ("chr", S_IFCHR | 0o644),
        ("d", S_IFDIR | 0o755),
        ("f", S_IFREG | 0o674),
        ("fifo", S_IFIFO | 0o644),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    assert_eq!(listing(&fixture("t2-default.catar")), t2);
    assert_eq!(listing(&fixture("t2-unix.catar")), t2);
    let deep = listing(&fixture("deep63-dir.catar"));
    assert_eq!(deep.len(), 64);
    assert_eq!(deep[63].0.matches('/').count(), 62);
}

fn meta(mode: u32) -> Metadata {
    Metadata {
        entry: Entry {
            mode,
            mtime: MTIME,
            ..Entry::default()
        },
        ..Metadata::default()
    }
}

fn t1(flags: u64) -> Vec<u8> {
    let dir = meta(S_IFDIR | 0o755);
    let mut enc = Encoder::new(Vec::new(), flags, &dir).unwrap();
    enc.directory(b"empty", &dir).unwrap();
    enc.end_directory().unwrap();
    enc.file(b"hello.txt", &meta(S_IFREG | 0o644), 6).unwrap();
    enc.payload(b"hello\n").unwrap();
    enc.symlink(b"link", &meta(S_IFLNK | 0o777), b"hello.txt")
        .unwrap();
    enc.directory(b"sub", &dir).unwrap();
    enc.file(b"a.txt", &meta(S_IFREG | 0o640), 3).unwrap();
    enc.payload(b"abc").unwrap();
    enc.file(b"zero", &meta(S_IFREG | 0o644), 0).unwrap();
    enc.finish().unwrap()
}

fn t2(flags: u64) -> Vec<u8> {
    let mut d = meta(S_IFDIR | 0o755);
    d.entry.uid = 1000;
    d.entry.gid = 1000;
    d.user = Some(b"cloudsdk".to_vec());
    d.group = Some(b"cloudsdk".to_vec());
    d.acl.default = Some(AclDefault {
        user_obj: 7,
        group_obj: 5,
        other: 5,
        mask: Some(5),
    });
    let daemon = |permissions| AclEntry {
        id: 1,
        name: Some(b"daemon".to_vec()),
        permissions,
    };
    d.acl.default_users = vec![daemon(5)];
    let mut f = meta(S_IFREG | 0o674);
    f.xattrs = vec![
        (b"user.foo".to_vec(), b"bar".to_vec()),
        (b"trusted.t1".to_vec(), b"v1".to_vec()),
    ];
    f.acl.users = vec![daemon(7)];
    f.acl.group_obj = Some(4);
    let mut enc = Encoder::new(Vec::new(), flags, &meta(S_IFDIR | 0o755)).unwrap();
    enc.device(b"blk", &meta(S_IFBLK | 0o644), 7, 0).unwrap();
    enc.device(b"chr", &meta(S_IFCHR | 0o644), 1, 3).unwrap();
    enc.directory(b"d", &d).unwrap();
    enc.end_directory().unwrap();
    enc.file(b"f", &f, 2).unwrap();
    enc.payload(b"x\n").unwrap();
    enc.special(b"fifo", &meta(S_IFIFO | 0o644)).unwrap();
    enc.finish().unwrap()
}

#[test]
fn encoder_reproduces_casync() {
    assert_eq!(t1(DEFAULT), fixture("t1-default.catar"));
    assert_eq!(t1(UNIX), fixture("t1-unix.catar"));
    assert_eq!(t1(NONE), fixture("t1-none.catar"));
    assert_eq!(t2(DEFAULT), fixture("t2-default.catar"));
    assert_eq!(t2(UNIX), fixture("t2-unix.catar"));
    let dir = meta(S_IFDIR | 0o755);
    let mut enc = Encoder::new(Vec::new(), NONE, &dir).unwrap();
    for _ in 0..MAX_DEPTH {
        enc.directory(b"d", &dir).unwrap();
    }
    assert_eq!(enc.finish().unwrap(), fixture("deep63-dir.catar"));
}

#[test]
fn corrupt_archives_are_refused_with_their_error() {
    let error = |name: &str| {
        let e = decode_catar(&fixture(name), &[]).1.unwrap_err();
        (e.offset, e.kind)
    };
    assert_eq!(
        error("ex-truncated.catar"),
        (200, DecodeErrorKind::Truncated)
    );
    assert_eq!(
        error("ex-bad-tail.catar"),
        (348, DecodeErrorKind::BadGoodbyeTail)
    );
    assert_eq!(
        error("ex-slash-name.catar"),
        (64, DecodeErrorKind::BadFilename)
    );
    assert_eq!(
        error("t2-flags-mismatch.catar"),
        (
            84,
            DecodeErrorKind::FeatureFlagsMismatch {
                expected: DEFAULT,
                found: DEFAULT | 1
            }
        )
    );
    let (events, end) = decode_catar(&fixture("ex-trailing.catar"), &[]);
    assert_eq!(end, Ok(()));
    assert_eq!(events.last(), Some(&Event::TrailingData));
}
