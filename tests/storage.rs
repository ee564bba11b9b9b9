//! What the Prometheus backend's storage promises: a new source's counter
//! series all exist at 0 from its first request (so `rate()` and absence
//! alerts work from the first scrape), and counts recorded from many
//! threads at once add up exactly.

mod common;

use std::time::Duration;

use common::{parse, sum};
use vast_metrics::classify::{ErrorType, FetchResult};
use vast_metrics::multi_source::{MultiSource, Source, VastRequest};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
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
