//! Shared helpers: run the built `otasync` and Debian's `casync`, make test data, compare trees.

pub(crate) use crate::loop_device::LoopDevice;
use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `otasync` binary built by this `cargo test` run (`target/<profile>/otasync`), or
/// `$OTASYNC_BIN`.
pub(crate) fn otasync_path() -> PathBuf {
    if let Some(bin) = std::env::var_os("OTASYNC_BIN") {
        return bin.into();
    }
    // This test runs from target/<profile>/deps/e2e-<hash>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("otasync");
    assert!(
        bin.exists(),
        "{} is missing: run the whole workspace's tests (`cargo test --workspace`), which build it",
        bin.display()
    );
    bin
}

/// A command running `otasync` with `args`.
pub(crate) fn otasync(args: &[&str]) -> Command {
    let mut cmd = Command::new(otasync_path());
    cmd.args(args)
        .env_remove("CASYNC_STORE")
        .env_remove("CASYNC_VERBOSE");
    cmd
}

/// True when Debian's casync can be run. CI installs it, so there its absence fails the test;
/// elsewhere the caller skips with a visible message.
pub(crate) fn have_casync() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    let have = *HAVE.get_or_init(|| {
        Command::new("casync")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "casync must be installed in CI (.ci/run)"
        );
        eprintln!("SKIPPED: casync is not installed (apt-get install casync)");
    }
    have
}

/// True when running as root (loop devices, FUSE). In CI, which runs as root, absence fails.
pub(crate) fn is_root() -> bool {
    let root = nix_uid() == 0;
    if !root {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIPPED: needs root");
    }
    root
}

fn nix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}

/// A command running `casync` with `args`.
pub(crate) fn casync(args: &[&str]) -> Command {
    let mut cmd = Command::new("casync");
    cmd.args(args).env_remove("CASYNC_STORE");
    cmd
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
pub(crate) fn ok(mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd`, expecting it to fail with exit code `code`; returns stderr.
pub(crate) fn fails(mut cmd: impl BorrowMut<Command>, code: i32) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A path argument as &str.
pub(crate) fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545f4914f6cdd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text-like, compressible bytes with repeats.
pub(crate) fn text_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {i}: the quick brown fox {}\n", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Relative paths of every file below `dir`, sorted.
pub(crate) fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}
