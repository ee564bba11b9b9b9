//! Fuzz target for the VAST inspection: `inspect` on the whole input never
//! panics, and `inspect_chunks` on the input split in two (at a position
//! derived from the first byte) gives the same verdict: the layer, which
//! sees a body as the frames of a stream, and the multi-source fetcher,
//! which sees it whole, must agree.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vast_metrics::vast::{inspect, inspect_chunks};

fuzz_target!(|data: &[u8]| {
    let whole = inspect(data);
    let split = match data.first() {
        Some(&b) => usize::from(b) * data.len() / 256,
        None => 0,
    };
    let (head, tail) = data.split_at(split);
    let chunks = [Bytes::copy_from_slice(head), Bytes::copy_from_slice(tail)];
    assert_eq!(
        whole,
        inspect_chunks(&chunks),
        "split at {split} of {}",
        data.len()
    );
    // One chunk per byte for short inputs: the most fragmented stream.
    if data.len() <= 64 {
        let bytes: Vec<Bytes> = data.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        assert_eq!(whole, inspect_chunks(&bytes), "byte by byte");
    }
});
