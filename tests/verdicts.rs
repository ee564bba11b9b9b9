//! True verdicts on real traffic, against the embedded ad server on
//! loopback through hyper-util (and reqwest, with the feature): encoded
//! bodies, 204, VAST 1, IAB error codes, a load-shed rejection, and a body
//! dropped after its complete document. Exposition values are exact.

mod common;

use bytes::Bytes;
use common::{fetch, layered, parse, sum};
use http_body::Body as _;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{self, AdServer, INLINE_VAST};

/// The value of one series of the exposition, 0 when absent.
fn value(metrics: &PrometheusMetrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&parse(&metrics.encode()), name, labels)
}

fn success(metrics: &PrometheusMetrics, source: &str, result: &str) -> f64 {
    value(
        metrics,
        "vast_client_request_success_total",
        &[("source_url", source), ("result", result)],
    )
}

fn failure(metrics: &PrometheusMetrics, source: &str, error: &str) -> f64 {
    value(
        metrics,
        "vast_client_request_failure_total",
        &[("source_url", source), ("error_type", error)],
    )
}

fn code(metrics: &PrometheusMetrics, source: &str, code: &str) -> f64 {
    value(
        metrics,
        "vast_errors_total",
        &[("source_url", source), ("code", code)],
    )
}

/// One request through `layer`; the bytes the caller read.
async fn one(layer: VastMetricsLayer, url: &str) -> Bytes {
    let mut svc = layered(layer);
    fetch(&mut svc, url).await.unwrap().1
}

#[tokio::test]
async fn encoded_bodies_are_inspected_decoded_and_delivered_unchanged() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = |name: &'static str| VastMetricsLayer::new(metrics.clone()).source_name(name);

    let gzip = one(layer("gzip"), &server.url("/gzip")).await;
    assert_eq!(
        gzip,
        ad_server::gzip(INLINE_VAST.as_bytes()),
        "bytes as sent"
    );
    assert_eq!(success(&metrics, "gzip", "success"), 1.0);

    let zlib = one(layer("deflate"), &server.url("/deflate")).await;
    assert_eq!(zlib, ad_server::zlib(INLINE_VAST.as_bytes()));
    one(layer("deflate"), &server.url("/raw-deflate")).await;
    assert_eq!(success(&metrics, "deflate", "success"), 2.0);

    one(layer("gzip-no-ad"), &server.url("/gzip-no-ad")).await;
    assert_eq!(success(&metrics, "gzip-no-ad", "no_ad"), 1.0);

    // What no player could decode, no player could parse.
    one(layer("corrupt"), &server.url("/gzip-corrupt")).await;
    assert_eq!(failure(&metrics, "corrupt", "invalid_xml"), 1.0);
    assert_eq!(code(&metrics, "corrupt", "100"), 1.0);

    // An encoding the crate cannot decode: the HTTP verdict, counted.
    let br = one(layer("br"), &server.url("/br")).await;
    assert_eq!(br, INLINE_VAST.as_bytes());
    assert_eq!(success(&metrics, "br", "success"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "vast_metrics_errors_total",
            &[("reason", "unsupported_encoding")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            "vast_parser_xml_parsed_total",
            &[("source_url", "br")]
        ),
        0.0,
        "not inspected"
    );
}

#[tokio::test]
async fn a_gzip_bomb_costs_at_most_the_cap() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // A cap above the compressed size, so the bomb is decoded: up to the
    // cap, then the verdict is the HTTP one (as for a plain body past it).
    let layer = VastMetricsLayer::new(metrics.clone())
        .source_name("bomb")
        .inspect_limit(4 << 20);
    let body = one(layer, &server.url("/gzip-bomb")).await;
    assert_eq!(body, ad_server::gzip_bomb(), "bytes as sent");
    assert_eq!(success(&metrics, "bomb", "success"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "vast_parser_xml_parsed_total",
            &[("source_url", "bomb")]
        ) + value(
            &metrics,
            "vast_parser_xml_failed_total",
            &[("source_url", "bomb")]
        ),
        0.0,
        "past the cap: no verdict of the parser"
    );
}

