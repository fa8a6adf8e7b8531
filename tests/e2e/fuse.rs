//! FUSE: `mount` of a `.caidx` (local and HTTP store) and a `.catar`, compared with the tree
//! they were made of entry by entry (type, mode, owner, mtime, size, contents, symlink target,
//! device number, xattrs, ACLs) and by `digest`; `mkdev` of an ext4 image's `.caibx`, loop-mounted
//! and read, also from a seed alone; unmounting on SIGTERM, SIGINT and from outside.
//!
//! Needs root and /dev/fuse (skipped with a message otherwise), and the Debian packages fuse3,
//! acl, attr and e2fsprogs. Every mount is undone by a guard, even when an assertion fails.

use crate::support::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// True when FUSE mounts can be made here (root and /dev/fuse); says so when not.
fn fuse_available() -> bool {
    if !is_root() {
        return false;
    }
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: /dev/fuse is missing");
        return false;
    }
    true
}

fn sh(cmd: &str) {
    let status = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(status.success(), "{cmd}");
}

/// True when `path` is a mount point in /proc/mounts.
fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let want = s(path);
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1).is_some_and(|m| m == want))
}

/// Waits up to 10 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// A running `otasync mount` or `mkdev`: stopped with SIGTERM when dropped, and the mount
/// removed by force if it is still there.
struct Mounted {
    child: Child,
    dir: PathBuf,
    /// What the command printed first ("Mounted: …" or "Attached: …").
    line: String,
    /// Reads the command's stderr while it runs (a full pipe would block it).
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Mounted {
    /// Runs otasync with `args` and waits for its first line of output.
    fn start(args: &[&str], dir: &Path) -> Self {
        let mut child = otasync(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut mounted = Self {
            child,
            dir: dir.to_path_buf(),
            line: String::new(),
            stderr: Some(stderr),
        };
        mounted.line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        if mounted.line.is_empty() {
            let _ = mounted.child.kill();
            let _ = mounted.child.wait();
            panic!("{args:?} did not mount: {}", mounted.stderr());
        }
        assert!(is_mounted(dir), "{} is not mounted", dir.display());
        mounted
    }

    /// What the command wrote to stderr (once it has ended).
    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Sends `signal` and waits for the process to end; returns its exit code.
    fn stop(&mut self, signal: &str) -> Option<i32> {
        sh(&format!("kill -{signal} {}", self.child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z", s(&self.dir)])
                .status();
            let _ = Command::new("umount").args(["-l", s(&self.dir)]).status();
        }
    }
}

/// A loop mount, unmounted when dropped.
struct LoopMount(PathBuf);

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        if is_mounted(&self.0) {
            let _ = Command::new("umount").args(["-l", s(&self.0)]).status();
        }
    }
}

/// Every kind of entry and metadata a mount must show.
fn build_tree(root: &Path) {
    let p = |name: &str| root.join(name);
    fs::create_dir_all(p("dir/sub")).unwrap();
    fs::create_dir(p("empty")).unwrap();
    fs::write(p("hello.txt"), b"hello\n").unwrap();
    fs::write(p("empty-file"), b"").unwrap();
    fs::write(p("dir/big.bin"), random_bytes(3_000_000, 7)).unwrap();
    fs::write(p("dir/text.txt"), text_bytes(200_000)).unwrap();
    for i in 0..200 {
        fs::write(p(&format!("dir/sub/f{i:03}")), format!("file {i}\n")).unwrap();
    }
    fs::write(root.join("a b#c\\d"), b"odd name").unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"n\xffx")),
        b"not utf-8",
    )
    .unwrap();
    fs::write(root.join("L".repeat(255)), b"long name").unwrap();
    fs::write(p("setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(p("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(p("dir/sub"), fs::Permissions::from_mode(0o2750)).unwrap();
    symlink("hello.txt", p("link")).unwrap();
    symlink("/nowhere/at/all", p("dangling")).unwrap();
    fs::hard_link(p("hello.txt"), p("hardlink")).unwrap();
    let r = s(root);
    sh(&format!(
        "cd '{r}' && mkfifo fifo && mknod blk b 7 0 && mknod chr c 1 3 \
         && chown 1:65534 dir/text.txt && chown -h 2:3 link \
         && setfattr -n user.foo -v bar hello.txt && setfattr -n trusted.t -v x dir \
         && setfattr -n user.empty dir/text.txt \
         && setfacl -m u:1:rw,g:65534:r dir/text.txt && setfacl -d -m u:1:rx dir/sub \
         && touch -h -d '2020-01-02 03:04:05.123456789' link hello.txt dir/sub"
    ));
}

/// What is compared of one entry.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    size: u64,
    rdev: u64,
    content: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Every entry below `root` (relative path → what it shows), read through the file system.
fn survey(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let ty = meta.file_type();
        let (kind, content) = if ty.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            ("dir", Vec::new())
        } else if ty.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            ("symlink", target.as_os_str().as_bytes().to_vec())
        } else if ty.is_file() {
            ("file", fs::read(&path).unwrap())
        } else if ty.is_fifo() {
            ("fifo", Vec::new())
        } else if ty.is_block_device() {
            ("block", Vec::new())
        } else {
            assert!(ty.is_char_device(), "{}", path.display());
            ("char", Vec::new())
        };
        let xattrs = if ty.is_symlink() {
            BTreeMap::new()
        } else {
            xattrs(&path)
        };
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let seen = Seen {
            kind,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            size: if ty.is_dir() { 0 } else { meta.size() },
            rdev: meta.rdev(),
            content,
            xattrs,
        };
        out.insert(rel, seen);
    }
    out
}

