//! ssh remoting in casync's protocol (spec §8.7), on loopback only: an OpenSSH server started
//! here (generated host and user keys, key-only, a free 127.0.0.1 port) and Debian's casync on
//! both ends. Our client pushes to and pulls from a remote casync; casync's client pulls from
//! and pushes to an `otasync pull|push` server; views over ssh match casync's local output.
//! Protocol failures (ABORT, a dropped connection, a corrupt pushed chunk) are driven without
//! ssh: a fake `$CASYNC_SSH_PATH` runs the remote command locally, or the test speaks the
//! protocol to `otasync push` itself.
//!
//! Needs the Debian packages openssh-server, openssh-client and casync, and root (sshd's
//! privilege separation directory); skipped with a message otherwise (not in CI).

use crate::support::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// An sshd on a free loopback port, killed on drop, and the ssh wrapper that reaches it.
struct Sshd {
    child: Child,
    wrapper: PathBuf,
    _dir: tempfile::TempDir,
}

fn have_ssh() -> bool {
    let have = Path::new(SSHD).exists()
        && Command::new("ssh")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssh-server and openssh-client must be installed in CI (.ci/run)"
        );
        eprintln!(
            "SKIPPED: sshd or ssh is missing (apt-get install openssh-server openssh-client)"
        );
    }
    have
}

fn keygen(path: &Path) {
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", s(path)]));
}

impl Sshd {
    /// Starts sshd, or `None` (with a message) when it cannot run here.
    fn start() -> Option<Self> {
        if !have_ssh() || !have_casync() || !is_root() {
            return None;
        }
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 AuthorizedKeysFile {keys}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nUsePAM no\n",
                host = s(&d.join("host_key")),
                pid = s(&d.join("sshd.pid")),
                keys = s(&d.join("authorized_keys")),
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("sshd.log")).unwrap();
        let mut child = Command::new(SSHD)
            .args(["-f", s(&config), "-D", "-e"])
            .stderr(log)
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sshd exited ({status}): {}",
                    fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < until, "sshd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        let wrapper = d.join("ssh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ssh -p {port} -i {key} -o StrictHostKeyChecking=no \
                 -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \"$@\"\n",
                key = s(&d.join("user_key")),
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        Some(Self {
            child,
            wrapper,
            _dir: dir,
        })
    }

    /// `cmd` reaching this sshd, with the remote side `remote` (`casync` or our binary).
    fn env<'a>(&self, cmd: &'a mut Command, remote: &str) -> &'a mut Command {
        cmd.env("CASYNC_SSH_PATH", &self.wrapper)
            .env("CASYNC_REMOTE_PATH", remote)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tree of text, random data (several chunks), a subdirectory and a symlink.
fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::write(root.join("text.txt"), text_bytes(200_000)).unwrap();
    fs::write(root.join("sub/random.bin"), random_bytes(700_000, 11)).unwrap();
    fs::write(root.join("sub/deeper/small"), b"small\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    symlink("text.txt", root.join("link")).unwrap();
}

/// `host:path` for a local path, through the loopback sshd.
fn remote(path: &Path) -> String {
    format!("127.0.0.1:{}", s(path))
}

fn casync_digest(path: &Path, store: Option<&Path>) -> String {
    let store_arg = store.map(|p| format!("--store={}", s(p)));
    let mut args: Vec<&str> = store_arg.iter().map(String::as_str).collect();
    args.extend(["digest", s(path)]);
    ok(casync(&args))
}

