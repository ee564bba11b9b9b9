//! The oracle for the VAST inspection's well-formedness verdict: roxmltree,
//! a strict XML 1.0 + Namespaces parser (UTF-8 only, no entity but the
//! predefined ones without a DTD, DTDs refused by default), fed the bytes
//! as UTF-8, as the crate reads them.
//!
//! Where roxmltree is more lenient than the XML spec and the crate is not,
//! a document is left out of the comparison ([`oracle_is_lenient`]).

use bytes::Bytes;
use vast_metrics::vast::{inspect, inspect_chunks, VastVerdict};

/// Whether roxmltree, with its default options, accepts `doc`.
pub fn oracle_accepts(doc: &[u8]) -> bool {
    std::str::from_utf8(doc).is_ok_and(|text| roxmltree::Document::parse(text).is_ok())
}

/// Whether the crate found `doc` well-formed.
pub fn crate_accepts(verdict: VastVerdict) -> bool {
    !matches!(verdict, VastVerdict::InvalidXml | VastVerdict::Empty)
}

/// Documents the comparison skips: roxmltree reads a character reference
/// to a surrogate or past U+10FFFF (`&#xD800;`) as U+FFFD, where XML 1.0
/// (WFC: Legal Character), and the crate, reject it. Checked on the raw
/// bytes, so a reference-looking string in a comment also skips.
pub fn oracle_is_lenient(doc: &[u8]) -> bool {
    let mut rest = doc;
    while let Some(at) = rest.windows(2).position(|w| w == b"&#") {
        rest = &rest[at + 2..];
        let (radix, digits) = match rest.first() {
            Some(b'x') => (16, &rest[1..]),
            _ => (10, rest),
        };
        let end = digits
            .iter()
            .position(|b| !(*b as char).is_digit(radix))
            .unwrap_or(digits.len());
        let value = std::str::from_utf8(&digits[..end])
            .ok()
            .and_then(|d| u32::from_str_radix(d, radix).ok());
        if value.is_some_and(|v| char::from_u32(v).is_none()) {
            return true;
        }
    }
    false
}

/// `doc` in frames of `size` bytes.
pub fn frames(doc: &[u8], size: usize) -> Vec<Bytes> {
    doc.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// The crate's verdicts on `doc` whole, in 1-byte frames, and split in two
/// at `split`, agree with each other, and their well-formedness with the
/// oracle's (unless the oracle is lenient there). The verdict on success.
pub fn check(doc: &[u8], split: usize) -> Result<VastVerdict, String> {
    let whole = inspect(doc);
    let bytewise = inspect_chunks(&frames(doc, 1));
    if bytewise != whole {
        return Err(format!("whole {whole:?} but 1-byte frames {bytewise:?}"));
    }
    let at = split.min(doc.len());
    let two = inspect_chunks(&[
        Bytes::copy_from_slice(&doc[..at]),
        Bytes::copy_from_slice(&doc[at..]),
    ]);
    if two != whole {
        return Err(format!("whole {whole:?} but split at {at} {two:?}"));
    }
    if !oracle_is_lenient(doc) && crate_accepts(whole) != oracle_accepts(doc) {
        let oracle = std::str::from_utf8(doc)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                roxmltree::Document::parse(t)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        return Err(format!("crate {whole:?}, oracle {oracle:?}"));
    }
    Ok(whole)
}
