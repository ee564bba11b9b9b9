//! The VAST inspection against documents nobody on this project wrote: the
//! test fixtures of the open-source validator vastlint (Apache-2.0; origin,
//! licence and what was copied in the directory's `SOURCE.md`): VAST 2.0 to
//! 4.4, malformed XML, and well-formed documents with schema findings.
//!
//! Each file's expectation comes from an independent judge, not from the
//! crate: its name (vastlint's own verdict: `err_malformed_*` is not
//! well-formed, `valid_*` / `ok_*` carry an ad, or none for the no-ad ones)
//! and its tree as `roxmltree`, a strict XML parser, reads it (root, `<Ad>`
//! children, their first element child, the first wrapper's URI and flags,
//! the linear creatives' first `<Duration>`s). [`Inspection::of`] must give
//! the same verdict, pod size, linear seconds, bad durations and wrapper
//! target on every file, but on the files of [`DISAGREEMENTS`], each listed
//! with why a player's parser sides with the crate. A listed file that
//! agrees fails too, so the list cannot go stale.
//!
//! The files are found at `$VAST_LINT_FIXTURES`, else at
//! `../shared/vastlint-fixtures` beside the crate. Without them the test says
//! it skipped, unless `VAST_REQUIRE_VASTLINT=1` (set by `.ci/run`): then it
//! fails.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::vast::{inspect, wrapper_target, Inspection, VastVerdict, WrapperTarget};

/// Files on which the crate and the judge differ, and why a player's
/// parser gives the crate's answer.
const DISAGREEMENTS: &[(&str, &str)] = &[(
    "warn_unknown_version.xml",
    "vastlint only warns about version=\"99.0\"; a player supports VAST 2, 3 and 4 and \
     answers a major version it does not know with IAB 102 (version not supported), \
     so the crate gives UnsupportedVersion, not an ad",
)];

/// How many `.xml` files `SOURCE.md` says were copied.
const FILES: usize = 144;

/// The fixtures directory, or `None` (the test skips) when it is missing
/// and `VAST_REQUIRE_VASTLINT` is not `1`.
fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VAST_LINT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/vastlint-fixtures"
            ))
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("VAST_REQUIRE_VASTLINT").as_deref() == Ok("1") {
        panic!(
            "VAST_REQUIRE_VASTLINT=1 but the vastlint fixtures are not at {} \
             (set VAST_LINT_FIXTURES)",
            dir.display()
        );
    }
    eprintln!(
        "skipping the vastlint corpus: no directory {} (set VAST_LINT_FIXTURES)",
        dir.display()
    );
    None
}

/// What the crate is checked on, read from one side.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    verdict: VastVerdict,
    ads: u32,
    linear: Duration,
    bad_durations: u32,
    wrapper: Option<WrapperTarget>,
}

impl Seen {
    fn rejected(verdict: VastVerdict) -> Seen {
        Seen {
            verdict,
            ads: 0,
            linear: Duration::ZERO,
            bad_durations: 0,
            wrapper: None,
        }
    }
}

impl From<Inspection> for Seen {
    fn from(i: Inspection) -> Seen {
        Seen {
            verdict: i.verdict,
            ads: i.ads,
            linear: i.linear,
            bad_durations: i.bad_durations,
            wrapper: i.wrapper,
        }
    }
}

/// What vastlint's file name says the document is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Named {
    Malformed,
    WithAd,
    NoAd,
    /// Well-formed VAST with schema findings: the verdict is its content's.
    Findings,
}

fn named(file: &str) -> Named {
    if file.starts_with("err_malformed_") {
        Named::Malformed
    } else if file.starts_with("valid_") || file.starts_with("ok_") {
        if file.contains("no_ad") {
            Named::NoAd
        } else {
            Named::WithAd
        }
    } else if ["err_", "warn_", "info_"]
        .iter()
        .any(|p| file.starts_with(p))
    {
        Named::Findings
    } else {
        panic!("{file}: a name vastlint does not use")
    }
}

type Node<'a> = roxmltree::Node<'a, 'a>;

fn elements<'a>(node: Node<'a>, name: &'a str) -> impl Iterator<Item = Node<'a>> + 'a {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