/// Our client pushes to a remote casync: the index and the chunks the remote store lacks go
/// over; casync extracts the result locally; a second push of a changed tree sends only the
/// changed chunks, a third none; archives go over whole.
#[test]
fn our_client_pushes_to_a_remote_casync_store() {
    let Some(sshd) = Sshd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree);
    let srv = tmp.path().join("srv");
    fs::create_dir(&srv).unwrap();
    let (index, store) = (srv.join("t.caidx"), srv.join("store"));
    let store_arg = format!("--store={}", remote(&store));
    let push = |verbose: bool| {
        let mut cmd = otasync(&[store_arg.as_str(), "make", &remote(&index), s(&tree)]);
        if verbose {
            cmd.arg("-v");
        }
        sshd.env(&mut cmd, "casync");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (digest, _) = push(false);
    assert_eq!(
        digest,
        casync_digest(&tree, None),
        "make prints the tree's digest"
    );
    let out = tmp.path().join("out");
    ok(casync(&[
        "--store",
        s(&store),
        "extract",
        s(&index),
        s(&out),
    ]));
    assert_eq!(casync_digest(&out, None), casync_digest(&tree, None));
    assert_eq!(
        ok(casync(&["mtree", s(&out)])),
        ok(casync(&["mtree", s(&tree)]))
    );
    let chunks = files_below(&store).len();
    assert!(chunks > 5, "{chunks} chunks");

    // A small change: only its chunks travel.
    fs::write(tree.join("sub/deeper/small"), b"changed\n").unwrap();
    let (_, stderr) = push(true);
    let lacked = |stderr: &str| -> usize {
        let at = stderr.find("lacked ").expect(stderr) + "lacked ".len();
        stderr[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let sent = lacked(&stderr);
    assert!(
        sent >= 1 && sent < chunks,
        "{sent} of {chunks} chunks sent:\n{stderr}"
    );
    assert_eq!(
        casync_digest(&index, Some(&store)),
        casync_digest(&tree, None)
    );
    let (_, stderr) = push(true);
    assert_eq!(lacked(&stderr), 0, "{stderr}");

    // An archive.
    let archive = srv.join("t.catar");
    let mut cmd = otasync(&["make", &remote(&archive), s(&tree)]);
    ok(sshd.env(&mut cmd, "casync"));
    assert_eq!(
        ok(casync(&["list", s(&archive)])),
        ok(casync(&["list", s(&tree)]))
    );
    // A store on another host than the index, or a local one, is refused up front: casync's
    // protocol cannot upload the chunks, and its server never finishes an index pushed alone.
    for store in [format!("otherhost:{}", s(&store)), s(&store).to_owned()] {
        let arg = format!("--store={store}");
        let mut cmd = otasync(&[arg.as_str(), "make", &remote(&index), s(&tree)]);
        sshd.env(&mut cmd, "casync");
        let stderr = fails(cmd, 2);
        assert!(stderr.contains("same host"), "{stderr}");
    }
}

/// casync's client against our server side: it pulls (list, extract) and pushes (make of an
/// index with its chunks, and of an archive) through `otasync pull|push`.
#[test]
fn casync_client_talks_to_an_otasync_server() {
    let Some(sshd) = Sshd::start() else { return };
    let bin = otasync_path();
    let ours = s(&bin);
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree);
    let srv = tmp.path().join("srv");
    fs::create_dir(&srv).unwrap();
    let index = srv.join("t.caidx");
    ok(casync(&["make", s(&index), s(&tree)]));
    let archive = srv.join("t.catar");
    ok(casync(&["make", s(&archive), s(&tree)]));

    let mut cmd = casync(&["list", &remote(&index)]);
    let listed = ok(sshd.env(&mut cmd, ours));
    assert_eq!(listed, ok(casync(&["list", s(&tree)])));
    let mut cmd = casync(&["mtree", &remote(&archive)]);
    assert_eq!(
        ok(sshd.env(&mut cmd, ours)),
        ok(casync(&["mtree", s(&tree)]))
    );
    let out = tmp.path().join("out");
    let mut cmd = casync(&["extract", &remote(&index), s(&out)]);
    ok(sshd.env(&mut cmd, ours));
    assert_eq!(casync_digest(&out, None), casync_digest(&tree, None));

    // Pushes: casync's make over ssh into our server.
    let up = tmp.path().join("up");
    fs::create_dir(&up).unwrap();
    let pushed = up.join("u.caidx");
    let mut cmd = casync(&["make", &remote(&pushed), s(&tree)]);
    let digest = ok(sshd.env(&mut cmd, ours));
    assert_eq!(digest, casync_digest(&tree, None));
    assert_eq!(
        casync_digest(&pushed, Some(&up.join("default.castr"))),
        casync_digest(&tree, None)
    );
    // Every chunk arrived intact (our own store check).
    ok(otasync(&["verify", s(&pushed)]));
    let pushed_archive = up.join("u.catar");
    let mut cmd = casync(&["make", &remote(&pushed_archive), s(&tree)]);
    ok(sshd.env(&mut cmd, ours));
    assert_eq!(
        fs::read(&pushed_archive).unwrap(),
        fs::read(&archive).unwrap()
    );
}

/// list, mtree, digest (of archives, archive indexes and a blob index), extract and diff over
/// ssh from a remote casync, compared with casync's output on the same files locally.
#[test]
fn views_over_ssh_match_casync_locally() {
    let Some(sshd) = Sshd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree);
    let srv = tmp.path().join("srv");
    fs::create_dir(&srv).unwrap();
    let (index, archive) = (srv.join("t.caidx"), srv.join("t.catar"));
    ok(casync(&["make", s(&index), s(&tree)]));
    ok(casync(&["make", s(&archive), s(&tree)]));
    let blob = tmp.path().join("blob.img");
    fs::write(&blob, random_bytes(1 << 20, 5)).unwrap();
    let blob_index = srv.join("b.caibx");
    ok(casync(&["make", s(&blob_index), s(&blob)]));

    for input in [&index, &archive] {
        for verb in ["list", "mtree", "digest"] {
            let mut cmd = otasync(&[verb, &remote(input)]);
            let ours = ok(sshd.env(&mut cmd, "casync"));
            assert_eq!(
                ours,
                ok(casync(&[verb, s(input)])),
                "{verb} {}",
                input.display()
            );
        }
        let mut cmd = otasync(&["diff", &remote(input), s(&tree)]);
        assert_eq!(
            ok(sshd.env(&mut cmd, "casync")),
            "",
            "diff {}",
            input.display()
        );
    }
    let mut cmd = otasync(&["digest", &remote(&blob_index)]);
    assert_eq!(
        ok(sshd.env(&mut cmd, "casync")),
        ok(casync(&["digest", s(&blob_index)]))
    );
    let out = tmp.path().join("blob.out");
    let mut cmd = otasync(&["extract", &remote(&blob_index), s(&out)]);
    ok(sshd.env(&mut cmd, "casync"));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&blob).unwrap());
    let dir = tmp.path().join("extracted");
    let mut cmd = otasync(&["extract", &remote(&index), s(&dir)]);
    ok(sshd.env(&mut cmd, "casync"));
    assert_eq!(casync_digest(&dir, None), casync_digest(&tree, None));
}

