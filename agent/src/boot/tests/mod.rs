//! Tests of the bootloader backends, against Debian's `fw_printenv`/`fw_setenv`
//! (libubootenv-tool), `mkenvimage` (u-boot-tools) and `grub-editenv` (grub-common) on files
//! and, as root, on a loop device. A missing tool skips its test with a message.

mod config;
mod custom;
mod grub;
#[path = "../../../../tests/e2e/loop_device.rs"]
mod loop_device;
mod uboot;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Whether `tool` is on PATH; prints why the test is skipped when it is not.
fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !found {
        eprintln!(
            "SKIPPED: {tool} is not installed (apt-get install u-boot-tools libubootenv-tool grub-common)"
        );
    }
    found
}

/// Runs `tool args`, which must succeed; its standard output.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `name=value` lines as printed by `fw_printenv` and `grub-editenv list`; a line without `=`
/// continues the value before it (a value with a newline).
fn parse_listing(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        match (line.split_once('='), &last) {
            (Some((name, value)), _) => {
                vars.insert(name.to_owned(), value.to_owned());
                last = Some(name.to_owned());
            }
            (None, Some(name)) => {
                let value: &mut String = vars.get_mut(name).unwrap();
                value.push('\n');
                value.push_str(line);
            }
            (None, None) => panic!("unexpected line {line:?}"),
        }
    }
    vars
}

/// A map from `(name, value)` pairs.
fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Variables as `(name, value)` pairs.
type Pairs = &'static [(&'static str, &'static str)];

/// One backend operation, for tables of steps.
type Step = fn(&mut dyn crate::boot::Bootloader) -> Result<(), crate::boot::BootError>;

fn bootnames() -> Vec<String> {
    vec!["A".into(), "B".into()]
}
