//! VastMetricsMiddleware in a `reqwest_middleware::ClientWithMiddleware`
//! against the embedded ad server on loopback, alone and around
//! `reqwest_retry`.
#![cfg(feature = "reqwest-middleware")]

mod common;

use std::time::{Duration, Instant};

use common::{assert_client_invariants, label_values, parse, sum};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use vast_metrics::classify::Deadline;
use vast_metrics::source::{SourceHasher, SourceLabel};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer, VastMetricsMiddleware};
use vast_test_support::ad_server::{self, AdServer};

/// A client with only `middleware`.
fn client_with(middleware: VastMetricsMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// Retries `n` times, 1–2 ms apart.
fn retries(n: u32) -> RetryTransientMiddleware<ExponentialBackoff> {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(2))
        .build_with_max_retries(n);
    RetryTransientMiddleware::new_with_policy(policy)
}

fn failures(s: &[common::Sample], source: &str, error_type: &str) -> f64 {
    sum(
        s,
        "vast_client_request_failure_total",
        &[("source_url", source), ("error_type", error_type)],
    )
}

fn successes(s: &[common::Sample], source: &str, result: &str) -> f64 {
    sum(
        s,
        "vast_client_request_success_total",
        &[("source_url", source), ("result", result)],
    )
}

fn total(s: &[common::Sample], source: &str) -> f64 {
    sum(s, "vast_client_request_total", &[("source_url", source)])
}

#[tokio::test]
async fn every_outcome_is_counted_exactly() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = client_with(VastMetricsMiddleware::new(
        VastMetricsLayer::new(metrics.clone()).source_name("m"),
    ));

    for path in [
        "/inline?cb=1",
        "/gzip",
        "/chunked/7",
        "/no-ad",
        "/invalid-xml",
        "/empty",
        "/status/500",
        "/status/503",
        "/status/404",
    ] {
        let res = client.get(server.url(path)).send().await.unwrap();
        res.bytes().await.unwrap();
    }

    let s = parse(&metrics.encode());
    assert_eq!(total(&s, "m"), 9.0);
    assert_eq!(
        successes(&s, "m", "success"),
        3.0,
        "gzip decoded to inspect"
    );
    assert_eq!(successes(&s, "m", "no_ad"), 1.0);
    assert_eq!(failures(&s, "m", "invalid_xml"), 1.0);
    assert_eq!(failures(&s, "m", "empty_body"), 1.0);
    assert_eq!(failures(&s, "m", "http_5xx"), 2.0);
    assert_eq!(failures(&s, "m", "http_4xx"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("source_url", "m"), ("result", "error")]
        ),
        4.0
    );
    // The six 2xx bodies were inspected; the 4xx and 5xx were not.
    assert_eq!(
        sum(&s, "vast_parser_parse_duration_seconds_count", &[]),
        6.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn latency_ends_with_the_body() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = client_with(VastMetricsMiddleware::new(
        VastMetricsLayer::new(metrics.clone()).source_name("m"),
    ));

    let started = Instant::now();
    let res = client.get(server.url("/chunked/20")).send().await.unwrap();
    // Headers are in, the body is not read: still in flight, not observed.
    let s = parse(&metrics.encode());
    assert_eq!(sum(&s, "vast_client_active_requests", &[]), 1.0);
    assert_eq!(
        sum(&s, "vast_client_request_duration_seconds_count", &[]),
        0.0
    );
    assert_eq!(total(&s, "m"), 1.0);

    tokio::time::sleep(Duration::from_millis(150)).await;
    let body = res.bytes().await.unwrap();
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(body, ad_server::INLINE_VAST.as_bytes());

    let s = parse(&metrics.encode());
    assert_eq!(sum(&s, "vast_client_active_requests", &[]), 0.0);
    assert_eq!(successes(&s, "m", "success"), 1.0);
    let observed = sum(
        &s,
        "vast_client_request_duration_seconds_sum",
        &[("source_url", "m")],
    );
    assert!(
        (0.15..=waited).contains(&observed),
        "latency {observed} s runs to the end of the body (held 150 ms, {waited} s in all)"
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn responses_pass_through_unchanged() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = client_with(VastMetricsMiddleware::new(
        VastMetricsLayer::new(metrics.clone()).source_name("m"),
    ));

    for (path, want) in [
        (
            "/inline?cb=1&user=x",
            ad_server::INLINE_VAST.as_bytes().to_vec(),
        ),
        ("/chunked/30", ad_server::INLINE_VAST.as_bytes().to_vec()),
        ("/gzip", ad_server::gzip(ad_server::INLINE_VAST.as_bytes())),
        ("/status/503", b"status".to_vec()),
    ] {
        let url = server.url(path);
        let res = client.get(&url).send().await.unwrap();
        let plain = reqwest::get(&url).await.unwrap();
        assert_eq!(res.url().as_str(), url, "{path}");
        assert_eq!(res.status(), plain.status(), "{path}");
        let headers = |res: &reqwest::Response| {
            let mut h = res.headers().clone();
            h.remove(http::header::DATE);
            h
        };
        assert_eq!(headers(&res), headers(&plain), "{path}");
        let body = res.bytes().await.unwrap();
        assert_eq!(body, want, "{path}: the bytes are the server's");
        assert_eq!(body, plain.bytes().await.unwrap(), "{path}");
    }
    let s = parse(&metrics.encode());
    assert_eq!(successes(&s, "m", "success"), 3.0);
    assert_eq!(failures(&s, "m", "http_5xx"), 1.0);
    assert_client_invariants(&s);

    // A layer that records nothing: the middleware passes requests through.
    let client = client_with(VastMetricsLayer::default().into());
    let url = server.url("/inline?cb=2");
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.url().as_str(), url);
    assert_eq!(
        res.bytes().await.unwrap(),
        ad_server::INLINE_VAST.as_bytes()
    );
}

