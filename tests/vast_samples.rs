//! `vast::inspect` against public IAB Tech Lab sample documents (VAST 1 to
//! 4.2), copied with their names into `tests/fixtures/vast/` from the IAB
//! samples collection, and `inspect_chunks` agreeing with it however the
//! body is split into frames.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use vast_metrics::vast::{inspect, inspect_chunks, VastVerdict};

const fn ads(inline: u32, wrapper: u32) -> VastVerdict {
    VastVerdict::Ads { inline, wrapper }
}

/// Every fixture and its verdict (counted by hand from the files).
const EXPECTED: &[(&str, VastVerdict)] = &[
    ("vast2/Inline_LinearRegular_VAST2.0.xml", ads(1, 0)),
    ("vast2/Inline_NonLinear_VAST2.0.xml", ads(1, 0)),
    // Ten inline non-linear ads in one document.
    ("vast2/tremor/vast2Nonlinear.xml", ads(10, 0)),
    ("vast2/tremor/vast_wrapper_linear_1.xml", ads(0, 1)),
    ("vast2/tremor/vast_wrapper_nonlinear_2.xml", ads(0, 1)),
    // VAST 1.0: the root is <VideoAdServingTemplate>, and it is VAST.
    ("vast2/vast1Nonlinear.xml", ads(1, 0)),
    ("vast2/vast1RegularLinear.xml", ads(1, 0)),
    ("vast3/Inline_Companion_Tag-test.xml", ads(1, 0)),
    ("vast3/No_Wrapper_Tag-test.xml", ads(1, 0)),
    ("vast3/Wrapper_Tag-test.xml", ads(0, 1)),
    ("vast4.0/Inline_Linear_Tag-test.xml", ads(1, 0)),
    ("vast4.0/Wrapper_Tag-test.xml", ads(0, 1)),
    ("vast4.1/Ad_Verification-test.xml", ads(1, 0)),
    ("vast4.1/Inline_Simple.xml", ads(1, 0)),
    ("vast4.1/Wrapper_Tag-test.xml", ads(0, 1)),
    ("vast4.2/Closed_Caption_Test.xml", ads(1, 0)),
    ("vast4.2/IconClickFallbacks.xml", ads(1, 0)),
    ("vast4.2/Inline_Companion_Tag-test.xml", ads(1, 0)),
    ("vast4.2/Inline_Simple.xml", ads(1, 0)),
    ("vast4.2/Universal_Ad_ID-multi-test.xml", ads(1, 0)),
    ("vast4.2/Wrapper_Tag-test.xml", ads(0, 1)),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vast")
}

/// Every `.xml` file under `dir`, as paths relative to `root`.
fn xml_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            xml_files(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "xml") {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_str().unwrap().replace('\\', "/"));
        }
    }
}

/// Every `.xml` fixture, sorted, as paths relative to the fixtures directory.
fn fixtures() -> Vec<String> {
    let root = fixtures_dir();
    let mut found = Vec::new();
    xml_files(&root, &root, &mut found);
    found.sort();
    found
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn expected(rel: &str) -> VastVerdict {
    EXPECTED
        .iter()
        .find(|(name, _)| *name == rel)
        .unwrap_or_else(|| panic!("{rel}: fixture without an expected verdict"))
        .1
}

fn split(doc: &[u8], size: usize) -> Vec<Bytes> {
    doc.chunks(size).map(Bytes::copy_from_slice).collect()
}

#[test]
fn every_fixture_has_an_expected_verdict() {
    let mut listed: Vec<String> = EXPECTED.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(fixtures(), listed);
}

#[test]
fn samples_give_their_verdicts() {
    for rel in fixtures() {
        let doc = read(&rel);
        assert_eq!(inspect(&doc), expected(&rel), "{rel}");
    }
}

#[test]
fn vast_1_to_4_2_carry_ads() {
    for rel in fixtures() {
        let verdict = inspect(&read(&rel));
        assert!(
            matches!(verdict, VastVerdict::Ads { .. }),
            "{rel}: {verdict:?}"
        );
        assert_eq!(verdict.outcome(), vast_metrics::classify::Outcome::Ad);
    }
}

#[test]
fn any_chunking_gives_the_same_verdict() {
    for rel in fixtures() {
        let doc = read(&rel);
        let whole = inspect(&doc);
        for size in [1, 7, 4096] {
            assert_eq!(
                inspect_chunks(&split(&doc, size)),
                whole,
                "{rel} in {size}-byte chunks"
            );
        }
        assert_eq!(
            inspect_chunks(&[Bytes::from(doc.clone())]),
            whole,
            "{rel} in one chunk"
        );
    }
}

/// None of the IAB samples starts with a byte-order mark, but servers do
/// send one. A BOM split across the first frames should not change the
/// verdict.
#[test]
fn a_byte_order_mark_split_across_chunks_gives_the_same_verdict() {
    let mut doc = b"\xEF\xBB\xBF".to_vec();
    doc.extend_from_slice(&read("vast4.2/Inline_Simple.xml"));
    let whole = inspect(&doc);
    assert_eq!(whole, ads(1, 0));
    for size in [1, 2, 7, 4096] {
        assert_eq!(
            inspect_chunks(&split(&doc, size)),
            whole,
            "{size}-byte chunks"
        );
    }
}
