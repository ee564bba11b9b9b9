//! What the Prometheus backend's storage promises: a new source's counter
//! series all exist at 0 from its first request (so `rate()` and absence
//! alerts work from the first scrape), counts recorded from many threads at
//! once add up exactly, a source's series go together once no handle of
//! any of them is held, and a handle kept past its release never writes
//! into another series.

mod common;

use std::time::Duration;

use common::{parse, sum};
use vast_metrics::classify::{ErrorType, FetchResult};
use vast_metrics::multi_source::{MultiSource, Source, VastRequest};
use vast_metrics::names::family::{CLIENT_REQUEST_FAILURE, CLIENT_REQUEST_TOTAL};
use vast_metrics::{PrometheusMetrics, Recorder, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

/// Whether the series `name{labels}` is in `samples`, at 0.
fn at_zero(samples: &[common::Sample], name: &str, labels: &[(&str, &str)]) -> bool {
    samples.iter().any(|x| {
        x.name == name
            && x.value == 0.0
            && labels
                .iter()
                .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

#[tokio::test]
async fn a_new_source_has_every_counter_at_zero_from_its_first_request() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let svc = common::layered(VastMetricsLayer::new(metrics.clone()).source_name("fresh"));
    // Scraped while the first request is still in flight (it takes 2 s;
    // the scrape waits at most 1.5 s for it to start).
    let mut slow = svc.clone();
    let url = server.url("/slow/2000");
    let request = tokio::spawn(async move { common::fetch(&mut slow, &url).await });
    let s = [("source_url", "fresh")];
    let mut samples = Vec::new();
    for _ in 0..150 {
        samples = parse(&metrics.encode());
        if sum(&samples, "vast_client_request_total", &s) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sum(&samples, "vast_client_request_total", &s), 1.0);
    assert_eq!(sum(&samples, "vast_client_active_requests", &s), 1.0);
    for error in ErrorType::ALL {
        let labels = [("source_url", "fresh"), ("error_type", error.as_str())];
        assert!(
            at_zero(&samples, "vast_client_request_failure_total", &labels),
            "no failure series at 0 for {error:?}"
        );
    }
    for result in [FetchResult::Success, FetchResult::NoAd] {
        let labels = [("source_url", "fresh"), ("result", result.as_str())];
        assert!(
            at_zero(&samples, "vast_client_request_success_total", &labels),
            "no success series at 0 for {result:?}"
        );
    }
    request.await.unwrap().unwrap();
    let samples = parse(&metrics.encode());
    common::assert_client_invariants(&samples);
    assert_eq!(
        sum(
            &samples,
            "vast_client_request_success_total",
            &[("source_url", "fresh"), ("result", "success")]
        ),
        1.0
    );
    assert!(common::promtool_accepts(&metrics.encode()));
}

#[tokio::test]
async fn multi_source_attempts_and_fetches_start_at_zero_too() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let client = common::http_client();
    let source = Source::new("only", server.url("/inline").parse().unwrap());
    let mut fetcher = MultiSource::builder(client, metrics.clone())
        .tier([source])
        .build();
    use tower::{Service, ServiceExt};
    fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
        .unwrap();
    let samples = parse(&metrics.encode());
    let attempt_failures = samples
        .iter()
        .filter(|x| {
            x.name == "vast_multi_source_sources_failure_total"
                && x.labels.get("source_url").map(String::as_str) == Some("only")
        })
        .count();
    assert_eq!(attempt_failures, ErrorType::ALL.len());
    let fetch_failures = samples
        .iter()
        .filter(|x| x.name == "vast_multi_source_requests_failure_total")
        .count();
    assert_eq!(fetch_failures, ErrorType::ALL.len());
}

#[test]
fn counts_from_many_threads_add_up_exactly() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 5_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone());
    let answer = |_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(vast_test_support::ad_server::INLINE_VAST.as_bytes()),
        )))
    };
    let svc = tower::Layer::layer(&layer, tower::service_fn(answer));
    rt.block_on(async {
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    use http_body_util::BodyExt;
                    use tower::{Service, ServiceExt};
                    for i in 0..PER_THREAD {
                        // Two sources: one all threads share, one per thread.
                        let host = if i % 2 == 0 {
                            "shared".to_owned()
                        } else {
                            format!("own{t}")
                        };
                        let req = http::Request::get(format!("http://{host}.example/vast"))
                            .body(())
                            .unwrap();
                        let res = svc.ready().await.unwrap().call(req).await.unwrap();
                        res.into_body().collect().await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let samples = parse(&metrics.encode());
    common::assert_client_invariants(&samples);
    let total = sum(&samples, "vast_client_request_total", &[]);
    assert_eq!(total, (THREADS * PER_THREAD) as f64);
    let ads = sum(
        &samples,
        "vast_client_request_success_total",
        &[("result", "success")],
    );
    assert_eq!(ads, total);
    let observed = sum(&samples, "vast_client_request_duration_seconds_count", &[]);
    assert_eq!(observed, total);
}

/// The value of `vast_client_request_total{source_url}`, if listed.
fn requests_of(metrics: &PrometheusMetrics, source: &str) -> Option<f64> {
    parse(&metrics.encode())
        .into_iter()
        .find(|x| {
            x.name == "vast_client_request_total"
                && x.labels.get("source_url").map(String::as_str) == Some(source)
        })
        .map(|x| x.value)
}

fn listed(metrics: &PrometheusMetrics, source: &str) -> bool {
    metrics
        .encode()
        .contains(&format!("source_url=\"{source}\""))
}

#[test]
fn a_release_counts_per_series_so_one_family_cannot_drop_a_source_another_holds() {
    let metrics = PrometheusMetrics::new();
    metrics
        .register_counter(&CLIENT_REQUEST_TOTAL, &["a"])
        .increment(3);
    metrics
        .register_counter(&CLIENT_REQUEST_FAILURE, &["a", "timeout"])
        .increment(1);
    // The failure handle given back twice (once too often): a count per
    // source would now reach 0 and drop "a" while its total is held.
    metrics.release(&CLIENT_REQUEST_FAILURE, &["a", "timeout"]);
    metrics.release(&CLIENT_REQUEST_FAILURE, &["a", "timeout"]);
    assert_eq!(requests_of(&metrics, "a"), Some(3.0));
    metrics.release(&CLIENT_REQUEST_TOTAL, &["a"]);
    assert!(!listed(&metrics, "a"));
}

#[test]
fn a_source_goes_whole_never_in_part() {
    let metrics = PrometheusMetrics::new();
    let total = metrics.register_counter(&CLIENT_REQUEST_TOTAL, &["a"]);
    let timeout = metrics.register_counter(&CLIENT_REQUEST_FAILURE, &["a", "timeout"]);
    // Made at zero, unheld: goes with its source.
    metrics.zero(&CLIENT_REQUEST_FAILURE, &["a", "dns"]);
    total.increment(2);
    timeout.increment(2);
    // Its total given back, its failures still held: a scrape still sees
    // all of "a" (an error ratio never loses its denominator).
    metrics.release(&CLIENT_REQUEST_TOTAL, &["a"]);
    let text = metrics.encode();
    assert_eq!(requests_of(&metrics, "a"), Some(2.0));
    assert!(text.contains(r#"error_type="dns""#), "{text}");
    metrics.release(&CLIENT_REQUEST_FAILURE, &["a", "timeout"]);
    assert!(!listed(&metrics, "a"), "{}", metrics.encode());
    // Registered again: it starts from zero.
    metrics
        .register_counter(&CLIENT_REQUEST_TOTAL, &["a"])
        .increment(1);
    assert_eq!(requests_of(&metrics, "a"), Some(1.0));
}

#[test]
fn a_stale_handle_never_writes_into_another_series() {
    let metrics = PrometheusMetrics::new();
    let stale = metrics.register_counter(&CLIENT_REQUEST_TOTAL, &["gone"]);
    stale.increment(1);
    metrics.release(&CLIENT_REQUEST_TOTAL, &["gone"]);
    assert!(!listed(&metrics, "gone"));
    // New series made after the drop, as an expired source's cells would
    // be reused; the stale handle still records (a request in flight).
    let fresh: Vec<_> = (0..8)
        .map(|i| {
            let source = format!("new{i}");
            let counter = metrics.register_counter(&CLIENT_REQUEST_TOTAL, &[&source]);
            (source, counter)
        })
        .collect();
    stale.increment(100);
    for (source, _) in &fresh {
        assert_eq!(requests_of(&metrics, source), Some(0.0), "{source}");
    }
    // Once the stale handle is gone, the cells are reused, from zero.
    drop(stale);
    metrics.register_counter(&CLIENT_REQUEST_TOTAL, &["later"]);
    assert_eq!(requests_of(&metrics, "later"), Some(0.0));
}
