//! CI guard: otasync-core and otasync-signing build into a no_std staticlib (ci/nostd-probe).
//! If anything in their dependency graphs links std, the probe fails with E0152 (duplicate
//! `panic_impl`).

use std::path::Path;
use std::process::Command;

#[test]
fn core_builds_without_std() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path"])
        .arg(root.join("ci/nostd-probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target/nostd-probe"))
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "otasync-core or otasync-signing no longer builds without std:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
