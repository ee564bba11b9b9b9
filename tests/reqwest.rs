//! VastMetricsLayer over a real `reqwest::Client` against the embedded ad
//! server on loopback.
#![cfg(feature = "reqwest")]

mod common;

use std::time::Duration;

use common::{assert_client_invariants, label_values, parse, sum};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use vast_metrics::source::SourceHasher;
use vast_metrics::tracking::TrackingEvent;
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{self, AdServer};

/// Sends a GET for `url` through `svc` (built with `client`).
async fn send<S>(
    svc: &mut S,
    client: &reqwest::Client,
    url: &str,
) -> reqwest::Result<reqwest::Response>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = reqwest::Error>,
{
    let req = client.get(url).build()?;
    svc.ready().await?.call(req).await
}

/// A new `reqwest::Client`, and a clone of it behind `layer`.
fn reqwest_layered<L: Layer<reqwest::Client>>(layer: L) -> (reqwest::Client, L::Service) {
    let client = reqwest::Client::new();
    (client.clone(), layer.layer(client))
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

#[tokio::test]
async fn every_outcome_is_classified() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let (client, mut svc) =
        reqwest_layered(VastMetricsLayer::new(metrics.clone()).source_name("r"));

    for path in [
        "/inline?cb=1",
        "/wrapper",
        "/chunked/7",
        "/no-ad",
        "/invalid-xml",
        "/not-vast",
        "/empty",
        "/status/500",
        "/status/404",
    ] {
        let res = send(&mut svc, &client, &server.url(path)).await.unwrap();
        res.bytes().await.unwrap();
    }

    let s = parse(&metrics.encode());
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 9.0);
    assert_eq!(successes(&s, "r", "success"), 3.0);
    assert_eq!(successes(&s, "r", "no_ad"), 1.0);
    assert_eq!(failures(&s, "r", "invalid_xml"), 2.0);
    assert_eq!(failures(&s, "r", "empty_body"), 1.0);
    assert_eq!(failures(&s, "r", "http_5xx"), 1.0);
    assert_eq!(failures(&s, "r", "http_4xx"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("result", "invalid_xml")]
        ),
        2.0
    );
    // The seven 2xx bodies were inspected; the 4xx and 5xx were not.
    assert_eq!(sum(&s, "vast_parser_xml_parsed_total", &[]), 4.0);
    assert_eq!(sum(&s, "vast_parser_xml_failed_total", &[]), 3.0);
    assert_eq!(
        sum(&s, "vast_parser_parse_duration_seconds_count", &[]),
        7.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn reqwest_timeouts_and_refused_connections_keep_their_error_type() {
    // A port that was just free: nothing listens there.
    let closed = common::closed_addr();
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let layer = VastMetricsLayer::new(metrics.clone());

    let mut slow = ServiceBuilder::new()
        .layer(layer.clone().source_name("slow"))
        .service(client.clone());
    let err = send(&mut slow, &client, &server.url("/slow/1000"))
        .await
        .unwrap_err();
    assert!(
        err.is_timeout(),
        "reqwest's own error comes through: {err:?}"
    );

    let mut refused = ServiceBuilder::new()
        .layer(layer.source_name("refused"))
        .service(client.clone());
    let err = send(&mut refused, &client, &format!("http://{closed}/vast"))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    let s = parse(&metrics.encode());
    assert_eq!(failures(&s, "slow", "timeout"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("source_url", "slow"), ("result", "timeout")]
        ),
        1.0
    );
    assert_eq!(failures(&s, "refused", "connect"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("source_url", "refused"), ("result", "error")]
        ),
        1.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn bodies_and_urls_pass_through() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let (client, mut svc) =
        reqwest_layered(VastMetricsLayer::new(metrics.clone()).source_name("r"));

    for path in ["/inline?cb=1&user=x", "/chunked/50"] {
        let url = server.url(path);
        let res = send(&mut svc, &client, &url).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.url().as_str(), url);
        assert_eq!(
            res.headers()["content-type"],
            "application/xml",
            "headers survive too"
        );
        let body = res.bytes().await.unwrap();
        assert_eq!(body, ad_server::INLINE_VAST.as_bytes(), "{path}");
    }
    // Non-2xx bodies are passed through untouched as well.
    let url = server.url("/status/503");
    let res = send(&mut svc, &client, &url).await.unwrap();
    assert_eq!(res.url().as_str(), url);
    assert_eq!(res.bytes().await.unwrap(), "status");

    let s = parse(&metrics.encode());
    assert_eq!(successes(&s, "r", "success"), 2.0);
    assert_eq!(failures(&s, "r", "http_5xx"), 1.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn dropped_requests_and_responses_are_cancelled() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let (client, mut svc) =
        reqwest_layered(VastMetricsLayer::new(metrics.clone()).source_name("r"));

    // 1. The response dropped unread: the request ends as `cancelled`.
    let res = send(&mut svc, &client, &server.url("/chunked/20"))
        .await
        .unwrap();
    let s = parse(&metrics.encode());
    assert_eq!(sum(&s, "vast_client_active_requests", &[]), 1.0);
    drop(res);

    // 2. Half read, then dropped.
    let mut res = send(&mut svc, &client, &server.url("/chunked/20"))
        .await
        .unwrap();
    assert!(res.chunk().await.unwrap().is_some());
    drop(res);

    // 3. The response future dropped mid-flight.
    let req = client.get(server.url("/slow/1000")).build().unwrap();
    let fut = svc.ready().await.unwrap().call(req);
    assert!(tokio::time::timeout(Duration::from_millis(30), fut)
        .await
        .is_err());

    let s = parse(&metrics.encode());
    assert_eq!(failures(&s, "r", "cancelled"), 3.0);
    assert_eq!(sum(&s, "vast_client_active_requests", &[]), 0.0);
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 3.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn hashed_labels_agree_with_the_hyper_path() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // No source name: the label is the hash of the normalised URL.
    let (client, mut svc) = reqwest_layered(VastMetricsLayer::new(metrics.clone()));

    let url = server.url("/inline?cb=7&user_id=secret");
    let res = send(&mut svc, &client, &url).await.unwrap();
    res.bytes().await.unwrap();
    // Another spelling of the same source: one label still.
    let shouted = url.replace("http://", "HTTP://").replace("?cb=7", "?cb=8");
    let res = send(&mut svc, &client, &shouted).await.unwrap();
    res.bytes().await.unwrap();

    let s = parse(&metrics.encode());
    let want = SourceHasher::default().label_for(&url.parse::<http::Uri>().unwrap());
    assert_eq!(
        label_values(&s, "vast_client_request_total", "source_url"),
        std::slice::from_ref(&want)
    );
    assert_eq!(
        SourceHasher::default().label_for(&shouted.parse::<http::Uri>().unwrap()),
        want
    );
    assert_eq!(successes(&s, &want, "success"), 2.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn redirects_reqwest_follows_are_one_request_of_the_original_url() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // reqwest's default policy follows up to 10 redirects by itself: the
    // layer sees one request, to the URL asked for, and the final answer.
    let (client, mut svc) = reqwest_layered(VastMetricsLayer::new(metrics.clone()));
    let url = server.url("/hop/3");
    let res = send(&mut svc, &client, &url).await.unwrap();
    assert_eq!(res.url().path(), "/hop/0", "reqwest followed");
    res.bytes().await.unwrap();
    for n in 0..=3 {
        assert_eq!(server.hits(&format!("/hop/{n}")), 1, "/hop/{n}");
    }
    let s = parse(&metrics.encode());
    let label = SourceHasher::default().label_for(&url.parse::<http::Uri>().unwrap());
    assert_eq!(
        label_values(&s, "vast_client_request_total", "source_url"),
        std::slice::from_ref(&label)
    );
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 1.0);
    assert_eq!(successes(&s, &label, "success"), 1.0);
    assert_eq!(failures(&s, &label, "redirect"), 0.0);

    // With redirects off, the 3xx reaches the layer: `redirect`.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut svc = VastMetricsLayer::new(metrics.clone())
        .source_name("not-followed")
        .layer(client.clone());
    let res = send(&mut svc, &client, &server.url("/redirect/302"))
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::FOUND);
    res.bytes().await.unwrap();
    assert_eq!(server.hits("/inline"), 0);
    let s = parse(&metrics.encode());
    assert_eq!(failures(&s, "not-followed", "redirect"), 1.0);
    assert_eq!(failures(&s, "not-followed", "http_5xx"), 0.0);
    // reqwest's redirects are its own: no fetcher of the crate counted any.
    assert_eq!(sum(&s, "vast_redirects_total", &[]), 0.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn tracking_pixels_use_the_default_event() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let (client, mut pixels) = reqwest_layered(
        vast_metrics::TrackingMetricsLayer::new(metrics.clone())
            .default_event(TrackingEvent::IMPRESSION),
    );

    for path in ["/pixel", "/pixel", "/status/500"] {
        let res = send(&mut pixels, &client, &server.url(path)).await.unwrap();
        res.bytes().await.unwrap();
    }

    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_sent_total",
            &[("event_type", "impression")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_failed_total",
            &[("event_type", "impression"), ("error_type", "http_5xx")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "vast_tracking_request_duration_seconds_count", &[]),
        3.0
    );
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 0.0);
}