#[tokio::test]
async fn sources_are_labelled_as_by_the_layer() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone())
        .source_alias(&server.url("/inline"), "primary")
        .unwrap();
    let client = client_with(VastMetricsMiddleware::new(layer));

    // An alias (the query does not matter), a hash, an extension.
    for path in ["/inline?cb=1", "/inline?cb=2", "/no-ad?cb=3"] {
        let res = client.get(server.url(path)).send().await.unwrap();
        res.bytes().await.unwrap();
    }
    let res = client
        .get(server.url("/no-ad"))
        .with_extension(SourceLabel::new("from-extension"))
        .send()
        .await
        .unwrap();
    res.bytes().await.unwrap();
    // A fixed name.
    let named = client_with(VastMetricsMiddleware::new(
        VastMetricsLayer::new(metrics.clone()).source_name("named"),
    ));
    let res = named.get(server.url("/wrapper")).send().await.unwrap();
    res.bytes().await.unwrap();

    let s = parse(&metrics.encode());
    let hashed = SourceHasher::default().label_for(&server.url("/no-ad").parse().unwrap());
    let mut want = vec![
        "from-extension".to_owned(),
        hashed.clone(),
        "named".to_owned(),
        "primary".to_owned(),
    ];
    want.sort();
    assert_eq!(
        label_values(&s, "vast_client_request_total", "source_url"),
        want
    );
    assert_eq!(successes(&s, "primary", "success"), 2.0);
    assert_eq!(successes(&s, &hashed, "no_ad"), 1.0);
    assert_eq!(successes(&s, "from-extension", "no_ad"), 1.0);
    assert_eq!(successes(&s, "named", "success"), 1.0);
    assert_client_invariants(&s);
}

/// Fails every request with `Error::Middleware` of what `make` gives.
struct Failing(fn() -> anyhow::Error);

#[async_trait::async_trait]
impl Middleware for Failing {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::Middleware((self.0)()))
    }
}

