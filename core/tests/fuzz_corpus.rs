//! Runs every fuzz entry point over its checked-in seed corpus (`fuzz/corpus/<target>/`), so
//! that stable CI exercises what libFuzzer runs explore further.

#[path = "../../fuzz/corpus_runner.rs"]
mod corpus_runner;

use corpus_runner::run_corpus;

#[test]
fn index_corpus() {
    run_corpus("index", otasync_core::fuzzing::index);
}

#[test]
fn chunker_corpus() {
    run_corpus("chunker", otasync_core::fuzzing::chunker);
}

#[test]
fn catar_corpus() {
    run_corpus("catar", otasync_core::fuzzing::catar);
}

#[test]
fn uboot_env_corpus() {
    run_corpus("uboot_env", otasync_core::fuzzing::uboot_env);
}

#[test]
fn grubenv_corpus() {
    run_corpus("grubenv", otasync_core::fuzzing::grubenv);
}
