//! VastMetricsLayer against a real hyper ad server on loopback, through
//! hyper-util's client.

mod common;

use std::time::Duration;

use common::{
    assert_client_invariants, fetch, get, http_client, label_values, layered, parse, send, sum,
};
use http_body::Body as _;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use vast_metrics::layer::Latency;
use vast_metrics::source::{SourceHasher, SourceLabel};
use vast_metrics::tracking::TrackingEvent;
use vast_metrics::{NoOpMetrics, PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{self, AdServer};

#[tokio::test]
async fn every_outcome_is_classified() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()));

    let cases = [
        ("/inline?cb=1", "success", None),
        ("/wrapper", "success", None),
        ("/chunked/7", "success", None),
        ("/no-ad", "no_ad", None),
        ("/invalid-xml", "error", Some("invalid_xml")),
        ("/not-vast", "error", Some("invalid_xml")),
        ("/empty", "error", Some("empty_body")),
        ("/status/500", "error", Some("http_5xx")),
        ("/status/404", "error", Some("http_4xx")),
    ];
    for (path, result, error) in cases {
        fetch(&mut svc, &server.url(path)).await.unwrap();
        let label = SourceHasher::default().label_for(&server.url(path).parse().unwrap());
        let s = parse(&metrics.encode());
        let src = ("source_url", label.as_str());
        assert_eq!(sum(&s, "vast_client_request_total", &[src]), 1.0, "{path}");
        match error {
            None => assert_eq!(
                sum(
                    &s,
                    "vast_client_request_success_total",
                    &[src, ("result", result)]
                ),
                1.0,
                "{path}"
            ),
            Some(error) => {
                assert_eq!(
                    sum(
                        &s,
                        "vast_client_request_failure_total",
                        &[src, ("error_type", error)]
                    ),
                    1.0,
                    "{path}"
                );
                let result = if error == "invalid_xml" {
                    "invalid_xml"
                } else {
                    result
                };
                assert_eq!(
                    sum(
                        &s,
                        "vast_client_request_duration_seconds_count",
                        &[src, ("result", result)]
                    ),
                    1.0,
                    "{path}"
                );
            }
        }
    }
    let s = parse(&metrics.encode());
    // Inspected: the five 2xx VAST-ish bodies and the empty one.
    assert_eq!(sum(&s, "vast_parser_xml_parsed_total", &[]), 4.0);
    assert_eq!(
        sum(
            &s,
            "vast_parser_xml_failed_total",
            &[("error_type", "invalid_xml")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_parser_xml_failed_total",
            &[("error_type", "empty_body")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "vast_parser_parse_duration_seconds_count", &[]),
        7.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn connect_errors_and_timeouts_keep_the_error_type() {
    // A port that was just free: nothing listens there.
    let closed = common::closed_addr();
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone());

    let mut plain = layered(layer.clone());
    let err = fetch(&mut plain, &format!("http://{closed}/vast"))
        .await
        .unwrap_err();
    assert!(
        err.contains("Connect"),
        "the client's own error comes through: {err}"
    );

    let mut timed = ServiceBuilder::new()
        .layer(layer.clone().source_name("slow"))
        .timeout(Duration::from_millis(50))
        .service(http_client());
    let err = fetch(&mut timed, &server.url("/slow/2000"))
        .await
        .unwrap_err();
    assert!(err.contains("Elapsed"), "{err}");

    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "connect")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("source_url", "slow"), ("error_type", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_duration_seconds_count",
            &[("result", "timeout")]
        ),
        1.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn cancellation_paths_leave_nothing_active() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()).source_name("ads"));

    // 1. The response future dropped mid-flight.
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/slow/1000")));
    assert!(tokio::time::timeout(Duration::from_millis(30), fut)
        .await
        .is_err());
    let s = parse(&metrics.encode());
    assert_eq!(sum(&s, "vast_client_active_requests", &[]), 0.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "cancelled")]
        ),
        1.0
    );

    // 2. The body dropped half read, and unread.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/chunked/20")))
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(
        sum(
            &parse(&metrics.encode()),
            "vast_client_active_requests",
            &[]
        ),
        1.0
    );
    drop(body);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/inline")))
        .await
        .unwrap();
    drop(res);

    // 3. The body failing mid-stream.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/reset")))
        .await
        .unwrap();
    assert!(res.into_body().collect().await.is_err());

    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "cancelled")]
        ),
        3.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "body")]
        ),
        1.0
    );
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 4.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn bodies_pass_through_byte_for_byte() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()));
    let mut bare = http_client();
    for path in [
        "/inline",
        "/chunked/50",
        "/big/300",
        "/big/2048",
        "/invalid-xml",
        "/status/503",
    ] {
        let (_, through_layer) = fetch(&mut svc, &server.url(path)).await.unwrap();
        let (_, direct) = fetch(&mut bare, &server.url(path)).await.unwrap();
        assert_eq!(through_layer, direct, "{path}");
    }
    assert_eq!(
        fetch(&mut svc, &server.url("/inline")).await.unwrap().1,
        ad_server::INLINE_VAST.as_bytes()
    );
    let s = parse(&metrics.encode());
    // 2 MiB is past the 1 MiB inspection cap: the HTTP verdict, no parse.
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("result", "success")]
        ),
        5.0
    );
    assert_eq!(sum(&s, "vast_parser_xml_parsed_total", &[]), 4.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn labels_hold_no_host_path_or_query() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()));
    for user in 0..5 {
        let url = server.url(&format!("/inline?user_id=secret-user-{user}&cb={user}"));
        fetch(&mut svc, &url).await.unwrap();
    }
    let text = metrics.encode();
    for leak in [
        "127.0.0.1",
        "inline",
        "user_id",
        "secret-user",
        "cb=",
        &server.addr().port().to_string(),
    ] {
        assert!(!text.contains(leak), "exposition leaks {leak:?}");
    }
    // Five URLs that differ only in the query are one source.
    let s = parse(&text);
    let labels = label_values(&s, "vast_client_request_total", "source_url");
    assert_eq!(
        labels,
        [SourceHasher::default().label_for(&server.url("/inline").parse().unwrap())]
    );
    assert_eq!(labels[0].len(), 12);
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 5.0);
}