/// A fake `$CASYNC_SSH_PATH` that runs the remote command here; with `cut`, the connection
/// drops (the server is killed) after that many bytes from it.
fn fake_ssh(dir: &Path, cut: Option<usize>) -> PathBuf {
    let path = dir.join("fake-ssh");
    let run = match cut {
        None => "exec \"$@\"".to_owned(),
        Some(n) => format!("exec \"$@\" > >(stdbuf -o0 head -c {n}; kill $$)"),
    };
    fs::write(&path, format!("#!/bin/bash\nshift\n{run}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An ABORT from the server and a connection cut mid-transfer end with a clear error, a
/// non-zero exit and no output file.
#[test]
fn aborts_and_dropped_connections_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("blob.img");
    fs::write(&blob, random_bytes(2 << 20, 9)).unwrap();
    let index = tmp.path().join("b.caibx");
    ok(otasync(&["make", s(&index), s(&blob)]));
    let bin = otasync_path();

    // The server cannot open the index: it ABORTs with the reason.
    let ssh = fake_ssh(tmp.path(), None);
    let missing = format!("h:{}", s(&tmp.path().join("nope.caibx")));
    let out = tmp.path().join("out.img");
    let mut cmd = otasync(&["extract", &missing, s(&out)]);
    cmd.env("CASYNC_SSH_PATH", &ssh)
        .env("CASYNC_REMOTE_PATH", &bin);
    let stderr = fails(cmd, 1);
    assert!(
        stderr.contains("aborted") && stderr.contains("nope.caibx"),
        "{stderr}"
    );
    assert!(!out.exists());

    // The connection drops after 300 KiB: the chunks in flight never arrive.
    let cut = tmp.path().join("cut");
    fs::create_dir(&cut).unwrap();
    let ssh = fake_ssh(&cut, Some(300_000));
    let mut cmd = otasync(&["extract", &format!("h:{}", s(&index)), s(&out)]);
    cmd.env("CASYNC_SSH_PATH", &ssh)
        .env("CASYNC_REMOTE_PATH", &bin);
    let out_ = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out_.stderr);
    assert!(!out_.status.success(), "{stderr}");
    assert!(
        stderr.contains("closed") || stderr.contains("ended"),
        "{stderr}"
    );
    // Only the resumable `.#out.img.partial` may be left, never the output itself.
    assert!(!out.exists(), "no partial output under the output's name");
    // The same through the whole pipe works.
    let ssh = fake_ssh(&cut, None);
    let mut cmd = otasync(&["extract", &format!("h:{}", s(&index)), s(&out)]);
    ok(cmd
        .env("CASYNC_SSH_PATH", &ssh)
        .env("CASYNC_REMOTE_PATH", &bin));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&blob).unwrap());
}

