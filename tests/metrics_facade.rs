//! `MetricsFacade` over metrics-rs: real traffic through `VastMetricsLayer`
//! against the loopback ad server, read back from metrics-util's
//! `DebuggingRecorder`. Its own test binary: the recorder is global.
#![cfg(feature = "metrics-facade")]

mod common;

use std::collections::BTreeMap;

use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use vast_metrics::metrics_facade::MetricsFacade;
use vast_metrics::names::family;
use vast_metrics::recorder::{RecordError, Recorder};
use vast_metrics::VastMetricsLayer;
use vast_test_support::ad_server::AdServer;

/// One series of a snapshot: kind, name, sorted labels.
type Series = (MetricKind, String, BTreeMap<String, String>);

#[derive(Debug)]
struct Recorded {
    value: DebugValue,
    unit: Option<Unit>,
    help: Option<SharedString>,
}

fn snapshot(snapshotter: &Snapshotter) -> BTreeMap<Series, Recorded> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, help, value)| {
            let (kind, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let series = (kind, key.name().to_owned(), labels);
            (series, Recorded { value, unit, help })
        })
        .collect()
}

fn series(kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (kind, name.to_owned(), labels)
}

fn counter(s: &BTreeMap<Series, Recorded>, name: &str, labels: &[(&str, &str)]) -> u64 {
    match s.get(&series(MetricKind::Counter, name, labels)) {
        Some(Recorded {
            value: DebugValue::Counter(n),
            ..
        }) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

fn observations(s: &BTreeMap<Series, Recorded>, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match s.get(&series(MetricKind::Histogram, name, labels)) {
        Some(Recorded {
            value: DebugValue::Histogram(v),
            ..
        }) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

#[tokio::test]
async fn layer_traffic_reaches_the_metrics_rs_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let server = AdServer::start().await.unwrap();
    let mut layer = VastMetricsLayer::new(MetricsFacade::new());
    for (path, alias) in [
        ("/inline", "fill"),
        ("/no-ad", "nofill"),
        ("/invalid-xml", "broken"),
        ("/status/500", "down"),
    ] {
        layer = layer.source_alias(&server.url(path), alias).unwrap();
    }
    let mut svc = common::layered(layer);
    let traffic = [
        ("/inline", 3),
        ("/no-ad", 2),
        ("/invalid-xml", 1),
        ("/status/500", 2),
    ];
    for (path, n) in traffic {
        for _ in 0..n {
            common::fetch(&mut svc, &server.url(path)).await.unwrap();
        }
    }

    let s = snapshot(&snapshotter);
    let total = "vast_client_request_total";
    let success = "vast_client_request_success_total";
    let failure = "vast_client_request_failure_total";
    let duration = "vast_client_request_duration_seconds";
    assert_eq!(counter(&s, total, &[("source_url", "fill")]), 3);
    assert_eq!(counter(&s, total, &[("source_url", "nofill")]), 2);
    assert_eq!(counter(&s, total, &[("source_url", "broken")]), 1);
    assert_eq!(counter(&s, total, &[("source_url", "down")]), 2);
    let fill = [("source_url", "fill"), ("result", "success")];
    assert_eq!(counter(&s, success, &fill), 3);
    let nofill = [("source_url", "nofill"), ("result", "no_ad")];
    assert_eq!(counter(&s, success, &nofill), 2);
    let broken = [("source_url", "broken"), ("error_type", "invalid_xml")];
    assert_eq!(counter(&s, failure, &broken), 1);
    let down = [("source_url", "down"), ("error_type", "http_5xx")];
    assert_eq!(counter(&s, failure, &down), 2);
    // Nothing else was counted as a success or failure.
    let outcomes: u64 = s
        .iter()
        .filter(|((_, name, _), _)| name == success || name == failure)
        .map(|(_, r)| match r.value {
            DebugValue::Counter(n) => n,
            _ => panic!("{r:?}"),
        })
        .sum();
    assert_eq!(outcomes, 8);

    // One duration per request, in seconds (loopback: well under 10 s).
    let fill_durations = observations(&s, duration, &fill);
    assert_eq!(fill_durations.len(), 3);
    assert!(fill_durations.iter().all(|d| (0.0..10.0).contains(d)));
    let down_durations = observations(&s, duration, &[("source_url", "down"), ("result", "error")]);
    assert_eq!(down_durations.len(), 2);

    // Described once with the family's unit and help.
    let d = &s[&series(MetricKind::Histogram, duration, &fill)];
    assert_eq!(d.unit, Some(Unit::Seconds));
    assert_eq!(
        d.help.as_deref(),
        Some(family::CLIENT_REQUEST_DURATION_MS.help)
    );
    let t = &s[&series(MetricKind::Counter, total, &[("source_url", "fill")])];
    assert_eq!(t.unit, Some(Unit::Count));

    // Every request in flight ended: the gauge went up and down by as much.
    for alias in ["fill", "nofill", "broken", "down"] {
        let g = &s[&series(
            MetricKind::Gauge,
            "vast_client_active_requests",
            &[("source_url", alias)],
        )];
        assert!(
            matches!(g.value, DebugValue::Gauge(v) if v.into_inner() == 0.0),
            "{alias}: {g:?}"
        );
    }
}

/// Handles resolved under a local recorder keep recording into it; gauges
/// move both ways; errors count by reason.
#[test]
fn handles_gauges_and_errors_under_a_local_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let facade = MetricsFacade::new();
    let (sent, active) = metrics::with_local_recorder(&recorder, || {
        facade.record_error(RecordError::SourceLabelOverflow);
        (
            facade.register_counter(&family::TRACKING_EVENT_SENT, &["impression"]),
            facade.register_gauge(&family::MULTI_SOURCE_ACTIVE_REQUESTS, &["race"]),
        )
    });
    sent.increment(2);
    sent.increment(1);
    active.add(3.0);
    active.add(-1.0);

    let s = snapshot(&snapshotter);
    let event = [("event_type", "impression")];
    assert_eq!(counter(&s, "vast_tracking_event_sent_total", &event), 3);
    let reason = [("reason", "source_label_overflow")];
    assert_eq!(counter(&s, "vast_metrics_errors_total", &reason), 1);
    let g = &s[&series(
        MetricKind::Gauge,
        "vast_multi_source_active_requests",
        &[("fetch_strategy", "race")],
    )];
    assert!(
        matches!(g.value, DebugValue::Gauge(v) if v.into_inner() == 2.0),
        "{g:?}"
    );
}