#[tokio::test]
async fn no_content_is_no_fill_and_vast_1_is_vast() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = |name: &'static str| VastMetricsLayer::new(metrics.clone()).source_name(name);
    one(layer("204"), &server.url("/status/204")).await;
    assert_eq!(success(&metrics, "204", "no_ad"), 1.0);
    assert_eq!(failure(&metrics, "204", "empty_body"), 0.0);
    one(layer("vast1"), &server.url("/vast1")).await;
    assert_eq!(success(&metrics, "vast1", "success"), 1.0);
}

#[tokio::test]
async fn iab_codes_count_the_same_requests_as_invalid_xml() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()).source_name("s"));
    for path in [
        "/invalid-xml",
        "/invalid-xml",
        "/not-vast",
        "/gzip-corrupt",
        "/inline",
        "/no-ad",
        "/empty",
        "/status/500",
    ] {
        fetch(&mut svc, &server.url(path)).await.unwrap();
    }
    assert_eq!(code(&metrics, "s", "100"), 3.0);
    assert_eq!(code(&metrics, "s", "101"), 1.0);
    let samples = parse(&metrics.encode());
    let codes: f64 = samples
        .iter()
        .filter(|s| s.name == "vast_errors_total" && s.labels["code"].starts_with("10"))
        .map(|s| s.value)
        .sum();
    assert_eq!(codes, failure(&metrics, "s", "invalid_xml"));
    assert_eq!(codes, 4.0);
}

#[tokio::test]
async fn a_load_shed_rejection_is_rejected_not_the_servers_error() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // The only slot is held by a slow request; the next one is shed.
    let svc = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()).source_name("shed"))
        .load_shed()
        .concurrency_limit(1)
        .service(common::http_client());
    let mut slow = svc.clone();
    let mut shed = svc;
    let held = slow
        .ready()
        .await
        .unwrap()
        .call(common::get(&server.url("/slow/300")));
    let holding = tokio::spawn(held);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let err = shed
        .ready()
        .await
        .unwrap()
        .call(common::get(&server.url("/inline")))
        .await
        .unwrap_err();
    assert!(err.is::<tower::load_shed::error::Overloaded>(), "{err:?}");
    let res = holding.await.unwrap().unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(failure(&metrics, "shed", "rejected"), 1.0);
    assert_eq!(success(&metrics, "shed", "success"), 1.0);
}

#[tokio::test]
async fn a_body_dropped_after_its_complete_document_counts_by_its_verdict() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()).source_name("c"));
    // Three data frames, then the end of the stream in a frame of its own.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(common::get(&server.url("/chunked/3")))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut read = Vec::new();
    while read.len() < INLINE_VAST.len() {
        let frame = body.frame().await.unwrap().unwrap();
        read.extend_from_slice(frame.data_ref().unwrap());
    }
    assert_eq!(read, INLINE_VAST.as_bytes());
    assert!(
        !body.is_end_stream(),
        "the end of the stream is not read yet"
    );
    drop(body);
    assert_eq!(success(&metrics, "c", "success"), 1.0);
    assert_eq!(failure(&metrics, "c", "cancelled"), 0.0);

    // Half a document dropped: cancelled.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(common::get(&server.url("/chunked/3")))
        .await
        .unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(failure(&metrics, "c", "cancelled"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "vast_client_active_requests",
            &[("source_url", "c")]
        ),
        0.0
    );
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_without_its_gzip_feature_gets_the_same_verdicts() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = reqwest::Client::new();
    let mut svc = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()).source_name("r"))
        .service(client.clone());
    for path in ["/gzip", "/status/204", "/vast1", "/not-vast"] {
        let req = client.get(server.url(path)).build().unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        res.bytes().await.unwrap();
    }
    assert_eq!(success(&metrics, "r", "success"), 2.0);
    assert_eq!(success(&metrics, "r", "no_ad"), 1.0);
    assert_eq!(code(&metrics, "r", "101"), 1.0);
}