fn first<'a>(node: Node<'a>, name: &'a str) -> Option<Node<'a>> {
    elements(node, name).next()
}

/// The text directly inside an element (CDATA included).
fn text(node: Node<'_>) -> String {
    node.children()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// IAB `HH:MM:SS` or `HH:MM:SS.mmm`, surrounding white space aside.
fn parse_duration(text: &str) -> Option<Duration> {
    let (hms, millis) = match text.trim().split_once('.') {
        Some((hms, ms)) => (hms, Some(ms)),
        None => (text.trim(), None),
    };
    let field = |s: &str, width: usize, below: u64| {
        let ok = s.len() == width && s.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| s.parse::<u64>().unwrap()).filter(|&v| v < below)
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts[..] else { return None };
    let seconds = field(h, 2, 100)? * 3600 + field(m, 2, 60)? * 60 + field(s, 2, 60)?;
    let ms = match millis {
        Some(ms) => field(ms, 3, 1000)?,
        None => 0,
    };
    Some(Duration::from_millis(seconds * 1000 + ms))
}

/// `xs:boolean`, white space collapsed: `FALSE` (in `valid_wrapper_bools.xml`)
/// is not one, so that flag reads as absent.
fn xs_boolean(value: &str) -> Option<bool> {
    match value.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The judge's reading of a document: `None` when roxmltree rejects it.
fn judge(doc: &[u8]) -> Option<Seen> {
    let text_doc = std::str::from_utf8(doc).ok()?;
    let tree = roxmltree::Document::parse(text_doc).ok()?;
    let root = tree.root_element();
    let vast1 = match root.tag_name().name() {
        "VAST" => false,
        "VideoAdServingTemplate" => true,
        _ => return Some(Seen::rejected(VastVerdict::NotVast)),
    };
    let (mut inline, mut wrapper, mut ads) = (0, 0, 0);
    let (mut linear, mut bad_durations) = (Duration::ZERO, 0);
    let mut target = None;
    let mut seen_wrapper = false;
    for ad in elements(root, "Ad") {
        ads += 1;
        let Some(kind) = ad.children().find(|n| n.is_element()) else {
            continue;
        };
        match kind.tag_name().name() {
            "InLine" => {
                inline += 1;
                let linears: Vec<Node<'_>> = if vast1 {
                    elements(kind, "Video").collect()
                } else {
                    elements(kind, "Creatives")
                        .flat_map(|c| elements(c, "Creative"))
                        .flat_map(|c| elements(c, "Linear"))
                        .collect()
                };
                for l in linears {
                    // A player reads the first <Duration>.
                    match first(l, "Duration").and_then(|d| parse_duration(&text(d))) {
                        Some(d) => linear += d,
                        None => bad_durations += 1,
                    }
                }
            }
            "Wrapper" => {
                wrapper += 1;
                if !seen_wrapper {
                    seen_wrapper = true;
                    let uri = if vast1 {
                        first(kind, "VASTAdTagURL").and_then(|u| first(u, "URL"))
                    } else {
                        first(kind, "VASTAdTagURI")
                    };
                    target = uri
                        .map(|u| text(u).trim().to_owned())
                        .filter(|u| !u.is_empty())
                        .map(|uri| WrapperTarget {
                            uri,
                            follow_additional_wrappers: kind
                                .attribute("followAdditionalWrappers")
                                .and_then(xs_boolean)
                                .unwrap_or(true),
                            fallback_on_no_ad: kind
                                .attribute("fallbackOnNoAd")
                                .and_then(xs_boolean),
                        });
                }
            }
            _ => {}
        }
    }
    Some(Seen {
        verdict: match ads {
            0 => VastVerdict::NoAd,
            _ => VastVerdict::Ads { inline, wrapper },
        },
        ads,
        linear,
        bad_durations,
        wrapper: target,
    })
}

/// The expectation for one file: its name's verdict, its content's pod.
fn expected(file: &str, doc: &[u8]) -> Seen {
    let judged = judge(doc);
    match (named(file), judged) {
        (Named::Malformed, None) => Seen::rejected(VastVerdict::InvalidXml),
        (Named::Malformed, Some(_)) => {
            panic!("{file}: vastlint says malformed, roxmltree reads it")
        }
        (_, None) => panic!("{file}: vastlint says well-formed, roxmltree rejects it"),
        (Named::WithAd, Some(s)) if !matches!(s.verdict, VastVerdict::Ads { .. }) => {
            panic!("{file}: vastlint says valid with an ad, the tree has {s:?}")
        }
        (Named::NoAd, Some(s)) if s.verdict != VastVerdict::NoAd => {
            panic!("{file}: vastlint says a valid no-ad answer, the tree has {s:?}")
        }
        (_, Some(s)) => s,
    }
}

/// Every `.xml` file of the directory, sorted, with its bytes.
fn corpus(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_crate_agrees_with_the_judge_on_every_vastlint_fixture() {
    let Some(dir) = fixtures_dir() else { return };
    let files = corpus(&dir);
    assert_eq!(
        files.len(),
        FILES,
        "{}: not the copied corpus",
        dir.display()
    );

    let mut unlisted = Vec::new();
    let mut stale = Vec::new();
    for (file, doc) in &files {
        let inspection = Inspection::of(doc);
        // The views of the same scan, and the scan of the body in frames.
        assert_eq!(inspect(doc), inspection.verdict, "{file}");
        assert_eq!(wrapper_target(doc), inspection.wrapper, "{file}");
        let frames: Vec<Bytes> = doc.chunks(7).map(Bytes::copy_from_slice).collect();
        assert_eq!(
            Inspection::of_chunks(&frames),
            inspection,
            "{file} in frames"
        );

        let got = Seen::from(inspection);
        let want = expected(file, doc);
        if named(file) == Named::Malformed {
            assert_eq!(got.verdict.iab_code(), Some(100), "{file}");
            assert_eq!(
                got.verdict.outcome(),
                Outcome::Failure(ErrorType::InvalidXml),
                "{file}"
            );
        }
        let listed = DISAGREEMENTS.iter().any(|(f, _)| f == file);
        match (got == want, listed) {
            (true, true) => stale.push(file.clone()),
            (false, false) => unlisted.push(format!("{file}:\n  crate {got:?}\n  judge {want:?}")),
            _ => {}
        }
    }
    for (file, _) in DISAGREEMENTS {
        assert!(
            files.iter().any(|(f, _)| f == file),
            "{file}: listed but not in the corpus"
        );
    }
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "disagreements not listed:\n{}\nlisted but agreeing: {stale:?}",
        unlisted.join("\n")
    );
}

/// What the corpus holds, as the judge reads it, so the comparison above
/// covers every kind of answer: malformed and no-ad answers, pods, wrappers
/// with and without a URI, bad and missing durations.
#[test]
fn the_corpus_covers_every_kind_of_answer() {
    let Some(dir) = fixtures_dir() else { return };
    let judged: Vec<Seen> = corpus(&dir)
        .iter()
        .map(|(file, doc)| expected(file, doc))
        .collect();
    let count = |f: fn(&Seen) -> bool| judged.iter().filter(|s| f(s)).count();
    assert_eq!(count(|s| s.verdict == VastVerdict::InvalidXml), 3);
    assert_eq!(count(|s| s.verdict == VastVerdict::NoAd), 2);
    assert!(count(|s| s.ads > 1 && s.linear > Duration::ZERO) >= 2);
    assert!(count(|s| s.wrapper.is_some()) >= 5);
    assert!(
        count(
            |s| matches!(s.verdict, VastVerdict::Ads { wrapper: 1.., .. }) && s.wrapper.is_none()
        ) >= 1
    );
    assert!(count(|s| s.bad_durations > 0) >= 2);
}

#[test]
fn the_judge_reads_iab_durations() {
    let secs = |s: f64| Some(Duration::from_secs_f64(s));
    assert_eq!(parse_duration("00:00:30"), secs(30.0));
    assert_eq!(parse_duration(" 01:02:03.250\n"), secs(3723.25));
    for bad in [
        "0:30",
        "00:00:60",
        "00:60:00",
        "00:00:30.5",
        "00:00:30.",
        "",
        "00:00:3a",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}
