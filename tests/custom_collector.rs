//! The layer over a custom `MetricsCollector` (through `ByName`): records by
//! name, and a panicking or slow collector cannot take the request down.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fetch, get, layered};
use tower::{Service, ServiceExt};
use vast_metrics::classify::ErrorType;
use vast_metrics::collector::Labels;
use vast_metrics::recorder::ByName;
use vast_metrics::{MetricsCollector, VastMetricsLayer};
use vast_test_support::ad_server::{AdServer, INLINE_VAST};

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl MetricsCollector for Log {
    fn increment(&self, metric: &str, value: u64, labels: Labels<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{metric} {value} {labels:?}"));
    }
    fn histogram(&self, metric: &str, _: f64, labels: Labels<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{metric} h {labels:?}"));
    }
    fn gauge(&self, metric: &str, delta: f64, labels: Labels<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{metric} {delta:+} {labels:?}"));
    }
}

#[derive(Clone)]
struct Panicking;

impl MetricsCollector for Panicking {
    fn increment(&self, _: &str, _: u64, _: Labels<'_>) {
        panic!("collector bug");
    }
    fn histogram(&self, _: &str, _: f64, _: Labels<'_>) {
        panic!("collector bug");
    }
    fn gauge(&self, _: &str, _: f64, _: Labels<'_>) {
        panic!("collector bug");
    }
}

#[derive(Clone)]
struct Slow;

impl MetricsCollector for Slow {
    fn increment(&self, _: &str, _: u64, _: Labels<'_>) {
        std::thread::sleep(Duration::from_millis(5));
    }
    fn histogram(&self, _: &str, _: f64, _: Labels<'_>) {}
    fn gauge(&self, _: &str, _: f64, _: Labels<'_>) {}
}

#[tokio::test]
async fn records_by_name_with_the_contract_labels() {
    let server = AdServer::start().await.unwrap();
    let log = Log::default();
    let mut svc = layered(VastMetricsLayer::new(ByName::new(log.clone())).source_name("primary"));
    fetch(&mut svc, &server.url("/no-ad")).await.unwrap();
    let calls = log.0.lock().unwrap().clone();
    // A new source's counters start at 0: total and every outcome.
    let (zeros, calls): (Vec<_>, Vec<_>) = calls
        .into_iter()
        .partition(|c| c.split(' ').nth(1) == Some("0"));
    assert_eq!(zeros.len(), 1 + 2 + ErrorType::ALL.len(), "{zeros:#?}");
    assert!(
        zeros.contains(&r#"vast.client.request.total 0 [("source_url", "primary")]"#.to_owned())
    );
    for error in ErrorType::ALL {
        let line = format!(
            r#"vast.client.request.failure 0 [("source_url", "primary"), ("error_type", "{}")]"#,
            error.as_str()
        );
        assert!(zeros.contains(&line), "{line}");
    }
    assert_eq!(
        calls,
        [
            r#"vast.client.request.total 1 [("source_url", "primary")]"#,
            r#"vast.client.active_requests +1 [("source_url", "primary")]"#,
            r#"vast.client.active_requests -1 [("source_url", "primary")]"#,
            r#"vast.client.request.success 1 [("source_url", "primary"), ("result", "no_ad")]"#,
            r#"vast.client.request.duration h [("source_url", "primary"), ("result", "no_ad")]"#,
            r#"vast.parser.xml.parsed 1 [("source_url", "primary")]"#,
            r#"vast.parser.parse.duration h [("source_url", "primary")]"#,
        ]
    );
}

#[tokio::test]
async fn a_panicking_collector_cannot_take_the_request_down() {
    let server = AdServer::start().await.unwrap();
    let recorder = ByName::new(Panicking);
    let mut svc = layered(VastMetricsLayer::new(recorder.clone()));

    let (status, body) = fetch(&mut svc, &server.url("/inline")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, INLINE_VAST.as_bytes());
    // Each collector call panicked once: the new source's counters at 0
    // (total and every outcome); total and active at the start; active,
    // success and duration at the end; parsed and parse duration; the
    // pod: its seconds at 0, the ads returned, the seconds.
    let zeros = 1 + 2 + ErrorType::ALL.len() as u64;
    assert_eq!(recorder.panics(), zeros + 10);

    // The cancellation path records from a destructor: still no abort.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/chunked/5")))
        .await
        .unwrap();
    drop(res);
    // Another path, another source: its counters at 0; then total,
    // active +1; active -1, failure{cancelled}, duration.
    assert_eq!(recorder.panics(), 2 * zeros + 15);

    // Errors of the inner service come through unchanged.
    // A port that was just free: nothing listens there.
    let closed = common::closed_addr();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(get(&format!("http://{closed}/")))
        .await
        .unwrap_err();
    assert!(err.is_connect());
}

#[tokio::test]
async fn a_slow_collector_delays_but_delivers() {
    let server = AdServer::start().await.unwrap();
    let mut svc = layered(VastMetricsLayer::new(ByName::new(Slow)));
    for _ in 0..3 {
        let (_, body) = fetch(&mut svc, &server.url("/wrapper")).await.unwrap();
        assert!(body.starts_with(b"<?xml"));
    }
}
