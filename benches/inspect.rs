//! The VAST scan against what a user would write instead, a strict DOM
//! parser (`roxmltree`, the tests' oracle), on IAB samples and a ~1 KB
//! inline ad: `cargo bench --bench inspect`.
//!
//! - `verdict`: `vast::inspect` against parsing the tree and counting ads.
//! - `inspection`: `vast::Inspection::of` (verdict, pod size, seconds of
//!   linear ads, the first wrapper's target, one pass) against the same
//!   read from the tree.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use roxmltree::{Document, Node, ParsingOptions};
use vast_metrics::vast::{inspect, Inspection, VastVerdict};

/// What a user would write: the tree, then its `<Ad>`s.
fn tree_verdict(body: &[u8]) -> VastVerdict {
    tree_read(body).0
}

/// The verdict, ads, linear seconds and first wrapper URI, read from the tree.
fn tree_read(body: &[u8]) -> (VastVerdict, u32, Duration, Option<String>) {
    let none = |v| (v, 0, Duration::ZERO, None);
    let Ok(text) = std::str::from_utf8(body) else {
        return none(VastVerdict::InvalidXml);
    };
    let Ok(doc) = Document::parse_with_options(text, ParsingOptions::default()) else {
        return none(VastVerdict::InvalidXml);
    };
    let root = doc.root_element();
    if !matches!(root.tag_name().name(), "VAST" | "VideoAdServingTemplate") {
        return none(VastVerdict::NotVast);
    }
    fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Vec<Node<'a, 'i>> {
        n.children()
            .filter(|c| c.is_element() && c.tag_name().name() == name)
            .collect()
    }
    let (mut ads, mut inline, mut wrapper) = (0, 0, 0);
    let mut linear = Duration::ZERO;
    let mut target = None;
    for ad in child(root, "Ad") {
        ads += 1;
        match ad.first_element_child() {
            Some(i) if i.tag_name().name() == "InLine" => {
                inline += 1;
                for creative in child(i, "Creatives")
                    .into_iter()
                    .flat_map(|c| child(c, "Creative"))
                {
                    for l in child(creative, "Linear") {
                        let d = child(l, "Duration")
                            .first()
                            .and_then(|d| d.text())
                            .unwrap_or("");
                        linear += seconds(d.trim());
                    }
                }
            }
            Some(w) if w.tag_name().name() == "Wrapper" => {
                wrapper += 1;
                if target.is_none() {
                    target = child(w, "VASTAdTagURI")
                        .first()
                        .and_then(|u| u.text())
                        .map(|t| t.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    let verdict = if ads == 0 {
        VastVerdict::NoAd
    } else {
        VastVerdict::Ads { inline, wrapper }
    };
    (verdict, ads, linear, target)
}

/// `HH:MM:SS(.mmm)`, zero when it is not.
fn seconds(d: &str) -> Duration {
    let mut parts = d.split(':').map(|p| p.parse::<f64>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(h)), Some(Some(m)), Some(Some(s))) => {
            Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s)
        }
        _ => Duration::ZERO,
    }
}

fn bench(c: &mut Criterion) {
    let fixture = |rel: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/vast/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let inputs = [
        (
            "inline_1k",
            vast_test_support::ad_server::INLINE_VAST
                .as_bytes()
                .to_vec(),
        ),
        (
            "iab_4.2_inline_simple",
            fixture("vast4.2/Inline_Simple.xml"),
        ),
        ("iab_4.2_wrapper", fixture("vast4.2/Wrapper_Tag-test.xml")),
        (
            "iab_4.2_companion",
            fixture("vast4.2/Inline_Companion_Tag-test.xml"),
        ),
        (
            "iab_2_tremor_10_ads",
            fixture("vast2/tremor/vast2Nonlinear.xml"),
        ),
        (
            "pod_5_ads",
            vast_test_support::ad_server::pod(5, "00:00:15").into_bytes(),
        ),
    ];
    let mut group = c.benchmark_group("verdict");
    for (name, doc) in &inputs {
        assert_eq!(inspect(doc), tree_verdict(doc), "{name}");
        group.bench_with_input(BenchmarkId::new("crate", name), doc, |b, doc| {
            b.iter(|| inspect(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("roxmltree", name), doc, |b, doc| {
            b.iter(|| tree_verdict(black_box(doc)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("inspection");
    for (name, doc) in &inputs {
        let one = Inspection::of(doc);
        let tree = tree_read(doc);
        assert_eq!(
            (one.verdict, one.ads, one.linear, one.wrapper.map(|w| w.uri)),
            tree,
            "{name}"
        );
        group.bench_with_input(BenchmarkId::new("crate", name), doc, |b, doc| {
            b.iter(|| Inspection::of(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("roxmltree", name), doc, |b, doc| {
            b.iter(|| tree_read(black_box(doc)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
