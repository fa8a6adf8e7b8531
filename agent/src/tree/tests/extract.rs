//! Extraction: faithful (by `casync digest`), subtrees, hostile archives, privileges.

use super::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

#[test]
fn extract_is_faithful() {
    if !have_casync() {
        return;
    }
    let fx = fixture(&[]);
    let archive = ours(&fx.src, flags_for(&[], &[]));
    let out = fx.tmp.path().join("out");
    let report = extract_tree(
        &archive[..],
        Path::new("archive"),
        &out,
        &ExtractOptions::default(),
    )
    .unwrap();
    if is_root() {
        assert!(report.skipped.is_empty(), "{}", report.skipped);
    } else {
        eprintln!("not root: {}", report.skipped);
    }
    assert_same_tree(&out, &fx.src);
    // Extracting again over the existing tree replaces what is there.
    fs::write(out.join("hello.txt"), b"changed").unwrap();
    let extra = out.join("dir/extra");
    fs::write(&extra, b"not in the archive").unwrap();
    let opts = ExtractOptions {
        delete: true,
        ..ExtractOptions::default()
    };
    extract_tree(&archive[..], Path::new("archive"), &out, &opts).unwrap();
    assert!(!extra.exists());
    assert_same_tree(&out, &fx.src);
    // casync's own archive extracts the same.
    let out2 = fx.tmp.path().join("out2");
    extract_tree(
        open(&fx.archive),
        &fx.archive,
        &out2,
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_same_tree(&out2, &fx.src);
}

#[test]
fn nodes_lose_acls_inherited_from_an_existing_target() {
    if !have_casync() || !have("setfacl") {
        eprintln!("SKIPPED: needs casync and setfacl");
        return;
    }
    let fx = fixture(&[]);
    let archive = ours(&fx.src, flags_for(&[], &[]));
    // An existing target whose default ACL every new node would inherit.
    let out = fx.tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    run(
        "setfacl",
        &[os("-d"), os("-m"), os("u:7:rwx"), out.as_os_str()],
    );
    extract_tree(
        &archive[..],
        Path::new("archive"),
        &out,
        &ExtractOptions::default(),
    )
    .unwrap();
    // The target's own default ACL is replaced by the archive's root (which has none).
    assert_same_tree(&out, &fx.src);
    let acl = Command::new("getfacl")
        .args(["-R", "-p", "-s"])
        .arg(out.join("hello.txt"))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&acl.stdout).contains("user:7:"),
        "hello.txt kept the inherited ACL"
    );
}

#[test]
fn extract_subtree_as_child() {
    if !have_casync() {
        return;
    }
    let fx = fixture(&[]);
    let out = fx.tmp.path().join("out");
    let opts = ExtractOptions {
        subpath: b"dir/sub".to_vec(),
        ..ExtractOptions::default()
    };
    extract_tree(open(&fx.archive), &fx.archive, &out, &opts).unwrap();
    // The parent's .caexclude applies inside the archive: compare with casync's extraction.
    let theirs = fx.tmp.path().join("theirs");
    casync(&[
        os("extract"),
        fx.archive.as_os_str(),
        theirs.as_os_str(),
        os("dir/sub"),
    ]);
    assert_same_tree(&out.join("sub"), &theirs.join("sub"));
    let opts = ExtractOptions {
        subpath: b"hello.txt".to_vec(),
        ..ExtractOptions::default()
    };
    let out = fx.tmp.path().join("out-file");
    extract_tree(open(&fx.archive), &fx.archive, &out, &opts).unwrap();
    assert_eq!(fs::read(out.join("hello.txt")).unwrap(), b"hello\n");
    let opts = ExtractOptions {
        subpath: b"missing".to_vec(),
        ..ExtractOptions::default()
    };
    assert!(matches!(
        extract_tree(
            open(&fx.archive),
            &fx.archive,
            &fx.tmp.path().join("x"),
            &opts
        ),
        Err(TreeError::NotFound(_))
    ));
}

#[test]
fn extract_never_follows_existing_symlinks() {
    if !have_casync() {
        return;
    }
    let fx = fixture(&[]);
    let out = fx.tmp.path().join("out");
    let victim = fx.tmp.path().join("victim");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir(&victim).unwrap();
    // An existing symlink where the archive has a directory must not be followed.
    symlink(&victim, out.join("dir")).unwrap();
    let r = extract_tree(
        open(&fx.archive),
        &fx.archive,
        &out,
        &ExtractOptions::default(),
    );
    assert!(r.is_err());
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
}

