//! The VAST inspection against the quick-xml scan it replaced
//! (`old_inspect`, copied here), on IAB samples and a ~1 KB inline ad:
//! `cargo bench --bench inspect`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use quick_xml::events::Event;
use quick_xml::Reader;
use vast_metrics::vast::{inspect, VastVerdict};

/// The scan before strict inspection (commit e2b878f), on a slice.
fn old_inspect(body: &[u8]) -> VastVerdict {
    if body.is_empty() {
        return VastVerdict::Empty;
    }
    let mut reader = Reader::from_reader(body);
    let mut scan = Scan::default();
    loop {
        match reader.read_event() {
            Ok(event) => {
                if let Some(verdict) = scan.step(event) {
                    return verdict;
                }
            }
            Err(_) => return VastVerdict::InvalidXml,
        }
    }
}

#[derive(Default)]
struct Scan {
    depth: usize,
    root_seen: bool,
    in_ad: bool,
    inline: u32,
    wrapper: u32,
    ads: u32,
}

impl Scan {
    fn step(&mut self, event: Event<'_>) -> Option<VastVerdict> {
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                if start.attributes().with_checks(true).any(|a| a.is_err()) {
                    return Some(VastVerdict::InvalidXml);
                }
                let name = start.local_name();
                match self.depth {
                    0 if self.root_seen => return Some(VastVerdict::InvalidXml),
                    0 if name.as_ref() != b"VAST" => return Some(VastVerdict::InvalidXml),
                    0 => self.root_seen = true,
                    1 if name.as_ref() == b"Ad" => {
                        self.ads += 1;
                        self.in_ad = !empty;
                    }
                    2 if self.in_ad && name.as_ref() == b"InLine" => self.inline += 1,
                    2 if self.in_ad && name.as_ref() == b"Wrapper" => self.wrapper += 1,
                    _ => {}
                }
                if !empty {
                    self.depth += 1;
                }
            }
            Event::End(_) => {
                self.depth = self.depth.checked_sub(1)?;
                if self.depth == 1 {
                    self.in_ad = false;
                }
            }
            Event::Text(text) if self.depth == 0 && !text.iter().all(u8::is_ascii_whitespace) => {
                return Some(VastVerdict::InvalidXml);
            }
            Event::CData(_) | Event::GeneralRef(_) if self.depth == 0 => {
                return Some(VastVerdict::InvalidXml);
            }
            Event::Eof => {
                return Some(if !self.root_seen || self.depth != 0 {
                    VastVerdict::InvalidXml
                } else if self.ads == 0 {
                    VastVerdict::NoAd
                } else {
                    VastVerdict::Ads {
                        inline: self.inline,
                        wrapper: self.wrapper,
                    }
                });
            }
            _ => {}
        }
        None
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
    ];
    let mut group = c.benchmark_group("inspect");
    for (name, doc) in &inputs {
        assert_eq!(inspect(doc), old_inspect(doc), "{name}");
        group.bench_with_input(BenchmarkId::new("new", name), doc, |b, doc| {
            b.iter(|| inspect(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("old", name), doc, |b, doc| {
            b.iter(|| old_inspect(black_box(doc)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
