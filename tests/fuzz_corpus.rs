//! Replays the committed fuzz corpus (`fuzz/corpus/inspect/`) and the
//! inputs the fuzzer once broke the inspection with
//! (`fuzz/regressions/inspect/`) without a nightly toolchain: each input's
//! verdict is the same whole, in one frame, in 1-byte frames and split in
//! two, and its well-formedness is the oracle's.

#[path = "support/oracle.rs"]
#[allow(dead_code)]
mod oracle;

use std::path::Path;

use bytes::Bytes;
use vast_metrics::vast::{inspect, inspect_chunks};

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn replay(dir: &str) -> usize {
    let inputs = inputs(dir);
    for (name, doc) in &inputs {
        assert_eq!(
            inspect_chunks(&[Bytes::copy_from_slice(doc)]),
            inspect(doc),
            "{dir}/{name}"
        );
        for split in [0, doc.len() / 2, doc.len().saturating_sub(1)] {
            if let Err(e) = oracle::check(doc, split) {
                panic!("{dir}/{name}: {e}");
            }
        }
    }
    inputs.len()
}

#[test]
fn corpus_agrees_with_the_oracle() {
    assert!(replay("fuzz/corpus/inspect") >= 9);
}

#[test]
fn regressions_agree_with_the_oracle() {
    replay("fuzz/regressions/inspect");
}