/// An archive whose root holds a symlink `d` → `victim` and then, under a second FILENAME
/// `d` (names are not re-checked for order when decoding), a directory with a file: the
/// extractor must refuse to go through the symlink.
#[test]
fn hostile_duplicate_name_through_symlink_is_refused() {
    use otasync_core::catar::{Encoder, Entry, Metadata, S_IFDIR, S_IFLNK, S_IFREG};
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let meta = |mode| Metadata {
        entry: Entry {
            mode,
            ..Entry::default()
        },
        ..Metadata::default()
    };
    let mut enc = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &meta(S_IFDIR | 0o755)).unwrap();
    enc.symlink(b"d", &meta(S_IFLNK | 0o777), victim.as_os_str().as_bytes())
        .unwrap();
    enc.directory(b"e", &meta(S_IFDIR | 0o755)).unwrap();
    enc.file(b"f", &meta(S_IFREG | 0o644), 4).unwrap();
    enc.payload(b"evil").unwrap();
    let mut archive = enc.finish().unwrap();
    // Rename the FILENAME "e" to "d".
    let pat: Vec<u8> = [
        &18u64.to_le_bytes()[..],
        &0x6dbb6ebcb3161f0bu64.to_le_bytes(),
        b"e\0",
    ]
    .concat();
    let at = archive.windows(pat.len()).position(|w| w == pat).unwrap();
    archive[at + 16] = b'd';
    let out = tmp.path().join("out");
    let r = extract_tree(
        &archive[..],
        Path::new("hostile"),
        &out,
        &ExtractOptions::default(),
    );
    assert!(r.is_err(), "{r:?}");
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
    // Truncated archives fail instead of hanging.
    let good = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &meta(S_IFDIR | 0o755))
        .unwrap()
        .finish()
        .unwrap();
    for cut in [0, 10, 64, good.len() - 1] {
        let r = extract_tree(
            &good[..cut],
            Path::new("cut"),
            &tmp.path().join("cut"),
            &ExtractOptions::default(),
        );
        assert!(matches!(r, Err(TreeError::Archive { .. })), "{cut}: {r:?}");
        let mut sink = Vec::new();
        assert!(list(&good[..cut], Path::new("cut"), &mut sink, true, b"").is_err());
    }
}

/// Privileged metadata: restored as root, counted as skipped otherwise.
#[test]
fn privileged_metadata_restored_or_reported() {
    use otasync_core::catar::{Encoder, Entry, Metadata, S_IFCHR, S_IFDIR, S_IFREG};
    let tmp = tempfile::tempdir().unwrap();
    let meta = |mode, uid| Metadata {
        entry: Entry {
            mode,
            uid,
            gid: uid,
            mtime: 1_577_934_245_123_456_789,
            ..Entry::default()
        },
        ..Metadata::default()
    };
    let mut file = meta(S_IFREG | 0o640, 1);
    file.xattrs = vec![
        (b"trusted.t".to_vec(), b"1".to_vec()),
        (b"user.u".to_vec(), b"2".to_vec()),
    ];
    let mut enc = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &meta(S_IFDIR | 0o755, 0)).unwrap();
    enc.device(b"c", &meta(S_IFCHR | 0o600, 0), 1, 3).unwrap();
    enc.file(b"f", &file, 1).unwrap();
    enc.payload(b"x").unwrap();
    let archive = enc.finish().unwrap();
    let out = tmp.path().join("out");
    let report = extract_tree(
        &archive[..],
        Path::new("a"),
        &out,
        &ExtractOptions::default(),
    )
    .unwrap();
    let f = out.join("f");
    assert_eq!(fs::read(&f).unwrap(), b"x");
    let md = fs::symlink_metadata(&f).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mtime_nsec(&md), 123_456_789);
    if is_root() {
        assert!(report.skipped.is_empty(), "{}", report.skipped);
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), 1);
        assert!(out.join("c").exists());
    } else {
        eprintln!("not root: checking that privileged metadata is reported as skipped");
        assert!(report.skipped.ownership >= 1, "{report:?}");
        assert_eq!(report.skipped.devices, 1, "{report:?}");
        assert_eq!(report.skipped.xattrs, 1, "{report:?}");
        assert!(!out.join("c").exists());
    }
}
