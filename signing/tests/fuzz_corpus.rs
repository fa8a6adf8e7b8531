//! Runs every fuzz entry point over its checked-in seed corpus (`fuzz/corpus/<target>/`), so
//! that stable CI exercises what libFuzzer runs explore further.

#[path = "../../fuzz/corpus_runner.rs"]
mod corpus_runner;

use corpus_runner::run_corpus;

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
