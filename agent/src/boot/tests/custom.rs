//! Custom backend: a shell script keeping RAUC's custom protocol state in files.

use super::bootnames;
use crate::boot::custom::CustomBackend;
use crate::boot::{BootError, Bootloader, BootloaderConfig, SlotBootState, open};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A script storing the primary in `primary` and each slot's state in `state.<bootname>`,
/// logging its calls to `calls`.
const SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
case "$1" in
get-primary) cat "$dir/primary" ;;
set-primary) echo "$2" > "$dir/primary"; echo good > "$dir/state.$2" ;;
get-state) cat "$dir/state.$2" ;;
set-state)
    [ "$2" = C ] && { echo "no slot C here" >&2; exit 3; }
    echo "$3" > "$dir/state.$2" ;;
*) echo "unknown command $1" >&2; exit 1 ;;
esac
"#;

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("bootloader.sh");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn slot(bootname: &str, in_order: bool, good: bool) -> SlotBootState {
    SlotBootState {
        bootname: bootname.into(),
        in_order,
        attempts_left: if good { 5 } else { 0 },
        good,
    }
}

#[test]
fn custom_script_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), SCRIPT);
    std::fs::write(dir.path().join("primary"), "A\n").unwrap();
    std::fs::write(dir.path().join("state.A"), "good\n").unwrap();
    std::fs::write(dir.path().join("state.B"), "bad\n").unwrap();
    let config = BootloaderConfig::Custom {
        script: path.clone(),
        boot_attempts: 5,
    };
    let mut boot = open(&config, &bootnames()).unwrap();
    let state = boot.state().unwrap();
    assert_eq!(state.order, ["A"]);
    assert_eq!(
        state.slots,
        [slot("A", true, true), slot("B", false, false)]
    );
    boot.set_primary("B").unwrap();
    let state = boot.state().unwrap();
    assert_eq!(state.order, ["B", "A"]);
    assert_eq!(state.slots, [slot("A", true, true), slot("B", true, true)]);
    boot.mark_bad("A").unwrap();
    boot.mark_good("B").unwrap();
    assert_eq!(
        boot.state().unwrap().slots,
        [slot("A", false, false), slot("B", true, true)]
    );
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert!(calls.contains("set-primary B\n"), "{calls}");
    assert!(
        calls.contains("set-state A bad\nset-state B good\n"),
        "{calls}"
    );
    assert!(matches!(boot.mark_bad("C"), Err(BootError::Config(_))));
}

#[test]
fn script_failures_are_errors_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), SCRIPT);
    let names = vec!["A".to_string(), "C".to_string()];
    let backend = CustomBackend::new(path.clone(), 3, names);
    let mut boot: Box<dyn Bootloader> = Box::new(backend);
    let e = boot.mark_bad("C").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, BootError::Script { .. }), "{text}");
    assert!(text.contains("set-state C bad"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(text.contains("no slot C here"), "{text}");
    // get-state printing something else.
    std::fs::write(dir.path().join("primary"), "A\n").unwrap();
    std::fs::write(dir.path().join("state.A"), "maybe\n").unwrap();
    let e = boot.state().unwrap_err();
    assert!(e.to_string().contains("not \"good\" or \"bad\""), "{e}");
    // get-primary naming an unknown slot.
    std::fs::write(dir.path().join("primary"), "Z\n").unwrap();
    assert!(
        boot.state()
            .unwrap_err()
            .to_string()
            .contains("not a configured bootname")
    );
    // A script that cannot run.
    let mut missing = CustomBackend::new(dir.path().join("missing"), 3, bootnames());
    let e = missing.set_primary("A").unwrap_err();
    assert!(e.to_string().contains("cannot run"), "{e}");
}

/// Output is bounded, and a script that hangs is killed.
#[test]
fn output_bounded_and_hangs_killed() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x >&2\n[ \"$1\" = set-primary ] && exec sleep 30\nexit 1\n",
    );
    let backend = CustomBackend::new(path, 3, bootnames());
    let e = backend
        .run_with_timeout(&["get-primary"], Duration::from_secs(10))
        .unwrap_err();
    let BootError::Script { stderr, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(stderr.len(), 4096);
    let started = Instant::now();
    let e = backend
        .run_with_timeout(&["set-primary", "A"], Duration::from_millis(300))
        .unwrap_err();
    assert!(e.to_string().contains("killed after"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
