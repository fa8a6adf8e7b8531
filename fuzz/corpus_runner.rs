//! Shared by the crates' `fuzz_corpus` tests (included with `#[path]`): runs a fuzz entry point
//! over every file of its checked-in seed corpus, `fuzz/corpus/<target>/`.

use std::path::Path;

/// Feeds every input of `fuzz/corpus/<target>/` to `entry`; the corpus must hold at least 3.
pub(crate) fn run_corpus(target: &str, entry: fn(&[u8])) {
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