/// A node's xattrs (`getfattr -d -m -`), the ACLs among them.
fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "getfattr {}", path.display());
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(|l| {
            let at = l.iter().position(|&b| b == b'=').unwrap_or(l.len());
            (l[..at].to_vec(), l[at..].to_vec())
        })
        .collect()
}

/// Compares what a mount shows with the source tree, entry by entry.
fn assert_same_tree(src: &Path, mounted: &Path) {
    let want = survey(src);
    let got = survey(mounted);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "entries"
    );
    for (path, seen) in &want {
        let name = String::from_utf8_lossy(path);
        assert_eq!(&got[path], seen, "{name}");
    }
    // The ACLs as getfacl shows them (one block per file, in directory order), and the same
    // digest as the source.
    let acl = |root: &Path| {
        let out = Command::new("getfacl")
            .args(["-R", "-p", "-n", "."])
            .current_dir(root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<String>>()
    };
    let (want, got) = (acl(src), acl(mounted));
    let differ: Vec<_> = want.symmetric_difference(&got).collect();
    assert!(differ.is_empty(), "getfacl differs: {differ:#?}");
    assert!(want.iter().any(|b| b.contains("user:1:rw-")));
    assert!(want.iter().any(|b| b.contains("default:user:1:r-x")));
    assert_eq!(
        ok(otasync(&["digest", s(mounted)])),
        ok(otasync(&["digest", s(src)]))
    );
}

#[test]
fn mount_shows_the_tree_of_a_caidx_and_a_catar() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    let caidx = tmp.path().join("tree.caidx");
    let catar = tmp.path().join("tree.catar");
    // Small chunks, so that files and metadata straddle many of them.
    let sizes = "--chunk-size=4K:16K:64K";
    ok(otasync(&[sizes, &store_arg, "make", s(&caidx), s(&src)]));
    ok(otasync(&["make", s(&catar), s(&src)]));

    let mnt = tmp.path().join("mnt");
    {
        let mut m = Mounted::start(&[&store_arg, "mount", s(&caidx), s(&mnt)], &mnt);
        assert_eq!(m.line.trim(), format!("Mounted: {}", s(&mnt)));
        assert_same_tree(&src, &mnt);
        // Random access in a large file.
        let file = fs::File::open(mnt.join("dir/big.bin")).unwrap();
        let mut buf = [0u8; 10];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 2_999_990).unwrap();
        assert_eq!(&buf[..], &random_bytes(3_000_000, 7)[2_999_990..]);
        drop(file);
        assert!(fs::write(mnt.join("hello.txt"), b"x").is_err(), "read-only");
        assert!(fs::metadata(mnt.join("missing")).is_err());
        assert_eq!(m.stop("TERM"), Some(0));
        assert!(eventually(|| !is_mounted(&mnt)), "unmounted on SIGTERM");
    }
    {
        let mut m = Mounted::start(&["mount", s(&catar), s(&mnt)], &mnt);
        assert_same_tree(&src, &mnt);
        assert_eq!(m.stop("INT"), Some(0));
        assert!(eventually(|| !is_mounted(&mnt)), "unmounted on SIGINT");
    }
    // Chunks fetched over HTTP; an unmount from outside ends the process.
    let served = crate::http::Served::start(&store, &[]);
    {
        let http_store = format!("--store={}", served.base);
        let mut m = Mounted::start(&[&http_store, "mount", s(&caidx), s(&mnt)], &mnt);
        assert_eq!(
            fs::read(mnt.join("dir/text.txt")).unwrap(),
            text_bytes(200_000)
        );
        assert_eq!(
            fs::read_link(mnt.join("link")).unwrap(),
            Path::new("hello.txt")
        );
        sh(&format!("fusermount3 -u '{}'", s(&mnt)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(m.child.try_wait().unwrap().and_then(|s| s.code()), Some(0));
    }
    // A damaged archive is refused before mounting.
    let bytes = fs::read(&catar).unwrap();
    let cut = tmp.path().join("cut.catar");
    fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    fails(otasync(&["mount", s(&cut), s(&mnt)]), 3);
    assert!(!is_mounted(&mnt));
}

#[test]
fn mount_reads_ahead_across_files_with_the_right_contents() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Many small files over a few directories (archive order: by name in each).
    let mut files = Vec::new();
    for d in 0..4 {
        for f in 0..150 {
            let rel = format!("d{d}/f{f:03}");
            let len = (f * 977 + d * 131) % 40_000 + 1;
            files.push((rel, random_bytes(len, (d * 1000 + f) as u64)));
        }
    }
    for (rel, data) in &files {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    let caidx = tmp.path().join("tree.caidx");
    ok(otasync(&[
        "--chunk-size=4K:16K:64K",
        &store_arg,
        "make",
        s(&caidx),
        s(&src),
    ]));
    let mnt = tmp.path().join("mnt");
    let mut m = Mounted::start(
        &["--print-stats", &store_arg, "mount", s(&caidx), s(&mnt)],
        &mnt,
    );
    // As `find -exec cat {} +` does: list a directory, read its files in listing order, then
    // list the next one (whose files are pushed as the listing makes them known).
    let mut listed = 0;
    for d in 0..4 {
        let mut names: Vec<_> = fs::read_dir(mnt.join(format!("d{d}")))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        listed += names.len();
        // find goes on listing before cat reads: the pusher has a moment.
        std::thread::sleep(Duration::from_millis(100));
        for name in names {
            let rel = format!("d{d}/{}", name.to_string_lossy());
            let (_, data) = files.iter().find(|(r, _)| *r == rel).unwrap();
            assert!(fs::read(mnt.join(&rel)).unwrap() == *data, "{rel}");
        }
    }
    assert_eq!(listed, files.len());
    assert_eq!(m.stop("TERM"), Some(0));
    let err = m.stderr();
    let pushed: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("files handed to the kernel's cache ahead of reads: "))
        .unwrap_or_else(|| panic!("no read-ahead count in: {err}"))
        .trim()
        .parse()
        .unwrap();
    // d1..d3 (450 files) are pushed as they are listed, reading having begun; how many of d0
    // are pushed before the test reads them is a race. Pushing only after reads (without the
    // listings) reaches at most d0's 149.
    assert!(pushed >= 300, "only {pushed} files read ahead");
}

