//! Wrapper chains against real loopback ad servers: a source fills only
//! when its chain ends in an InLine ad; each chain outcome counted exactly.

mod common;

use std::time::Duration;

use common::{layered, parse, sum, HttpClient};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::layer::VastMetricsService;
use vast_metrics::multi_source::{
    FetchReport, MultiSource, MultiSourceError, Source, Strategy, VastRequest,
};
use vast_metrics::wrapper::{ChainReport, ChainResult, WrapperResolverLayer};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{AdServer, INLINE_VAST};

fn value(metrics: &PrometheusMetrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&parse(&metrics.encode()), name, labels)
}

fn chains(metrics: &PrometheusMetrics, source: &str, result: &str) -> f64 {
    value(
        metrics,
        "vast_wrapper_chains_total",
        &[("source_url", source), ("result", result)],
    )
}

fn code(metrics: &PrometheusMetrics, source: &str, code: &str) -> f64 {
    value(
        metrics,
        "vast_errors_total",
        &[("source_url", source), ("code", code)],
    )
}

fn client(metrics: &PrometheusMetrics) -> VastMetricsService<HttpClient> {
    layered(VastMetricsLayer::new(metrics.clone()))
}

/// One fetch from a single source `name` at `path`.
async fn fetch_one(
    metrics: &PrometheusMetrics,
    server: &AdServer,
    name: &'static str,
    path: &str,
) -> Result<http::Response<bytes::Bytes>, MultiSourceError> {
    let mut fetcher = MultiSource::builder(client(metrics), metrics.clone())
        .tier([Source::parse(name, &server.url(path)).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
        .build();
    fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
}

fn assert_quiet(metrics: &PrometheusMetrics) {
    let samples = parse(&metrics.encode());
    for family in [
        "vast_client_active_requests",
        "vast_multi_source_active_requests",
    ] {
        assert_eq!(sum(&samples, family, &[]), 0.0, "{family} back to 0");
    }
    common::assert_client_invariants(&samples);
}

#[tokio::test]
async fn each_chain_outcome_is_counted_exactly() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();

    // Two hops to an InLine ad: a fill, and the winning body is the InLine.
    let res = fetch_one(&metrics, &server, "resolves", "/wrap/2")
        .await
        .unwrap();
    assert_eq!(res.body(), INLINE_VAST.as_bytes());
    let report = res.extensions().get::<FetchReport>().unwrap();
    let chain = report.attempts[0].chain.as_ref().unwrap();
    assert_eq!(chain.result, ChainResult::Success);
    assert_eq!(chain.hops.len(), 2);
    assert_eq!(chains(&metrics, "resolves", "success"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "vast_wrapper_chain_hops_sum",
            &[("source_url", "resolves")]
        ),
        2.0
    );

    // A chain that ends empty: no fill, 303.
    let err = fetch_one(&metrics, &server, "empty", "/wrap-empty/1")
        .await
        .unwrap_err();
    assert!(matches!(err, MultiSourceError::NoFill { .. }));
    assert_eq!(chains(&metrics, "empty", "no_ad"), 1.0);
    assert_eq!(code(&metrics, "empty", "303"), 1.0);

    // A hop answering 500: unavailable, 301.
    fetch_one(&metrics, &server, "unavailable", "/wrap-500")
        .await
        .unwrap_err();
    assert_eq!(chains(&metrics, "unavailable", "error"), 1.0);
    assert_eq!(code(&metrics, "unavailable", "301"), 1.0);

    // A hop answering broken XML.
    fetch_one(&metrics, &server, "broken", "/wrap-broken")
        .await
        .unwrap_err();
    assert_eq!(chains(&metrics, "broken", "invalid_xml"), 1.0);

    // followAdditionalWrappers="false" in front of another wrapper: 302.
    fetch_one(&metrics, &server, "nofollow", "/wrap-nofollow")
        .await
        .unwrap_err();
    assert_eq!(chains(&metrics, "nofollow", "depth_exceeded"), 1.0);
    assert_eq!(code(&metrics, "nofollow", "302"), 1.0);

    // Multi-source success means a resolved InLine ad.
    assert_eq!(
        value(
            &metrics,
            "vast_multi_source_sources_success_total",
            &[("source_url", "resolves"), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            "vast_multi_source_sources_success_total",
            &[("source_url", "empty"), ("result", "no_ad")]
        ),
        1.0
    );
    assert_quiet(&metrics);
}

#[tokio::test]
async fn loops_and_deep_chains_stop_at_once() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();

    // The tag itself, then its own URI again: not fetched a second time.
    fetch_one(&metrics, &server, "loop", "/loop")
        .await
        .unwrap_err();
    assert_eq!(server.hits("/loop"), 1);
    assert_eq!(chains(&metrics, "loop", "loop"), 1.0);
    assert_eq!(code(&metrics, "loop", "900"), 1.0);

    // Ten wrappers deep: the tag and five hops, then it stops (302).
    fetch_one(&metrics, &server, "deep", "/wrap/10")
        .await
        .unwrap_err();
    let fetched: usize = (0..=10).map(|n| server.hits(&format!("/wrap/{n}"))).sum();
    assert_eq!(fetched, 1 + 5);
    assert_eq!(server.hits("/wrap/4"), 0, "no request past the limit");
    assert_eq!(chains(&metrics, "deep", "depth_exceeded"), 1.0);
    assert_eq!(code(&metrics, "deep", "302"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "vast_wrapper_chain_hops_sum",
            &[("source_url", "deep")]
        ),
        5.0
    );
    assert_quiet(&metrics);
}

#[tokio::test]
async fn the_attempts_time_budget_covers_the_whole_chain() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut fetcher = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([Source::parse("slow-hop", &server.url("/wrap-slow/3000")).unwrap()])
        .source_timeout(Duration::from_millis(300))
        .deadline(Duration::from_secs(5))
        .build();
    let err = fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
        .unwrap_err();
    let report = err.report();
    assert_eq!(
        report.attempts[0].outcome,
        Outcome::Failure(ErrorType::Timeout)
    );
    assert!(report.attempts[0].elapsed < Duration::from_secs(3));
    assert_eq!(chains(&metrics, "slow-hop", "timeout"), 1.0);
    assert_eq!(code(&metrics, "slow-hop", "301"), 1.0);
    assert_quiet(&metrics);
}

