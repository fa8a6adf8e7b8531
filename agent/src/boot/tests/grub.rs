//! GRUB backend: RAUC semantics and interop with `grub-editenv` in both directions.

use super::{Pairs, Step, bootnames, have, parse_listing, run, s, vars};
use crate::boot::{BootError, BootState, Bootloader, BootloaderConfig, SlotBootState, open};
use otasync_core::bootenv::{Env, grub};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn backend(path: &Path) -> Box<dyn Bootloader> {
    open(
        &BootloaderConfig::Grub {
            grubenv: path.to_owned(),
        },
        &bootnames(),
    )
    .unwrap()
}

fn slot(bootname: &str, in_order: bool, bootable: bool) -> SlotBootState {
    SlotBootState {
        bootname: bootname.into(),
        in_order,
        attempts_left: u32::from(bootable),
        good: in_order && bootable,
    }
}

fn list(path: &Path) -> std::collections::BTreeMap<String, String> {
    parse_listing(&run("grub-editenv", &[s(path), "list"]))
}

/// A grubenv made by `grub-editenv create`, and its directory.
fn created() -> Option<(tempfile::TempDir, PathBuf)> {
    if !have("grub-editenv") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    run("grub-editenv", &[s(&path), "create"]);
    Some((dir, path))
}

/// grub-editenv's variables (with a backslash and a newline in a value) read by us; our
/// commits read by grub-editenv, its variables kept; each commit a whole 1024-byte file
/// replaced by rename, with the original permissions and no temporary file left.
#[test]
fn grub_editenv_and_ours_both_ways() {
    let Some((dir, path)) = created() else {
        return;
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    run(
        "grub-editenv",
        &[
            s(&path),
            "set",
            "ORDER=A B",
            "A_OK=1",
            "A_TRY=0",
            "B_OK=1",
            "B_TRY=1",
            "WEIRD=a\\b\nc\\",
        ],
    );
    let mut boot = backend(&path);
    assert_eq!(
        boot.state().unwrap(),
        BootState {
            order: vec!["A".into(), "B".into()],
            slots: vec![slot("A", true, true), slot("B", true, false)]
        }
    );
    let steps: [(Step, Pairs); 3] = [
        (|b| b.mark_bad("B"), &[("B_OK", "0"), ("B_TRY", "0")]),
        (
            |b| b.set_primary("B"),
            &[("B_OK", "1"), ("B_TRY", "0"), ("ORDER", "B A")],
        ),
        (|b| b.mark_good("A"), &[]),
    ];
    let mut expected = vars(&[
        ("ORDER", "A B"),
        ("A_OK", "1"),
        ("A_TRY", "0"),
        ("B_OK", "1"),
        ("B_TRY", "1"),
        ("WEIRD", "a\\b\nc\\"),
    ]);
    for (step, changes) in steps {
        let inode = std::fs::metadata(&path).unwrap();
        step(boot.as_mut()).unwrap();
        expected.extend(vars(changes));
        assert_eq!(list(&path), expected);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1024);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Replaced (new inode) when something changed, untouched otherwise.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.ino() == inode.ino(), changes.is_empty());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left"
    );
    // grub-editenv edits what we wrote; we read its edits.
    run("grub-editenv", &[s(&path), "set", "A_TRY=1"]);
    run("grub-editenv", &[s(&path), "unset", "WEIRD"]);
    assert_eq!(
        boot.state().unwrap().slots,
        [slot("A", true, false), slot("B", true, true)]
    );
}

/// Values with backslashes and newlines written by our codec read back by grub-editenv, and
/// its escaping read by ours, byte for byte.
#[test]
fn escapes_agree_with_grub_editenv() {
    let Some((_dir, path)) = created() else {
        return;
    };
    let values = [
        "a\\b",
        "line1\nline2",
        "\\\n\\\\\n",
        "trailing\\",
        "x=y z",
        "",
    ];
    let mut env = Env::new();
    for (i, value) in values.iter().enumerate() {
        env.set(format!("V{i}"), value).unwrap();
    }
    std::fs::write(&path, grub::to_block(&env).unwrap()).unwrap();
    let listed = list(&path);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(listed[&format!("V{i}")], *value, "V{i}");
    }
    // grub-editenv writes them again; our parser reads the same values.
    run("grub-editenv", &[s(&path), "create"]);
    let mut args = vec![s(&path).to_owned(), "set".into()];
    args.extend(values.iter().enumerate().map(|(i, v)| format!("V{i}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("grub-editenv", &args);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(grub::parse(&bytes).unwrap(), env);
}

/// Unset variables (a fresh grubenv): no order, no slot bootable; primary creates ORDER from
/// the configured bootnames.
#[test]
fn fresh_grubenv_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    std::fs::write(&path, grub::to_block(&Env::new()).unwrap()).unwrap();
    let mut boot = backend(&path);
    assert_eq!(
        boot.state().unwrap(),
        BootState {
            order: vec![],
            slots: vec![slot("A", false, false), slot("B", false, false)]
        }
    );
    boot.set_primary("B").unwrap();
    let env = grub::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(env.get("ORDER"), Some(&b"B A"[..]));
    assert_eq!(
        boot.state().unwrap().slots,
        [slot("A", true, false), slot("B", true, true)]
    );
}

#[test]
fn damaged_grubenv_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    let mut block = grub::to_block(&Env::new()).unwrap().to_vec();
    block.pop();
    std::fs::write(&path, &block).unwrap();
    let mut boot = backend(&path);
    let e = boot.state().unwrap_err();
    assert!(matches!(e, BootError::Env { .. }), "{e}");
    assert!(e.to_string().contains("not 1024"), "{e}");
    assert!(matches!(boot.mark_bad("A"), Err(BootError::Env { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), block);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(boot.state(), Err(BootError::Io { .. })));
}
