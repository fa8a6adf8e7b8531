//! Tests against Debian's `casync` (/usr/bin/casync): byte-identical archives, identical
//! list/mtree/stat/digest output, and extraction that `casync digest` cannot tell apart.
//! Parts that need root (devices, chown, trusted.* xattrs, fcaps) are skipped with a message
//! otherwise; everything is skipped when casync is not installed.

use super::*;

mod extract;
mod views;
use otasync_core::DigestAlgorithm;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::process::Command;

pub(super) const CASYNC: &str = "/usr/bin/casync";

pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub(super) fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(super) fn have_casync() -> bool {
    if Path::new(CASYNC).exists() {
        return true;
    }
    eprintln!("SKIPPED: {CASYNC} not installed");
    false
}

/// Runs casync, returns stdout; panics with stderr on failure.
pub(super) fn casync(args: &[&OsStr]) -> Vec<u8> {
    let out = Command::new(CASYNC).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "casync {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub(super) fn run(cmd: &str, args: &[&OsStr]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

pub(super) fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A tree with every kind of entry and metadata we can make here.
pub(super) fn build_tree(root: &Path) {
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("dir/sub/deeper")).unwrap();
    fs::create_dir(p("empty")).unwrap();
    fs::write(p("hello.txt"), b"hello\n").unwrap();
    fs::write(p("dir/a.txt"), b"abc").unwrap();
    fs::write(p("dir/.caexclude"), b"*.o\n!keep.o\n/anchored\nbuild/\n").unwrap();
    fs::write(p("dir/x.o"), b"object").unwrap();
    fs::write(p("dir/keep.o"), b"kept").unwrap();
    fs::write(p("dir/anchored"), b"gone").unwrap();
    fs::write(p("dir/sub/anchored"), b"stays").unwrap();
    fs::write(p("dir/sub/y.o"), b"gone too").unwrap();
    fs::create_dir(p("dir/build")).unwrap();
    fs::write(p("dir/build/in"), b"gone").unwrap();
    fs::write(p("dir/sub/build"), b"a file named build stays").unwrap();
    fs::write(p("empty-file"), b"").unwrap();
    fs::write(p("setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(p("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(p("dir/sub"), fs::Permissions::from_mode(0o2750)).unwrap();
    fs::create_dir(p("sticky")).unwrap();
    fs::set_permissions(p("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("hello.txt", p("link")).unwrap();
    symlink("../../outside target #1", p("dir/sub/dangling")).unwrap();
    fs::hard_link(p("hello.txt"), p("hardlink")).unwrap();
    // Sparse: 1 MiB hole, then data.
    let f = fs::File::create(p("sparse")).unwrap();
    f.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"end", 1 << 20).unwrap();
    // Names: non-UTF-8, 255 bytes, spaces and specials.
    fs::write(root.join(OsStr::from_bytes(b"n\xffx")), b"raw").unwrap();
    fs::write(root.join("a b#ü\\x"), b"esc").unwrap();
    fs::write(root.join("L".repeat(255)), b"long").unwrap();
    // Deep nesting (40 levels).
    let mut deep = p("deep");
    for i in 0..40 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"leaf").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::os::unix::net::UnixListener::bind(p("sock")).unwrap();
    run(
        "setfattr",
        &[
            os("-n"),
            os("user.foo"),
            os("-v"),
            os("bar"),
            p("hello.txt").as_os_str(),
        ],
    );
    run(
        "setfattr",
        &[
            os("-n"),
            os("user.abc"),
            os("-v"),
            os("0x00ff20"),
            p("dir").as_os_str(),
        ],
    );
    if have("chattr") {
        run("chattr", &[os("+A"), p("dir/a.txt").as_os_str()]);
    }
    if have("setfacl") {
        run(
            "setfacl",
            &[os("-m"), os("u:1:rw,g:65534:r"), p("dir/a.txt").as_os_str()],
        );
        run(
            "setfacl",
            &[
                os("-d"),
                os("-m"),
                os("u:1:rx,o::-"),
                p("dir/sub").as_os_str(),
            ],
        );
    } else {
        eprintln!("SKIPPED ACLs: setfacl (Debian package acl) not installed");
    }
    if is_root() {
        for (name, ty, dev) in [
            (
                "blk",
                rustix::fs::FileType::BlockDevice,
                rustix::fs::makedev(7, 0),
            ),
            (
                "chr",
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::makedev(1, 3),
            ),
        ] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p(name).as_path(),
                ty,
                rustix::fs::Mode::from_raw_mode(0o644),
                dev,
            )
            .unwrap();
        }
        std::os::unix::fs::lchown(p("dir/a.txt"), Some(1), Some(65534)).unwrap();
        std::os::unix::fs::lchown(p("link"), Some(1), Some(1)).unwrap();
        std::os::unix::fs::lchown(p("empty-file"), Some(4242), Some(4243)).unwrap();
        run(
            "setfattr",
            &[
                os("-n"),
                os("trusted.t1"),
                os("-v"),
                os("x"),
                p("hello.txt").as_os_str(),
            ],
        );
        if have("setcap") {
            run("setcap", &[os("cap_net_raw+ep"), p("setuid").as_os_str()]);
            // setcap clears setuid; put it back.
            fs::set_permissions(p("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        }
    } else {
        eprintln!("SKIPPED root-only tree parts (devices, chown, trusted.*, fcaps): not root");
    }
    // chattr +d: excluded by default.
    if have("chattr") {
        fs::write(p("nodump"), b"skip me").unwrap();
        run("chattr", &[os("+d"), p("nodump").as_os_str()]);
    }
}

pub(super) fn ours(dir: &Path, flags: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_tree(dir, flags, None, &mut out).unwrap();
    out
}

pub(super) fn flags_for(with: &[&str], without: &[&str]) -> u64 {
    default_flags(
        with,
        without,
        DigestAlgorithm::Sha512_256,
        Excludes::default(),
    )
    .unwrap()
}

pub(super) fn compare_make(with: &[&str], without: &[&str]) {
    if !have_casync() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let theirs = tmp.path().join("theirs.catar");
    let mut args: Vec<OsString> = Vec::new();
    args.extend(with.iter().map(|w| OsString::from(format!("--with={w}"))));
    args.extend(
        without
            .iter()
            .map(|w| OsString::from(format!("--without={w}"))),
    );
    args.extend([
        OsString::from("make"),
        theirs.clone().into(),
        src.clone().into(),
    ]);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    casync(&refs);
    let expected = fs::read(&theirs).unwrap();
    let got = ours(&src, flags_for(with, without));
    if got != expected {
        let at = got.iter().zip(&expected).position(|(a, b)| a != b);
        fs::write("/tmp/otasync-tree-ours.catar", &got).unwrap();
        fs::write("/tmp/otasync-tree-theirs.catar", &expected).unwrap();
        panic!(
            "archives differ (with {with:?} without {without:?}): {} vs {} bytes, first difference at {at:?}; saved in /tmp/otasync-tree-*.catar",
            got.len(),
            expected.len()
        );
    }
}

/// A source tree and casync's archive of it (default flags).
pub(super) struct Fixture {
    pub(super) tmp: tempfile::TempDir,
    pub(super) src: PathBuf,
    pub(super) archive: PathBuf,
}

pub(super) fn fixture(with: &[&str]) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let archive = tmp.path().join("a.catar");
    let mut args: Vec<OsString> = with.iter().map(|w| format!("--with={w}").into()).collect();
    args.extend([
        OsString::from("make"),
        archive.clone().into(),
        src.clone().into(),
    ]);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    casync(&refs);
    Fixture { tmp, src, archive }
}

pub(super) fn open(p: &Path) -> fs::File {
    fs::File::open(p).unwrap()
}

/// Every path casync lists, as raw bytes (unescaped is not needed: we pass escaped-free
/// names only to stat).
pub(super) fn listed_paths(archive: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    list(open(archive), archive, &mut out, true, b"").unwrap();
    out.split(|&b| b == b'\n')
        .filter(|l| l.len() > 11)
        .map(|l| l[11..].to_vec())
        .filter(|p| !p.contains(&b'\\'))
        .collect()
}

/// `casync digest` of a directory, after comparing `casync mtree` of it for a readable
/// difference.
pub(super) fn tree_digest(dir: &Path) -> Vec<u8> {
    casync(&[os("digest"), dir.as_os_str()])
}

pub(super) fn assert_same_tree(got: &Path, want: &Path) {
    let m = |d: &Path| String::from_utf8_lossy(&casync(&[os("mtree"), d.as_os_str()])).into_owned();
    let (g, w) = (m(got), m(want));
    for (a, b) in g.lines().zip(w.lines()) {
        assert_eq!(a, b, "mtree of {} vs {}", got.display(), want.display());
    }
    assert_eq!(g, w);
    let (dg, dw) = (tree_digest(got), tree_digest(want));
    if dg != dw {
        // Find the entry that differs: stat every path of casync archives of both trees.
        let tmp = tempfile::tempdir().unwrap();
        let cat = |d: &Path, n: &str| {
            let a = tmp.path().join(n);
            casync(&[os("make"), a.as_os_str(), d.as_os_str()]);
            a
        };
        let (ag, aw) = (cat(got, "g.catar"), cat(want, "w.catar"));
        for path in listed_paths(&aw) {
            let path = if path == b"." { Vec::new() } else { path };
            let st = |a: &Path| {
                let mut o = Vec::new();
                stat(open(a), a, &mut o, &path).unwrap();
                String::from_utf8_lossy(&o)
                    .lines()
                    .filter(|l| !l.contains("Offset:") && !l.contains("HLDigest:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(st(&ag), st(&aw), "stat {}", String::from_utf8_lossy(&path));
        }
        fs::copy(&ag, "/tmp/otasync-extract-got.catar").unwrap();
        fs::copy(&aw, "/tmp/otasync-extract-want.catar").unwrap();
        panic!("casync digest differs");
    }
}
