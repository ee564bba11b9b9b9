//! The VAST inspection's well-formedness verdict agrees with a strict XML
//! parser's (roxmltree, see `support/oracle.rs`) on the IAB samples, on
//! the cases a lenient reader gets wrong, and on documents generated from
//! VAST-like tokens or mutated from the samples, read whole, in 1-byte
//! frames and split in two.

#[path = "support/oracle.rs"]
#[allow(dead_code)]
mod oracle;

use std::path::{Path, PathBuf};

use oracle::{check, oracle_accepts, oracle_is_lenient};
use proptest::prelude::*;
use vast_metrics::vast::{inspect, VastVerdict};

/// Every fixture under `tests/fixtures/vast/`, read.
fn samples() -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "xml") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vast"),
        &mut out,
    );
    assert!(out.len() >= 10);
    out
}

#[test]
fn samples_are_well_formed_for_both() {
    for (path, doc) in samples() {
        let verdict = check(&doc, doc.len() / 2).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(oracle_accepts(&doc), "{path:?}");
        assert!(verdict.is_vast(), "{path:?}: {verdict:?}");
    }
}

/// A small inline ad with `{}` in its title.
fn titled(title: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Ad id="1"><InLine><AdSystem>x</AdSystem><AdTitle>{title}</AdTitle></InLine></Ad>
</VAST>"#
    )
    .into_bytes()
}

#[test]
fn what_a_lenient_reader_accepts_both_reject() {
    let cases: &[&[u8]] = &[
        b"&nbsp;",
        b"Tom & Jerry;",
        b"<b a='x<y'/>",
        b"caf\xE9",
        b"\x01",
        b"&#0;",
        b"&#x1;",
        b"<b></c>",
        b"<b a='1' a='2'/>",
        b"<b xsi:a='1' xsi:a='2'/>",
        b"<b q:a='1'/>",
        b"]]>",
        b"<!-- -- -->",
        b"<?xml version='1.0'?>",
        b"\xEF\xBF\xBF",
        b"\xC3",
    ];
    for case in cases {
        let mut doc = titled("");
        let at = doc.windows(10).position(|w| w == b"</AdTitle>").unwrap();
        doc.splice(at..at, case.iter().copied());
        assert_eq!(inspect(&doc), VastVerdict::InvalidXml, "{case:?}");
        check(&doc, at).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
    for after in ["text", "<VAST/>", "&amp;"] {
        let mut doc = titled("ok");
        doc.extend_from_slice(after.as_bytes());
        assert_eq!(inspect(&doc), VastVerdict::InvalidXml, "{after}");
        check(&doc, 7).unwrap();
    }
    // Documents declaring another encoding are read as UTF-8, by both.
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><VAST version=\"3.0\"><Ad><InLine><AdTitle>caf\xe9</AdTitle></InLine></Ad></VAST>";
    assert_eq!(check(latin1, 9), Ok(VastVerdict::InvalidXml));
    let ascii = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><VAST version=\"3.0\"/>";
    assert_eq!(check(ascii, 9), Ok(VastVerdict::NoAd));
    let utf16 = b"\xFF\xFE<\x00V\x00A\x00S\x00T\x00/\x00>\x00";
    assert_eq!(check(utf16, 3), Ok(VastVerdict::InvalidXml));
    // A DTD, even one that only declares entities, is refused by both.
    let dtd = b"<!DOCTYPE VAST [<!ENTITY t \"title\">]><VAST version=\"4.2\"><Ad><InLine><AdTitle>&t;</AdTitle></InLine></Ad></VAST>";
    assert_eq!(check(dtd, 20), Ok(VastVerdict::InvalidXml));
}

#[test]
fn well_formed_but_not_supported_is_well_formed_for_both() {
    for (doc, verdict) in [
        (&b"<html><body/></html>"[..], VastVerdict::NotVast),
        (b"<VAST version=\"9.0\"/>", VastVerdict::UnsupportedVersion),
        (
            b"<VideoAdServingTemplate><Ad><InLine/></Ad></VideoAdServingTemplate>",
            VastVerdict::Ads {
                inline: 1,
                wrapper: 0,
            },
        ),
    ] {
        assert_eq!(check(doc, 5), Ok(verdict));
    }
}

/// The one leniency of the oracle that the comparison skips: if roxmltree
/// ever rejects these, the exclusion can go.
#[test]
fn the_oracle_is_lenient_only_on_surrogate_references() {
    for reference in ["&#xD800;", "&#55296;", "&#x110000;"] {
        let doc = titled(reference);
        assert!(oracle_is_lenient(&doc));
        assert!(oracle_accepts(&doc), "{reference}");
        assert_eq!(inspect(&doc), VastVerdict::InvalidXml, "{reference}");
    }
    assert!(!oracle_is_lenient(&titled("&#xE9; &#65; &#x10FFFF;")));
}

/// Bytes and tokens that matter to an XML parser.
const TOKENS: &[&[u8]] = &[
    b"&",
    b"<",
    b">",
    b"&nbsp;",
    b"\x01",
    b"\xE9",
    b"]]>",
    b"\"",
    b"'",
    b"&amp;",
    b"&#0;",
    b"&#xD800;",
    b"&#x41;",
    b"&lt",
    b"<!--",
    b"-->",
    b"--",
    b"<Ad>",
    b"</Ad>",
    b"<InLine/>",
    b"<Wrapper>",
    b"</Wrapper>",
    b"=",
    b" ",
    b"\n",
    b":",
    b"xmlns:p=\"u\" ",
    b"p:",
    b"xsi:",
    b"<![CDATA[",
    b"?>",
    b"<?",
    b"<?xml ",
    b"/",
    b"/>",
    b"\xEF\xBB\xBF",
    b"\xC3",
    b"\xA9",
    b"\xEF\xBF\xBE",
    b"<!DOCTYPE VAST>",
    b"a=\"1\" ",
    b"</",
    b"\t",
    b"\r\n",
    b"\xF0\x9F\x8E\xAC",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Replace(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Replace(at, t)),
    ]
}

