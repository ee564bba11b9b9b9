//! Fuzz target for the VAST inspection: `inspect` on the whole input never
//! panics; `inspect_chunks` on the input in 1-byte frames and split in two
//! (at a position derived from the first byte) gives the same verdict (the
//! layer sees a body as the frames of a stream, the multi-source fetcher
//! sees it whole); and its well-formedness is the oracle's (roxmltree, as
//! in `tests/vast_oracle.rs`).
#![no_main]

#[path = "../../tests/support/oracle.rs"]
#[allow(dead_code)]
mod oracle;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = match data.first() {
        Some(&b) => usize::from(b) * data.len() / 256,
        None => 0,
    };
    if let Err(e) = oracle::check(data, split) {
        panic!("{e}");
    }
});