#[tokio::test]
async fn errors_are_classified_and_returned_unchanged() {
    let closed = common::closed_addr();
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone());
    let with_timeout = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let reqwest_errors = ClientBuilder::new(with_timeout)
        .with(VastMetricsMiddleware::new(
            layer.clone().source_name("reqwest"),
        ))
        .build();

    let err = reqwest_errors
        .get(server.url("/slow/1000"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(err, reqwest_middleware::Error::Reqwest(_)));
    let err = reqwest_errors
        .get(format!("http://{closed}/vast"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // Errors of middlewares inside it: the anyhow chain is walked.
    let timed_out = ClientBuilder::new(reqwest::Client::new())
        .with(VastMetricsMiddleware::new(
            layer.clone().source_name("middleware"),
        ))
        .with(Failing(|| {
            anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"))
                .context("fetching VAST")
        }))
        .build();
    let err = timed_out
        .get(server.url("/inline"))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("the middleware's error comes through: {err:?}");
    };
    assert_eq!(err.to_string(), "fetching VAST");
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the cause kept");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

    let unknown = ClientBuilder::new(reqwest::Client::new())
        .with(VastMetricsMiddleware::new(layer.source_name("middleware")))
        .with(Failing(|| anyhow::anyhow!("no reason given")))
        .build();
    let err = unknown.get(server.url("/inline")).send().await.unwrap_err();
    assert_eq!(err.to_string(), "no reason given");

    let s = parse(&metrics.encode());
    assert_eq!(failures(&s, "reqwest", "timeout"), 1.0);
    assert_eq!(failures(&s, "reqwest", "connect"), 1.0);
    assert_eq!(failures(&s, "middleware", "timeout"), 1.0);
    assert_eq!(failures(&s, "middleware", "other"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("source_url", "reqwest"), ("result", "timeout")]
        ),
        1.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn dropped_requests_are_cancelled_or_timed_out() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = client_with(VastMetricsMiddleware::new(
        VastMetricsLayer::new(metrics.clone()).source_name("m"),
    ));

    // The call dropped mid-flight, without and with a passed deadline.
    let call = client.get(server.url("/slow/1000")).send();
    assert!(tokio::time::timeout(Duration::from_millis(30), call)
        .await
        .is_err());
    let call = client
        .get(server.url("/slow/1000"))
        .with_extension(Deadline(Instant::now() + Duration::from_millis(10)))
        .send();
    assert!(tokio::time::timeout(Duration::from_millis(30), call)
        .await
        .is_err());
    // The body dropped half read.
    let mut res = client.get(server.url("/chunked/20")).send().await.unwrap();
    assert!(res.chunk().await.unwrap().is_some());
    drop(res);

    let s = parse(&metrics.encode());
    assert_eq!(total(&s, "m"), 3.0);
    assert_eq!(failures(&s, "m", "cancelled"), 2.0);
    assert_eq!(failures(&s, "m", "timeout"), 1.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn inside_the_retries_it_counts_attempts() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(retries(2))
        .with(VastMetricsMiddleware::new(
            VastMetricsLayer::new(metrics.clone()).source_name("attempts"),
        ))
        .build();

    let url = server.url("/status/503");
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 503, "the last attempt's answer");
    assert_eq!(res.url().as_str(), url);
    assert_eq!(res.bytes().await.unwrap(), "status");
    let res = client.get(server.url("/inline")).send().await.unwrap();
    res.bytes().await.unwrap();

    let s = parse(&metrics.encode());
    assert_eq!(total(&s, "attempts"), 4.0, "2 retries + 1, then 1");
    assert_eq!(failures(&s, "attempts", "http_5xx"), 3.0);
    assert_eq!(successes(&s, "attempts", "success"), 1.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn outside_the_retries_it_counts_logical_requests() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone());
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(VastMetricsMiddleware::new(
            layer.clone().source_name("calls"),
        ))
        .with(retries(2))
        .with(VastMetricsMiddleware::new(layer.source_name("attempts")))
        .build();

    let url = server.url("/status/503");
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.url().as_str(), url);
    assert_eq!(res.bytes().await.unwrap(), "status");
    let url = server.url("/chunked/10");
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.url().as_str(), url);
    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_client_active_requests",
            &[("source_url", "calls")]
        ),
        1.0,
        "outside too, the request ends with the body"
    );
    assert_eq!(
        res.bytes().await.unwrap(),
        ad_server::INLINE_VAST.as_bytes()
    );

    let s = parse(&metrics.encode());
    assert_eq!(total(&s, "calls"), 2.0, "one per call");
    assert_eq!(failures(&s, "calls", "http_5xx"), 1.0);
    assert_eq!(successes(&s, "calls", "success"), 1.0);
    assert_eq!(total(&s, "attempts"), 4.0);
    assert_eq!(failures(&s, "attempts", "http_5xx"), 3.0);
    assert_eq!(successes(&s, "attempts", "success"), 1.0);
    // The inner body is wrapped twice and inspected by both: one verdict
    // each, the bytes unchanged.
    assert_eq!(
        sum(&s, "vast_parser_parse_duration_seconds_count", &[]),
        2.0
    );
    assert_client_invariants(&s);
}