/// Frames as the protocol lays them out (spec §8.7).
fn frame(kind: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = (16 + payload.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn read_frame(r: &mut (impl Read + ?Sized)) -> Option<(u64, Vec<u8>)> {
    let mut h = [0u8; 16];
    r.read_exact(&mut h).ok()?;
    let size = u64::from_le_bytes(h[..8].try_into().unwrap());
    let kind = u64::from_le_bytes(h[8..].try_into().unwrap());
    let mut p = vec![0u8; (size - 16) as usize];
    r.read_exact(&mut p).ok()?;
    Some((kind, p))
}

const HELLO: u64 = 0x3c71d0948ca5fbee;
const INDEX: u64 = 0xb32a91dd2b3e27f8;
const INDEX_EOF: u64 = 0x4f0932f1043718f5;
const REQUEST: u64 = 0x8ab427e0f89d9210;
const CHUNK: u64 = 0x5213dd180a84bc8c;
const ABORT: u64 = 0xe7d9136b7efea352;

/// A pushing client whose chunk does not match its id: `otasync push` ABORTs, exits non-zero,
/// stores nothing and installs no index. A frame announcing 1 TiB is refused before reading.
#[test]
fn push_server_verifies_every_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("blob.img");
    fs::write(&blob, random_bytes(300_000, 3)).unwrap();
    let index = tmp.path().join("b.caibx");
    ok(otasync(&[
        "make",
        "--store",
        s(&tmp.path().join("src.castr")),
        s(&index),
        s(&blob),
    ]));
    let target = tmp.path().join("pushed.caibx");
    let store = tmp.path().join("dst.castr");
    let run = |client: &dyn Fn(&mut dyn Write, &mut dyn Read)| {
        let mut child = otasync(&["push", "-", "-", s(&target), s(&store)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        client(&mut input, &mut output);
        drop(input);
        child.wait_with_output().unwrap()
    };
    let out = run(&|w, r| {
        w.write_all(&frame(HELLO, &0xe00u64.to_le_bytes())).unwrap();
        w.write_all(&frame(INDEX, &fs::read(&index).unwrap()))
            .unwrap();
        w.write_all(&frame(INDEX_EOF, &[])).unwrap();
        let (kind, hello) = read_frame(r).unwrap();
        assert_eq!((kind, hello), (HELLO, 0x0au64.to_le_bytes().to_vec()));
        let (kind, request) = read_frame(r).unwrap();
        assert_eq!(kind, REQUEST);
        // Answer the first request with someone else's bytes.
        let mut chunk = 0u64.to_le_bytes().to_vec();
        chunk.extend_from_slice(&request[8..40]);
        chunk.extend_from_slice(b"not the chunk");
        w.write_all(&frame(CHUNK, &chunk)).unwrap();
        w.flush().unwrap();
        let (kind, reason) = read_frame(r).unwrap();
        assert_eq!(kind, ABORT, "{}", String::from_utf8_lossy(&reason));
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(!target.exists(), "no index installed");
    assert!(files_below(&store).is_empty(), "nothing stored");

    let out = run(&|w, r| {
        w.write_all(&frame(HELLO, &0xe00u64.to_le_bytes())).unwrap();
        let mut huge = (1u64 << 40).to_le_bytes().to_vec();
        huge.extend_from_slice(&INDEX.to_le_bytes());
        w.write_all(&huge).unwrap();
        w.flush().unwrap();
        let _ = read_frame(r);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("frame size"), "{stderr}");
    assert!(!target.exists());
}
