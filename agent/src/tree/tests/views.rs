//! `make`, `list`, `mtree`, `stat` and `digest` against casync.

use super::*;
use otasync_core::DigestAlgorithm;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[test]
fn make_default_flags_matches_casync() {
    compare_make(&[], &[]);
}

#[test]
fn make_with_unix_matches_casync() {
    compare_make(&["unix"], &[]);
}

#[test]
fn make_without_all_matches_casync() {
    compare_make(&[], &["all"]);
}

#[test]
fn make_with_acl_and_xattrs_matches_casync() {
    compare_make(
        &["acl", "xattrs", "nsec-time", "permissions", "symlinks"],
        &[],
    );
}

fn check_views(with: &[&str]) {
    if !have_casync() {
        return;
    }
    let fx = fixture(with);
    let a = fx.archive.as_os_str();
    let mut got = Vec::new();
    list(open(&fx.archive), &fx.archive, &mut got, true, b"").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&casync(&[os("list"), a]))
    );
    for sub in ["dir", "dir/sub", "hello.txt"] {
        got.clear();
        list(
            open(&fx.archive),
            &fx.archive,
            &mut got,
            true,
            sub.as_bytes(),
        )
        .unwrap();
        assert_eq!(got, casync(&[os("list"), a, os(sub)]), "list {sub}");
        got.clear();
        list(
            open(&fx.archive),
            &fx.archive,
            &mut got,
            false,
            sub.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            got,
            casync(&[os("--recursive=no"), os("list"), a, os(sub)]),
            "list -r {sub}"
        );
    }
    got.clear();
    mtree(
        open(&fx.archive),
        &fx.archive,
        &mut got,
        b"",
        DigestAlgorithm::Sha512_256,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&casync(&[os("mtree"), a]))
    );
    got.clear();
    mtree(
        open(&fx.archive),
        &fx.archive,
        &mut got,
        b"dir",
        DigestAlgorithm::Sha512_256,
    )
    .unwrap();
    assert_eq!(got, casync(&[os("mtree"), a, os("dir")]));
    for path in listed_paths(&fx.archive) {
        let shown = if path == b"." {
            b"".to_vec()
        } else {
            path.clone()
        };
        got.clear();
        stat(open(&fx.archive), &fx.archive, &mut got, &shown).unwrap();
        let theirs = if shown.is_empty() {
            casync(&[os("stat"), a])
        } else {
            casync(&[os("stat"), a, OsStr::from_bytes(&path)])
        };
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&theirs),
            "stat {}",
            String::from_utf8_lossy(&path)
        );
    }
    // digest: archive, directory subtree, file payload.
    for sub in ["", "dir", "dir/sub", "hello.txt", "sparse"] {
        let (d, _) = digest_stream(open(&fx.archive), &fx.archive, sub.as_bytes()).unwrap();
        let mut args = vec![os("digest"), a];
        if !sub.is_empty() {
            args.push(os(sub));
        }
        let theirs = casync(&args);
        assert_eq!(format!("{d}\n").as_bytes(), &theirs[..], "digest {sub}");
    }
    assert!(digest_stream(open(&fx.archive), &fx.archive, b"link").is_err());
    assert!(matches!(
        digest_stream(open(&fx.archive), &fx.archive, b"nope"),
        Err(TreeError::NotFound(_))
    ));
    drop(fx.tmp);
}

#[test]
fn views_match_casync_default() {
    check_views(&[]);
}

#[test]
fn views_match_casync_unix() {
    check_views(&["unix"]);
}

/// Virtual kernel file systems are not descended into (spec §4.6), and trees deeper than 63
/// levels are refused.
#[test]
fn proc_and_depth_limit() {
    if !have_casync() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let proc_dir = Path::new("/proc/sys/kernel/random");
    if proc_dir.is_dir() {
        let theirs = tmp.path().join("p.catar");
        casync(&[os("make"), theirs.as_os_str(), proc_dir.as_os_str()]);
        assert_eq!(
            ours(proc_dir, flags_for(&[], &[])),
            fs::read(&theirs).unwrap()
        );
    }
    let mut deep = tmp.path().join("deep");
    for i in 0..64 {
        deep.push(format!("{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    let mut out = Vec::new();
    let r = encode_tree(
        &tmp.path().join("deep"),
        flags_for(&[], &[]),
        None,
        &mut out,
    );
    assert!(matches!(r, Err(TreeError::Encode { .. })), "{r:?}");
    fs::remove_dir(&deep).unwrap();
    out.clear();
    encode_tree(
        &tmp.path().join("deep"),
        flags_for(&[], &[]),
        None,
        &mut out,
    )
    .unwrap();
}