fn apply(doc: &mut Vec<u8>, edit: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *edit {
        Edit::Insert(i, t) => {
            let i = at(i, doc.len());
            doc.splice(i..i, TOKENS[t].iter().copied());
        }
        Edit::Delete(i, n) => {
            let i = at(i, doc.len());
            let end = (i + n).min(doc.len());
            doc.drain(i..end);
        }
        Edit::Replace(i, t) => {
            let i = at(i, doc.len());
            let end = (i + 1).min(doc.len());
            doc.splice(i..end, TOKENS[t].iter().copied());
        }
    }
}

/// Tokens a generated document is made of.
const PARTS: &[&str] = &[
    "<VAST version=\"4.2\">",
    "<VAST>",
    "</VAST>",
    "<Ad id=\"1\">",
    "</Ad>",
    "<InLine>",
    "</InLine>",
    "<Wrapper>",
    "</Wrapper>",
    "<InLine/>",
    "<AdTitle>",
    "</AdTitle>",
    "text",
    " ",
    "&amp;",
    "&#233;",
    "&nbsp;",
    "&",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "<?pi x?>",
    "<v:Ad xmlns:v=\"u\">",
    "</v:Ad>",
    "<a b=\"1\" b=\"2\"/>",
    "<a b='<'/>",
    "\u{1}",
    "é",
    "<?xml version=\"1.0\"?>",
    "<VideoAdServingTemplate>",
    "</VideoAdServingTemplate>",
    "<VAST version=\"9.0\">",
    "]]>",
    "<a xml:lang=\"en\"/>",
    "<Ad/>",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_samples_agree_with_the_oracle(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
        split in any::<usize>(),
    ) {
        let samples = samples();
        let mut doc = samples[seed.index(samples.len())].1.clone();
        for e in &edits {
            apply(&mut doc, e);
        }
        let split = split % (doc.len() + 1);
        prop_assert_eq!(check(&doc, split).err(), None, "{:?}", String::from_utf8_lossy(&doc));
    }

    #[test]
    fn generated_documents_agree_with_the_oracle(
        parts in prop::collection::vec(0..PARTS.len(), 0..40),
        edits in prop::collection::vec(edit(), 0..3),
        split in any::<usize>(),
    ) {
        let mut doc: Vec<u8> = parts.iter().flat_map(|&i| PARTS[i].bytes()).collect();
        for e in &edits {
            apply(&mut doc, e);
        }
        let split = split % (doc.len() + 1);
        prop_assert_eq!(check(&doc, split).err(), None, "{:?}", String::from_utf8_lossy(&doc));
    }
}
