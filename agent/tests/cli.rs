//! The command line itself: help, version and usage errors with their exit codes.
//! (This integration test also makes `cargo test` build the `otasync` binary that the
//! end-to-end tests in `tests/` drive.)

use std::process::Command;

fn otasync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otasync"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_verbs() {
    let out = otasync(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["make", "extract", "digest", "info"] {
        assert!(text.contains(verb), "{verb} missing from:\n{text}");
    }
}

#[test]
fn unknown_verb_and_bad_values_are_usage_errors() {
    assert_eq!(otasync(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        otasync(&["--digest=md5", "digest", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        otasync(&["--log-level=loud", "digest", "/dev/null"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn missing_input_is_an_operation_failure_naming_the_path() {
    let out = otasync(&["digest", "/nonexistent/file"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"));
}
