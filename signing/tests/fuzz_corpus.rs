//! Runs every fuzz entry point over its checked-in seed corpus (`fuzz/corpus/<target>/`), so
//! that stable CI exercises what libFuzzer runs explore further.

use std::path::Path;

fn run_corpus(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        entry(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(
        count >= 3,
        "seed corpus {} has only {count} inputs",
        dir.display()
    );
}

#[test]
fn manifest_corpus() {
    run_corpus("manifest", otasync_signing::fuzzing::manifest);
}

#[test]
fn trust_root_corpus() {
    run_corpus("trust_root", otasync_signing::fuzzing::trust_root);
}

#[test]
fn signature_corpus() {
    run_corpus("signature", otasync_signing::fuzzing::signature);
}