#[tokio::test]
async fn aliases_keys_overrides_and_the_cap() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let unkeyed = SourceHasher::default().label_for(&server.url("/wrapper").parse().unwrap());
    let keyed = SourceHasher::keyed(*b"0123456789abcdef")
        .label_for(&server.url("/wrapper").parse().unwrap());
    assert_ne!(unkeyed, keyed);

    let layer = VastMetricsLayer::new(metrics.clone())
        .hash_key(*b"0123456789abcdef")
        .source_alias(&server.url("/inline?any=query"), "primary")
        .unwrap()
        .max_sources(3);
    let mut svc = layered(layer);
    fetch(&mut svc, &server.url("/inline?cb=42")).await.unwrap();
    fetch(&mut svc, &server.url("/wrapper")).await.unwrap();
    let mut req = get(&server.url("/no-ad"));
    req.extensions_mut().insert(SourceLabel::new("backup"));
    send(&mut svc, req).await.unwrap();
    // Cap of 3: `keyed` and `backup` count (the alias does not), so the
    // second and third new path go to `other`.
    for path in ["/status/500", "/slow/1", "/chunked/2"] {
        fetch(&mut svc, &server.url(path)).await.unwrap();
    }

    let s = parse(&metrics.encode());
    let mut labels = label_values(&s, "vast_client_request_total", "source_url");
    labels.sort();
    let mut want = vec![
        "backup".to_owned(),
        keyed.clone(),
        "other".to_owned(),
        "primary".to_owned(),
    ];
    want.push(
        SourceHasher::keyed(*b"0123456789abcdef")
            .label_for(&server.url("/status/500").parse().unwrap()),
    );
    want.sort();
    assert_eq!(labels, want);
    assert!(!labels.contains(&unkeyed));
    assert_eq!(
        sum(&s, "vast_client_request_total", &[("source_url", "other")]),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_metrics_errors_total",
            &[("reason", "source_label_overflow")]
        ),
        2.0
    );
    assert_client_invariants(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_over_ten_sources() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let svc = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()))
        .concurrency_limit(200)
        .service(http_client());
    let paths = [
        "/inline",
        "/wrapper",
        "/no-ad",
        "/invalid-xml",
        "/status/500",
        "/chunked/3",
        "/empty",
        "/status/404",
        "/big/8",
        "/slow/5",
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let mut svc = svc.clone();
        let url = server.url(&format!("{}?cb={i}", paths[i % paths.len()]));
        tasks.spawn(async move { fetch(&mut svc, &url).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let s = parse(&metrics.encode());
    let sources = label_values(&s, "vast_client_request_total", "source_url");
    assert_eq!(sources.len(), 10);
    for source in &sources {
        assert_eq!(
            sum(&s, "vast_client_request_total", &[("source_url", source)]),
            100.0
        );
    }
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("result", "success")]
        ),
        500.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("result", "no_ad")]
        ),
        100.0
    );
    assert_eq!(sum(&s, "vast_client_request_failure_total", &[]), 400.0);
    assert_client_invariants(&s);
}

