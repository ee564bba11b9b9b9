//! The exposition of a fixed sequence of requests, compared with a
//! checked-in file (`tests/fixtures/golden_exposition.txt`): a refactor
//! must not change what dashboards and alerts read.
//!
//! Everything runs in memory with fixed answers. Values that depend on the
//! clock are masked: a histogram keeps its `+Inf` bucket and `_count`, its
//! `_sum` value is dropped. Run with `VAST_GOLDEN_WRITE=1` to rewrite the
//! file after a deliberate contract change (and say why in the commit).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::Outcome;
use vast_metrics::multi_source::{
    Attempt, FetchReport, MultiSource, MultiSourceMetricsLayer, Source, Strategy, VastRequest,
};
use vast_metrics::source::SourceLabel;
use vast_metrics::tracking::{TrackingEvent, TrackingMetricsLayer};
use vast_metrics::{
    MetricLabels, MetricsCollector, PrometheusMetrics, VastMetrics, VastMetricsLayer,
};
use vast_test_support::ad_server::{INLINE_VAST, INVALID_XML, NOT_VAST, NO_AD_VAST, WRAPPER_VAST};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/golden_exposition.txt"
);

type Req = http::Request<Full<Bytes>>;

/// An ad server in memory: the answer is chosen by the path.
async fn answer(req: Req) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let ok =
        |body: &'static str| http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let status = |code: u16| {
        http::Response::builder()
            .status(code)
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap()
    };
    Ok(match req.uri().path() {
        "/inline" => ok(INLINE_VAST),
        "/wrapper" => ok(WRAPPER_VAST),
        "/no-ad" => ok(NO_AD_VAST),
        "/invalid" => ok(INVALID_XML),
        "/not-vast" => ok(NOT_VAST),
        "/empty" => ok(""),
        "/500" => status(500),
        "/404" => status(404),
        "/204" => status(204),
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "refused",
            ))
        }
    })
}

fn get(url: &str) -> Req {
    http::Request::get(url).body(Full::default()).unwrap()
}

async fn fetch<S, B>(svc: &mut S, req: Req)
where
    S: Service<Req, Response = http::Response<B>>,
    B: http_body::Body,
{
    if let Ok(res) = svc.ready().await.ok().unwrap().call(req).await {
        let _ = res.into_body().collect().await;
    }
}

