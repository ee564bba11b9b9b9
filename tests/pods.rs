//! Ad pods and fill by time against real loopback ad servers: ads per
//! answer, seconds of linear ads per source, and seconds of break filled
//! against seconds requested, from the one scan of each body.

mod common;

use std::time::Duration;

use common::{layered, parse, sum};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};
use vast_metrics::multi_source::{FetchReport, MultiSource, Source, Strategy, VastRequest};
use vast_metrics::wrapper::WrapperResolverLayer;
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

fn value(metrics: &PrometheusMetrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&parse(&metrics.encode()), name, labels)
}

fn seconds(metrics: &PrometheusMetrics, source: &str) -> f64 {
    value(
        metrics,
        "vast_ad_duration_seconds_total",
        &[("source_url", source)],
    )
}

/// `(count, sum)` of `vast_ads_returned{source_url}`.
fn ads(metrics: &PrometheusMetrics, source: &str) -> (f64, f64) {
    let s = [("source_url", source)];
    (
        value(metrics, "vast_ads_returned_count", &s),
        value(metrics, "vast_ads_returned_sum", &s),
    )
}

fn bad_durations(metrics: &PrometheusMetrics) -> f64 {
    value(
        metrics,
        "vast_metrics_errors_total",
        &[("reason", "bad_duration")],
    )
}

#[tokio::test]
async fn the_layer_alone_counts_each_answer_with_ads() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut client = layered(VastMetricsLayer::new(metrics.clone()).source_name("ssp"));
    for path in [
        "/pod/3",
        "/pod/5",
        "/inline",
        "/no-ad",
        "/pod-bad/2",
        "/status/500",
    ] {
        let req = common::get(&server.url(path));
        let res = client.ready().await.unwrap().call(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    // Four answers with ads (3, 5, 1 and 2 ads): no-ad and 500 are not
    // pods.
    assert_eq!(ads(&metrics, "ssp"), (4.0, 11.0));
    let text = metrics.encode();
    assert!(
        text.contains(r#"vast_ads_returned_bucket{source_url="ssp",le="1"} 1"#),
        "{text}"
    );
    // Cumulative: 1 | 1, 2 | 1, 2, 3 | ... | all four by 5.
    for (le, n) in [("2", 2), ("3", 3), ("4", 3), ("5", 4), ("20", 4)] {
        let line = format!(r#"vast_ads_returned_bucket{{source_url="ssp",le="{le}"}} {n}"#);
        assert!(text.contains(&line), "{line}");
    }
    // 3 × 15 s + 5 × 15 s + the inline ad's 16 s; the two `0:15` add
    // nothing and are counted.
    assert_eq!(seconds(&metrics, "ssp"), 136.0);
    assert_eq!(bad_durations(&metrics), 2.0);
    assert!(common::promtool_accepts(&text));
}

#[tokio::test]
async fn a_fetcher_counts_the_inline_answer_at_the_end_of_a_chain_for_its_source() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = layered(VastMetricsLayer::new(metrics.clone()));
    let mut fetcher = MultiSource::builder(client, metrics.clone())
        .tier([Source::parse("ssp", &server.url("/wrap-pod/4")).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .build();
    let res = fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new().break_duration(Duration::from_secs(90)))
        .await
        .unwrap();
    let report = res.extensions().get::<FetchReport>().unwrap();
    assert_eq!(report.ad_duration, Duration::from_secs(60));
    assert_eq!(report.break_requested, Some(Duration::from_secs(90)));
    // The pod at the end of the chain, for the source asked, once: not the
    // wrapper, and not under the hop's own label.
    assert_eq!(ads(&metrics, "ssp"), (1.0, 4.0));
    assert_eq!(seconds(&metrics, "ssp"), 60.0);
    let text = metrics.encode();
    let pods: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("vast_ads_returned_count"))
        .collect();
    assert_eq!(pods.len(), 1, "{pods:?}");
    let strategy = [("fetch_strategy", "parallel")];
    let requested = "vast_multi_source_break_requested_seconds_total";
    let filled = "vast_multi_source_break_filled_seconds_total";
    assert_eq!(value(&metrics, requested, &strategy), 90.0);
    assert_eq!(value(&metrics, filled, &strategy), 60.0);
}

#[tokio::test]
async fn fill_by_time_counts_every_fetch_with_a_break_and_may_pass_100_percent() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = layered(VastMetricsLayer::new(metrics.clone()));
    let mut fetcher = MultiSource::builder(client.clone(), metrics.clone())
        .tier([Source::parse("pods", &server.url("/pod/5")).unwrap()])
        .strategy(Strategy::Sequential)
        .build();
    let mut empty = MultiSource::builder(client, metrics.clone())
        .tier([Source::parse("empty", &server.url("/no-ad")).unwrap()])
        .strategy(Strategy::Sequential)
        .build();
    let break_of = |s| VastRequest::new().break_duration(Duration::from_secs(s));
    // 75 s of ads for a 60 s break: overfilled, and shown as such.
    fetcher
        .ready()
        .await
        .unwrap()
        .call(break_of(60))
        .await
        .unwrap();
    // No fill: requested, nothing filled.
    let err = empty.ready().await.unwrap().call(break_of(30)).await;
    assert!(err.is_err());
    // Without a break: in neither counter.
    fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
        .unwrap();
    let strategy = [("fetch_strategy", "sequential")];
    let requested = value(
        &metrics,
        "vast_multi_source_break_requested_seconds_total",
        &strategy,
    );
    let filled = value(
        &metrics,
        "vast_multi_source_break_filled_seconds_total",
        &strategy,
    );
    assert_eq!((requested, filled), (90.0, 75.0));
    // Ads per answer: the two pods of five; the no-ad answer is none.
    assert_eq!(ads(&metrics, "pods"), (2.0, 10.0));
    assert_eq!(ads(&metrics, "empty"), (0.0, 0.0));
}

#[tokio::test]
async fn a_wrapper_resolver_counts_the_resolved_pod_for_the_chain_source() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = layered(VastMetricsLayer::new(metrics.clone()));
    let mut resolver = WrapperResolverLayer::new(metrics.clone()).layer(client);
    let mut req = common::get(&server.url("/wrap-pod/2"));
    req.extensions_mut()
        .insert(vast_metrics::source::SourceLabel::new("resolved"));
    let res = resolver.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(ads(&metrics, "resolved"), (1.0, 2.0));
    assert_eq!(seconds(&metrics, "resolved"), 30.0);
}

#[tokio::test]
async fn the_generic_api_takes_milliseconds_for_a_counter_of_seconds() {
    use vast_metrics::{MetricLabels, MetricsCollector, VastMetrics};
    let metrics = PrometheusMetrics::new();
    let labels = [(MetricLabels::SOURCE_URL, "by-name")];
    metrics.increment(VastMetrics::AD_DURATION, 15_500, &labels);
    let text = metrics.encode();
    assert!(
        text.contains(r#"vast_ad_duration_seconds_total{source_url="by-name"} 15.5"#),
        "{text}"
    );
    assert!(text.contains("# TYPE vast_ad_duration_seconds_total counter"));
}
