//! Bad input never breaks anything: the generic API drops and counts what it
//! cannot record, the exposition stays valid, and hostile VAST bodies cost
//! parse time only, with memory bounded by the inspection cap.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use common::{parse, sum};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use vast_metrics::prometheus::RecordError;
use vast_metrics::vast::{inspect, inspect_chunks, VastVerdict};
use vast_metrics::{MetricsCollector, PrometheusMetrics, VastMetricsLayer};

const INLINE: &str = vast_test_support::ad_server::INLINE_VAST;

#[test]
fn bad_names_and_labels_are_dropped_and_counted() {
    let m = PrometheusMetrics::new();
    m.increment("good.counter", 1, &[("k", "v")]);
    let long_name = "a".repeat(10 * 1024);
    let bad_names = [
        "",
        "1starts.with.digit",
        "has space",
        "unicodé.name",
        long_name.as_str(),
        "x{y}",
        "a\nb",
    ];
    for name in bad_names {
        assert_eq!(
            m.try_increment(name, 1, &[]),
            Err(RecordError::InvalidName),
            "{name:?}"
        );
        m.increment(name, 1, &[]);
        m.gauge(name, 1.0, &[]);
        m.histogram(name, 1.0, &[]);
        m.timing(name, 1.0, &[]);
    }
    assert_eq!(
        m.error_count(RecordError::InvalidName),
        4 * bad_names.len() as u64
    );

    for key in ["le", "__name__", "__x", "a-b", "1a", "", "ключ", "a b"] {
        m.histogram("some.histogram", 1.0, &[(key, "v")]);
    }
    // `le` is reserved on histograms only; the rest are invalid anywhere.
    assert_eq!(m.error_count(RecordError::InvalidLabelName), 8);
    m.increment("good.counter", 1, &[("k", "v"), ("k", "w")]);
    assert_eq!(m.error_count(RecordError::LabelMismatch), 1);

    let huge = "x".repeat(64 * 1024);
    m.increment("good.counter", 1, &[("k", &huge)]);
    assert_eq!(m.error_count(RecordError::LabelValueTooLong), 1);
    m.gauge("good.gauge", f64::INFINITY, &[]);
    m.histogram("good.histogram", f64::NAN, &[]);
    assert_eq!(m.error_count(RecordError::InvalidValue), 2);

    let s = parse(&m.encode());
    assert_eq!(
        sum(&s, "good_counter_total", &[]),
        1.0,
        "nothing leaked into the good series"
    );
    assert_eq!(
        sum(
            &s,
            "vast_metrics_errors_total",
            &[("reason", "invalid_name")]
        ),
        28.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_metrics_errors_total",
            &[("reason", "label_value_too_long")]
        ),
        1.0
    );
    assert!(
        s.iter().all(|x| !x.name.contains("some_histogram")),
        "no family made from rejected calls"
    );
}

#[test]
fn odd_label_values_are_escaped_and_kept_apart() {
    let m = PrometheusMetrics::new();
    let values = [
        "quote\"inside",
        "back\\slash",
        "new\nline",
        "tab\tand spaces",
        "\u{FFFD}\u{202E}reversed\u{200B}",
        "nul\0byte",
        "emoji 🎬",
        "}{,=",
        "ab",
        "a",
        "",
    ];
    for (i, v) in values.iter().enumerate() {
        m.increment("odd.values", i as u64 + 1, &[("v", v), ("w", "c")]);
    }
    m.increment("odd.values", 100, &[("v", "a"), ("w", "bc")]);
    m.increment("odd.values", 1000, &[("v", "ab"), ("w", "c")]);
    let text = m.encode();
    let s = parse(&text);
    for (i, v) in values.iter().enumerate() {
        let extra = if *v == "ab" { 1000.0 } else { 0.0 };
        assert_eq!(
            sum(&s, "odd_values_total", &[("v", v), ("w", "c")]),
            i as f64 + 1.0 + extra,
            "{v:?}"
        );
    }
    assert_eq!(
        sum(&s, "odd_values_total", &[("v", "a"), ("w", "bc")]),
        100.0
    );
    assert_eq!(
        s.iter().filter(|x| x.name == "odd_values_total").count(),
        values.len() + 1
    );
    assert!(common::promtool_accepts(&text));
}

fn nested(depth: usize) -> String {
    let mut doc = String::from("<VAST version=\"4.2\"><Ad><InLine>");
    doc.push_str(&"<x>".repeat(depth));
    doc.push_str(&"</x>".repeat(depth));
    doc.push_str("</InLine></Ad></VAST>");
    doc
}

