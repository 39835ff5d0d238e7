//! Replays the committed corpus of the `c_abi` fuzz target (fuzz/corpus/c_abi) through the same
//! harness, so every input the fuzzer kept stays a regression test of the C API.

#[path = "support/c_abi.rs"]
mod c_abi;

#[test]
fn c_abi_corpus_replays_without_failures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/c_abi");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display())) {
        c_abi::run(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 50, "only {n} corpus inputs");
}
