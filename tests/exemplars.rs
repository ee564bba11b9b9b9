//! Exemplars and OpenMetrics: a request's W3C `traceparent` marks the
//! duration bucket it lands in; `/metrics` answers OpenMetrics 1.0 (with
//! those exemplars) to a scraper that asks for it, and the text format
//! 0.0.4 otherwise. Real hyper servers and clients on loopback.
//! (`tests/prometheus_server.rs` has a real Prometheus store them.)

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use vast_metrics::prometheus::OPENMETRICS_CONTENT_TYPE;
use vast_metrics::server::CONTENT_TYPE;
use vast_metrics::{MetricsServer, PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn traced(url: &str, traceparent: &str) -> http::Request<http_body_util::Full<Bytes>> {
    let mut req = common::get(url);
    req.headers_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    req
}

/// The bucket lines of a histogram series in an OpenMetrics text:
/// (le, count, exemplar part after ` # `).
fn buckets<'a>(text: &'a str, prefix: &str) -> Vec<(f64, f64, Option<&'a str>)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let (sample, exemplar) = match l.split_once(" # ") {
                Some((s, e)) => (s, Some(e)),
                None => (l, None),
            };
            let le = sample
                .split("le=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let count = sample.rsplit(' ').next().unwrap().parse().unwrap();
            (le, count, exemplar)
        })
        .collect()
}

#[tokio::test]
async fn a_traced_request_is_the_exemplar_of_its_bucket() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = common::layered(VastMetricsLayer::new(metrics.clone()).source_name("primary"));
    let parent = format!("00-{TRACE}-{SPAN}-01");
    common::send(&mut svc, traced(&server.url("/slow/30"), &parent))
        .await
        .unwrap();
    // Untraced and badly traced requests add counts, not exemplars.
    common::fetch(&mut svc, &server.url("/inline"))
        .await
        .unwrap();
    common::send(&mut svc, traced(&server.url("/inline"), "00-zz-11-01"))
        .await
        .unwrap();

    let text = metrics.encode_openmetrics();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    // Counters: the family without `_total`, the sample with it.
    assert!(text.contains("# TYPE vast_client_request counter\n"));
    assert!(text.contains("vast_client_request_total{source_url=\"primary\"} 3\n"));
    assert!(text.contains("# TYPE vast_client_request_duration_seconds histogram\n"));

    let lines = buckets(
        &text,
        "vast_client_request_duration_seconds_bucket{source_url=\"primary\",result=\"success\"",
    );
    assert!(lines.len() > 2 && lines.last().unwrap().0.is_infinite());
    assert_eq!(lines.last().unwrap().1, 3.0);
    let marked: Vec<_> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.2.is_some())
        .collect();
    assert_eq!(
        marked.len(),
        1,
        "one traced request, one exemplar: {lines:?}"
    );
    let (i, (le, _, exemplar)) = marked[0];
    let exemplar = exemplar.unwrap();
    let want = format!("{{trace_id=\"{TRACE}\",span_id=\"{SPAN}\"}} ");
    assert!(exemplar.starts_with(&want), "{exemplar}");
    // Its value is the request's duration, in the bucket it marks.
    let mut rest = exemplar[want.len()..].split(' ');
    let value: f64 = rest.next().unwrap().parse().unwrap();
    let at: f64 = rest.next().unwrap().parse().unwrap();
    assert!(value >= 0.03 && value <= *le, "{value} in le={le}");
    assert!(i == 0 || value > lines[i - 1].0);
    assert!(at > 1.7e9, "a Unix timestamp in seconds: {at}");

    // The text format has no exemplars and stays as it was.
    let plain = metrics.encode();
    assert!(!plain.contains(TRACE) && !plain.contains("# EOF"));
    assert!(common::promtool_accepts(&plain));
}

#[tokio::test]
async fn exemplars_can_be_turned_off() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone()).trace_exemplars(false);
    let mut svc = common::layered(layer);
    let parent = format!("00-{TRACE}-{SPAN}-01");
    common::send(&mut svc, traced(&server.url("/inline"), &parent))
        .await
        .unwrap();
    let text = metrics.encode_openmetrics();
    assert!(text.contains("vast_client_request_duration_seconds_bucket"));
    assert!(!text.contains(TRACE));
}

#[tokio::test]
async fn the_endpoint_negotiates_openmetrics() {
    let ads = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = common::layered(VastMetricsLayer::new(metrics.clone()));
    let parent = format!("00-{TRACE}-{SPAN}-01");
    common::send(&mut svc, traced(&ads.url("/inline"), &parent))
        .await
        .unwrap();
    let server = common::start(MetricsServer::new(metrics.clone())).await;
    let url = format!("http://{}/metrics", server.local_addr());
    let client = common::http_client::<Empty<Bytes>>();
    let scrape = |accept: Option<&'static str>| {
        let mut req = http::Request::get(&url);
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let req = req.body(Empty::new()).unwrap();
        let client = client.clone();
        async move {
            let res = client.request(req).await.unwrap();
            let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (content_type, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    // What Prometheus sends.
    let (ct, text) = scrape(Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")).await;
    assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
    assert!(text.ends_with("# EOF\n") && text.contains(TRACE));
    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let (ct, text) = scrape(accept).await;
        assert_eq!(ct, CONTENT_TYPE, "{accept:?}");
        assert!(!text.contains("# EOF"));
    }
    server.shutdown().await.unwrap();
}