#[tokio::test]
async fn a_chain_that_ends_empty_falls_through_to_the_next_source() {
    let server = AdServer::start().await.unwrap();
    for strategy in [Strategy::Sequential, Strategy::Race, Strategy::Parallel] {
        let metrics = PrometheusMetrics::new();
        let mut fetcher = MultiSource::builder(client(&metrics), metrics.clone())
            .tier([
                Source::parse("wrapped-empty", &server.url("/wrap-empty/2")).unwrap(),
                Source::parse("slow-inline", &server.url("/slow/100")).unwrap(),
            ])
            .strategy(strategy)
            .source_timeout(Duration::from_secs(5))
            .build();
        let res = fetcher
            .ready()
            .await
            .unwrap()
            .call(VastRequest::new())
            .await
            .unwrap();
        let report = res.extensions().get::<FetchReport>().unwrap();
        assert_eq!(report.winner.as_deref(), Some("slow-inline"), "{strategy}");
        assert_eq!(
            chains(&metrics, "wrapped-empty", "no_ad"),
            1.0,
            "{strategy}"
        );
        assert_quiet(&metrics);
    }
}

#[tokio::test]
async fn dropping_the_fetch_mid_chain_leaves_every_gauge_at_zero() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut fetcher = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([Source::parse("dropped", &server.url("/wrap-slow/2000")).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
        .build();
    let fetch = fetcher.ready().await.unwrap().call(VastRequest::new());
    assert!(tokio::time::timeout(Duration::from_millis(300), fetch)
        .await
        .is_err());
    // The attempt task is aborted; give it a moment to unwind.
    for _ in 0..50 {
        if value(&metrics, "vast_client_active_requests", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_quiet(&metrics);
    // Cut short by design before its deadline: no chain counted.
    assert_eq!(
        value(
            &metrics,
            "vast_wrapper_chains_total",
            &[("source_url", "dropped")]
        ),
        0.0
    );
}

#[tokio::test]
async fn the_resolver_alone_in_front_of_a_client() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut resolver = WrapperResolverLayer::new(metrics.clone()).layer(client(&metrics));
    let req = http::Request::get(server.url("/wrap/3?cb=42"))
        .body(Full::default())
        .unwrap();
    let res = resolver.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.body(), INLINE_VAST.as_bytes());
    let report = res.extensions().get::<ChainReport>().unwrap();
    assert_eq!(report.result, ChainResult::Success);
    assert_eq!(report.hops.len(), 3);
    // The originating source is labelled by its hashed URL; each hop's
    // request is a client request of its own, labelled by its URL.
    let text = metrics.encode();
    assert!(!text.contains("cb=42") && !text.contains("127.0.0.1"));
    let samples = parse(&text);
    assert_eq!(
        sum(
            &samples,
            "vast_wrapper_chains_total",
            &[("result", "success")]
        ),
        1.0
    );
    assert_eq!(sum(&samples, "vast_client_request_total", &[]), 4.0);
    assert_eq!(
        common::label_values(&samples, "vast_client_request_total", "source_url").len(),
        4
    );
}