#[tokio::test]
async fn latency_to_headers_and_without_inspection() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone())
        .latency(Latency::ToHeaders)
        .inspect_vast(false)
        .source_name("h");
    let mut svc = layered(layer);
    fetch(&mut svc, &server.url("/invalid-xml")).await.unwrap();
    let s = parse(&metrics.encode());
    // No inspection: a 2xx is success, and the parser family is untouched.
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "vast_parser_xml_parsed_total", &[]) + sum(&s, "vast_parser_xml_failed_total", &[]),
        0.0
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn tracking_mode_records_events() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut pixels = layered(vast_metrics::TrackingMetricsLayer::new(metrics.clone()));
    for (event, path) in [
        (TrackingEvent::IMPRESSION, "/pixel"),
        (TrackingEvent::FIRST_QUARTILE, "/pixel"),
        (TrackingEvent::FIRST_QUARTILE, "/status/500"),
        // A pixel server that redirects took the hit: sent.
        (TrackingEvent::MIDPOINT, "/redirect/302"),
    ] {
        let mut req = get(&server.url(path));
        req.extensions_mut().insert(event);
        send(&mut pixels, req).await.unwrap();
    }
    fetch(&mut pixels, &server.url("/pixel")).await.unwrap();
    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_sent_total",
            &[("event_type", "impression")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_sent_total",
            &[("event_type", "firstQuartile")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_sent_total",
            &[("event_type", "unknown")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_failed_total",
            &[("event_type", "firstQuartile"), ("error_type", "http_5xx")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_sent_total",
            &[("event_type", "midpoint")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_tracking_event_failed_total",
            &[("error_type", "redirect")]
        ),
        0.0
    );
    assert_eq!(
        sum(&s, "vast_tracking_request_duration_seconds_count", &[]),
        5.0
    );
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 0.0);
}

#[tokio::test]
async fn noop_layer_passes_everything_through() {
    let server = AdServer::start().await.unwrap();
    let mut svc = layered(VastMetricsLayer::new(NoOpMetrics));
    let (_, body) = fetch(&mut svc, &server.url("/inline")).await.unwrap();
    assert_eq!(body, ad_server::INLINE_VAST.as_bytes());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/status/503")))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(!res.body().is_end_stream());
}

#[tokio::test]
async fn latency_runs_to_the_end_of_the_body() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut body_end = layered(VastMetricsLayer::new(metrics.clone()).source_name("body"));
    let mut headers = layered(
        VastMetricsLayer::new(metrics.clone())
            .source_name("headers")
            .latency(Latency::ToHeaders),
    );
    // 20 chunks sent 2 ms apart: the body takes at least 38 ms after the headers.
    fetch(&mut body_end, &server.url("/chunked/20"))
        .await
        .unwrap();
    fetch(&mut headers, &server.url("/slow/100")).await.unwrap();
    let s = parse(&metrics.encode());
    let seconds = |source| {
        sum(
            &s,
            "vast_client_request_duration_seconds_sum",
            &[("source_url", source)],
        )
    };
    // Lower bounds only: the server's own sleeps guarantee them.
    assert!(seconds("body") >= 0.038, "body latency {}", seconds("body"));
    assert!(
        seconds("headers") >= 0.1,
        "header latency {}",
        seconds("headers")
    );
    assert_client_invariants(&s);
}

#[tokio::test]
async fn a_drop_past_the_request_deadline_is_a_timeout() {
    use vast_metrics::classify::Deadline;
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = layered(VastMetricsLayer::new(metrics.clone()).source_name("ads"));
    for (deadline_ms, wait_ms) in [(20, 60), (5_000, 30)] {
        let mut req = get(&server.url("/slow/1000"));
        let deadline = std::time::Instant::now() + Duration::from_millis(deadline_ms);
        req.extensions_mut().insert(Deadline(deadline));
        let call = svc.ready().await.unwrap().call(req);
        // The caller's own time-out drops the request: past the deadline in
        // the first round, well before it in the second.
        assert!(tokio::time::timeout(Duration::from_millis(wait_ms), call)
            .await
            .is_err());
    }
    let s = parse(&metrics.encode());
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "cancelled")]
        ),
        1.0
    );
    assert_client_invariants(&s);
}