#[test]
fn mkdev_exposes_an_ext4_image_for_a_loop_mount() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("content");
    fs::create_dir_all(content.join("etc")).unwrap();
    fs::write(content.join("etc/os-release"), b"ID=otasync\n").unwrap();
    fs::write(content.join("payload.bin"), random_bytes(5_000_000, 11)).unwrap();
    let image = tmp.path().join("rootfs.img");
    sh(&format!(
        "mkfs.ext4 -q -F -b 4096 -d '{}' '{}' 32M",
        s(&content),
        s(&image)
    ));
    let store = tmp.path().join("store");
    let store_arg = format!("--store={}", s(&store));
    let index = tmp.path().join("rootfs.caibx");
    ok(otasync(&[&store_arg, "make", s(&index), s(&image)]));

    let mnt = tmp.path().join("dev");
    let mut m = Mounted::start(&[&store_arg, "mkdev", s(&index), s(&mnt)], &mnt);
    let exposed = mnt.join("rootfs");
    assert_eq!(m.line.trim(), format!("Attached: {}", s(&exposed)));
    let meta = fs::metadata(&exposed).unwrap();
    assert_eq!(meta.len(), fs::metadata(&image).unwrap().len());
    assert_eq!(meta.mode() & 0o7777, 0o444);
    assert!(fs::OpenOptions::new().write(true).open(&exposed).is_err());
    // Random access: the last bytes, then a loop mount of the whole.
    let file = fs::File::open(&exposed).unwrap();
    let mut tail = [0u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, meta.len() - 4096).unwrap();
    let whole = fs::read(&image).unwrap();
    assert_eq!(&tail[..], &whole[whole.len() - 4096..]);
    drop(file);
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    sh(&format!(
        "mount -o loop,ro '{}' '{}'",
        s(&exposed),
        s(&target)
    ));
    let mounted = LoopMount(target.clone());
    assert_eq!(
        fs::read(target.join("etc/os-release")).unwrap(),
        b"ID=otasync\n"
    );
    assert_eq!(
        fs::read(target.join("payload.bin")).unwrap(),
        random_bytes(5_000_000, 11)
    );
    drop(mounted);
    assert_eq!(fs::read(&exposed).unwrap(), whole);
    assert_eq!(m.stop("TERM"), Some(0));
    assert!(eventually(|| !is_mounted(&mnt)));
    drop(m);

    // From a seed alone: an empty store, every chunk read (and checked) from the image.
    let empty = tmp.path().join("empty-store");
    fs::create_dir(&empty).unwrap();
    let seed = format!("--seed={}", s(&image));
    let empty_arg = format!("--store={}", s(&empty));
    let mut m = Mounted::start(
        &[
            &empty_arg,
            &seed,
            "--print-stats",
            "mkdev",
            s(&index),
            s(&mnt),
        ],
        &mnt,
    );
    assert_eq!(fs::read(&exposed).unwrap(), whole);
    assert_eq!(m.stop("TERM"), Some(0));
    let stats = m.stderr();
    assert!(stats.contains("0 from stores, 0 failed"), "{stats}");
    // The next mount must not land on this one before it is gone.
    assert!(eventually(|| !is_mounted(&mnt)));
    drop(m);

    // Without the seed the same empty store fails the reads, not the mount.
    let mut m = Mounted::start(&[&empty_arg, "mkdev", s(&index), s(&mnt)], &mnt);
    assert!(fs::read(&exposed).is_err());
    assert_eq!(m.stop("TERM"), Some(0));
}