/// The fixed traffic.
async fn record(metrics: &PrometheusMetrics) {
    // One layer names its upstream; one aliases a URL and hashes the rest.
    let mut named = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()).source_name("named"))
        .service(service_fn(answer));
    let mut hashed = ServiceBuilder::new()
        .layer(
            VastMetricsLayer::new(metrics.clone())
                .source_alias("http://aliased.example/inline", "aliased")
                .unwrap(),
        )
        .service(service_fn(answer));
    for path in [
        "/inline",
        "/inline",
        "/wrapper",
        "/no-ad",
        "/invalid",
        "/not-vast",
        "/empty",
        "/500",
        "/404",
        "/refused",
    ] {
        fetch(&mut named, get(&format!("http://named.example{path}?cb=1"))).await;
        fetch(&mut hashed, get(&format!("http://h.example{path}"))).await;
    }
    fetch(&mut hashed, get("http://aliased.example/inline?user=42")).await;
    let mut labelled = get("http://x.example/inline");
    labelled
        .extensions_mut()
        .insert(SourceLabel::new("from-extension"));
    fetch(&mut hashed, labelled).await;
    // A response dropped before its body: cancelled.
    let res = named
        .ready()
        .await
        .unwrap()
        .call(get("http://n/inline"))
        .await
        .unwrap();
    drop(res);

    // Tracking pixels.
    let mut pixels = ServiceBuilder::new()
        .layer(TrackingMetricsLayer::new(metrics.clone()))
        .service(service_fn(answer));
    let mut imp = get("http://t.example/204");
    imp.extensions_mut().insert(TrackingEvent::IMPRESSION);
    fetch(&mut pixels, imp).await;
    let mut start = get("http://t.example/500");
    start.extensions_mut().insert(TrackingEvent::START);
    fetch(&mut pixels, start).await;
    fetch(&mut pixels, get("http://t.example/204")).await;

    // Multi-source fetches over the layered in-memory client.
    let client = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()))
        .service(service_fn(answer));
    let sources = |names: &[(&'static str, &str)]| {
        names
            .iter()
            .map(|(name, path)| {
                Source::parse(*name, &format!("http://{name}.example{path}")).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let mut fetcher = MultiSource::builder(client.clone(), metrics.clone())
        .tier(sources(&[("primary", "/no-ad"), ("secondary", "/500")]))
        .tier(sources(&[("backup", "/inline")]))
        .strategy(Strategy::Sequential)
        .source_timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
        .build();
    for _ in 0..2 {
        let _ = fetcher
            .ready()
            .await
            .unwrap()
            .call(VastRequest::new())
            .await;
    }
    let mut empty = MultiSource::builder(client, metrics.clone())
        .tier(sources(&[("broken", "/invalid"), ("refusing", "/refused")]))
        .build();
    let _ = empty.ready().await.unwrap().call(VastRequest::new()).await;

    // A fetcher of one's own, through MultiSourceMetricsLayer.
    let own = service_fn(|_: ()| async {
        let mut report = FetchReport::new(Strategy::Race);
        report.attempts.push(Attempt::new(
            "own-a",
            0,
            Outcome::NoAd,
            Duration::from_millis(3),
        ));
        report.attempts.push(Attempt::new(
            "own-b",
            1,
            Outcome::Ad,
            Duration::from_millis(4),
        ));
        report.fallback_depth = 1;
        report.winner = Some("own-b".into());
        let mut res = http::Response::new(());
        res.extensions_mut().insert(report);
        Ok::<_, Infallible>(res)
    });
    let mut own = ServiceBuilder::new()
        .layer(MultiSourceMetricsLayer::new(metrics.clone()).strategy(Strategy::Race))
        .service(own);
    own.ready().await.unwrap().call(()).await.unwrap();

    // The generic API.
    metrics.increment(
        VastMetrics::PARSER_XML_PARSED,
        2,
        &[(MetricLabels::SOURCE_URL, "generic")],
    );
    metrics.timing(VastMetrics::MULTI_SOURCE_FILTER_DURATION, 1.5, &[]);
    metrics.gauge("app.queue.depth", 3.0, &[("queue", "a")]);
    metrics.histogram("ad.size", 2048.0, &[]);
}

/// The exposition without what depends on the clock, sorted.
fn masked(exposition: &str) -> String {
    let mut lines: Vec<String> = exposition
        .lines()
        .filter(|l| !l.contains("_bucket{") || l.contains("le=\"+Inf\""))
        .map(|l| match l.split_once("_sum") {
            Some((name, rest)) if !l.starts_with('#') => {
                let labels = rest.rsplit_once(' ').map_or(rest, |(labels, _)| labels);
                format!("{name}_sum{labels} <masked>")
            }
            _ => l.to_owned(),
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

#[tokio::test]
async fn exposition_of_a_fixed_sequence_is_unchanged() {
    let metrics = PrometheusMetrics::new();
    record(&metrics).await;
    let got = masked(&metrics.encode());
    if std::env::var_os("VAST_GOLDEN_WRITE").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).expect("the golden file is checked in");
    if got != want {
        let diff: Vec<_> = got
            .lines()
            .filter(|l| !want.lines().any(|w| w == *l))
            .map(|l| format!("+ {l}"))
            .chain(
                want.lines()
                    .filter(|w| !got.lines().any(|l| l == *w))
                    .map(|l| format!("- {l}")),
            )
            .collect();
        panic!("exposition differs from {GOLDEN}:\n{}", diff.join("\n"));
    }
}
