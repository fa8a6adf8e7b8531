//! meta-otasync (`yocto-layer/`), the board configurations (`board-configs/`) and the systemd
//! units (`agent/systemd/`), checked the way bitbake, wic, U-Boot, GRUB and systemd read them,
//! without running bitbake:
//! - the crates `.inc` against `Cargo.lock`, byte for byte;
//! - every layer file parsed as bitbake statements; Python bodies, `def`s and `${@…}`
//!   expressions compiled by python3; shell functions checked by `sh -n`; tasks, includes,
//!   classes and `file://` sources resolved;
//! - the layer's Python and shell run against a small stand-in for bitbake's datastore
//!   (`datastore`): the `caibx` conversion and `do_release` drive the real `otasync` binary, the
//!   boot script is filled in and compiled by `mkimage`, the mount units are verified by
//!   `systemd-analyze`;
//! - each board's `system.json`, `fw_env.config` (read back by `fw_printenv`), `.wks.in`, GRUB
//!   files (`grub-script-check`, `grub-editenv`) and build settings against each other.

use crate::support::*;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// The layer's root directory.
fn layer() -> PathBuf {
    repo().join("yocto-layer")
}

/// Every board configuration, `board-configs/*/system.json`, sorted: each must pass
/// `otasync check-config`.
pub(crate) fn board_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(repo().join("board-configs"))
        .expect("board-configs/")
        .map(|entry| {
            entry
                .expect("board-configs entry")
                .path()
                .join("system.json")
        })
        .filter(|path| path.is_file())
        .collect();
    configs.sort();
    configs
}

/// The board directories: (name, directory).
fn boards() -> Vec<(String, PathBuf)> {
    let boards: Vec<(String, PathBuf)> = board_configs()
        .iter()
        .map(|config| {
            let dir = config.parent().expect("board directory").to_path_buf();
            let name = dir
                .file_name()
                .expect("board name")
                .to_string_lossy()
                .into_owned();
            (name, dir)
        })
        .collect();
    let names: Vec<&str> = boards.iter().map(|(name, _)| name.as_str()).collect();
    for required in ["generic-emmc", "qemuarm64", "qemux86-64", "raspberrypi4"] {
        assert!(
            names.contains(&required),
            "board-configs/{required} is missing"
        );
    }
    boards
}

/// A board's system.json.
fn system_json(board_dir: &Path) -> Value {
    let path = board_dir.join("system.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// True when `tool` can be run. CI installs every tool these tests use (.ci/run), so there a
/// missing one fails the test; elsewhere the caller skips with a message.
fn have(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} must be installed in CI (apt-get install {package})"
        );
        eprintln!("SKIPPED: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// Runs `cmd` with `input` on stdin; returns (success, stdout, stderr).
fn run_with_input(cmd: &mut Command, input: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    let out = child.wait_with_output().expect("waiting");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `systemd-analyze verify` of unit files: whether it passed without a word, and what it said.
fn systemd_verify(units: &[PathBuf]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success() && said.trim().is_empty(), said)
}

mod bitbake;
mod boards;
mod crates;
mod datastore;
mod layer;
mod tasks;