#[test]
fn hostile_documents() {
    assert_eq!(
        inspect(nested(10_000).as_bytes()),
        VastVerdict::Ads {
            inline: 1,
            wrapper: 0
        }
    );
    let unclosed = nested(10_000).replace("</x>", "");
    assert_eq!(inspect(unclosed.as_bytes()), VastVerdict::InvalidXml);

    let laughs = {
        let mut doc =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE VAST [\n<!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", i - 1)
            };
            doc.push_str(&format!(
                "<!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        doc.push_str(
            "]>\n<VAST version=\"4.0\"><Ad><InLine><AdTitle>&lol9;</AdTitle></InLine></Ad></VAST>",
        );
        doc
    };
    // Refused, not expanded: 10^9 "lol"s would take gigabytes; this
    // returns at once.
    assert_eq!(inspect(laughs.as_bytes()), VastVerdict::InvalidXml);

    let external = r#"<?xml version="1.0"?>
<!DOCTYPE VAST SYSTEM "http://127.0.0.1:1/evil.dtd" [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<VAST version="4.0"><Ad><InLine><AdTitle>&xxe;</AdTitle></InLine></Ad></VAST>"#;
    // Nothing fetched: a DTD is refused.
    assert_eq!(inspect(external.as_bytes()), VastVerdict::InvalidXml);

    // Read as UTF-8 whatever it declares: a Latin-1 byte is not UTF-8.
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><VAST version=\"3.0\"><Ad><InLine><AdTitle>caf\xe9</AdTitle></InLine></Ad></VAST>";
    assert_eq!(inspect(latin1), VastVerdict::InvalidXml);
    assert_eq!(inspect(b"\xff\xfe<\x00V\x00"), VastVerdict::InvalidXml);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in 1usize..64) {
        let whole = inspect(&bytes);
        let chunks: Vec<Bytes> = bytes.chunks(split).map(Bytes::copy_from_slice).collect();
        prop_assert_eq!(inspect_chunks(&chunks), whole);
    }

    #[test]
    fn truncated_documents_are_invalid(cut in 1usize..INLINE.len() - 1) {
        // Any cut before the closing tag leaves the root open.
        let end = INLINE.rfind("</VAST>").unwrap();
        prop_assume!(cut < end);
        prop_assert_eq!(inspect(&INLINE.as_bytes()[..cut]), VastVerdict::InvalidXml);
    }

    #[test]
    fn xml_like_noise_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("<VAST>"), Just("</VAST>"), Just("<Ad>"), Just("</Ad>"), Just("<InLine/>"),
            Just("<![CDATA["), Just("]]>"), Just("<!--"), Just("-->"), Just("&amp;"), Just("&#x0;"),
            Just("<?xml version=\"1.0\"?>"), Just("<!DOCTYPE VAST ["), Just("]>"), Just("\""), Just("="),
        ],
        0..64,
    )) {
        let doc = parts.concat();
        let _ = inspect(doc.as_bytes());
    }
}

/// A data chunk that counts how many of its clones are alive.
#[derive(Debug)]
struct Counted {
    bytes: Bytes,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Counted {
            bytes: self.bytes.clone(),
            live: self.live.clone(),
            peak: self.peak.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Buf for Counted {
    fn remaining(&self) -> usize {
        self.bytes.remaining()
    }
    fn chunk(&self) -> &[u8] {
        self.bytes.chunk()
    }
    fn advance(&mut self, n: usize) {
        self.bytes.advance(n)
    }
}

/// 100 MB in 64 KiB frames, made on the fly.
struct HugeBody {
    frames_left: usize,
    frame: Bytes,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Body for HugeBody {
    type Data = Counted;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Counted>, Self::Error>>> {
        if self.frames_left == 0 {
            return Poll::Ready(None);
        }
        self.frames_left -= 1;
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let data = Counted {
            bytes: self.frame.clone(),
            live: self.live.clone(),
            peak: self.peak.clone(),
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

#[tokio::test]
async fn a_100_mb_body_is_retained_only_up_to_the_cap() {
    const FRAME: usize = 64 * 1024;
    const FRAMES: usize = 100 * 1024 * 1024 / FRAME;
    const LIMIT: usize = 1024 * 1024;
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, p) = (live.clone(), peak.clone());
    let server = service_fn(move |_req: http::Request<()>| {
        let body = HugeBody {
            frames_left: FRAMES,
            frame: Bytes::from(vec![b' '; FRAME]),
            live: l.clone(),
            peak: p.clone(),
        };
        async move { Ok::<_, std::io::Error>(http::Response::new(body)) }
    });
    let metrics = PrometheusMetrics::new();
    let mut svc = ServiceBuilder::new()
        .layer(
            VastMetricsLayer::new(metrics.clone())
                .inspect_limit(LIMIT)
                .source_name("huge"),
        )
        .service(server);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().into_data().unwrap().remaining();
    }
    assert_eq!(total, FRAMES * FRAME);
    // The frame in the caller's hand plus at most LIMIT / FRAME retained.
    assert!(
        peak.load(Ordering::SeqCst) <= LIMIT / FRAME + 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    drop(body);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    let s = parse(&metrics.encode());
    // Past the cap the verdict is the HTTP one, and nothing was parsed.
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "vast_parser_parse_duration_seconds_count", &[]),
        0.0
    );
}

#[tokio::test]
async fn no_id_from_a_url_reaches_the_exposition() {
    let server = vast_test_support::ad_server::AdServer::start()
        .await
        .unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = common::layered(VastMetricsLayer::new(metrics.clone()));
    let secrets = ["user-8f3a9c", "device-77aa01", "sess-Zq91"];
    for (i, secret) in secrets.iter().enumerate() {
        let url = server.url(&format!(
            "/inline/{secret}?uid={secret}&ifa={secret}&cb={i}"
        ));
        common::fetch(&mut svc, &url).await.unwrap();
    }
    let text = metrics.encode();
    for needle in
        secrets
            .iter()
            .copied()
            .chain(["127.0.0.1", "inline", "uid", "ifa", "http:", "://"])
    {
        assert!(!text.contains(needle), "exposition contains {needle:?}");
    }
    // Ids in the path make distinct sources: each is a hash, not the id.
    let sources = common::label_values(&parse(&text), "vast_client_request_total", "source_url");
    assert_eq!(sources.len(), 3);
    assert!(sources
        .iter()
        .all(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())));
}
