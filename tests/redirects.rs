//! HTTP redirects against real loopback ad servers, through hyper-util's
//! client behind `VastMetricsLayer`: `MultiSource` and `WrapperResolver`
//! follow them as a player's HTTP stack does; the layer counts one request
//! per logical fetch; a 3xx not followed is `redirect`.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{assert_client_invariants, layered, parse, sum, HttpClient, Sample};
use http_body_util::Full;
use tower::load_shed::error::Overloaded;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::layer::VastMetricsService;
use vast_metrics::multi_source::{
    FetchReport, MultiSource, MultiSourceBuilder, MultiSourceError, Source, VastRequest,
};
use vast_metrics::source::SourceHasher;
use vast_metrics::wrapper::{ChainReport, ChainResult, WrapperResolverLayer};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{AdServer, INLINE_VAST};

type Client = VastMetricsService<HttpClient>;

fn client(metrics: &PrometheusMetrics) -> Client {
    layered(VastMetricsLayer::new(metrics.clone()))
}

/// A fetcher of one source `name` at `path`, with generous time-outs.
fn one_source(
    metrics: &PrometheusMetrics,
    server: &AdServer,
    name: &'static str,
    path: &str,
) -> MultiSourceBuilder<Client> {
    MultiSource::builder(client(metrics), metrics.clone())
        .tier([Source::parse(name, &server.url(path)).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
}

async fn fetch<S>(fetcher: &mut MultiSource<S>) -> Result<http::Response<Bytes>, MultiSourceError>
where
    MultiSource<S>:
        Service<VastRequest, Response = http::Response<Bytes>, Error = MultiSourceError>,
{
    fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
}

fn samples(metrics: &PrometheusMetrics) -> Vec<Sample> {
    parse(&metrics.encode())
}

fn redirects(s: &[Sample], source: &str) -> f64 {
    sum(s, "vast_redirects_total", &[("source_url", source)])
}

fn client_failures(s: &[Sample], source: &str, error_type: &str) -> f64 {
    sum(
        s,
        "vast_client_request_failure_total",
        &[("source_url", source), ("error_type", error_type)],
    )
}

fn attempt_failures(s: &[Sample], source: &str, error_type: &str) -> f64 {
    sum(
        s,
        "vast_multi_source_sources_failure_total",
        &[("source_url", source), ("error_type", error_type)],
    )
}

/// Per source: total == success + failure, every gauge back to 0.
fn assert_quiet(s: &[Sample]) {
    assert_client_invariants(s);
    for family in [
        "vast_client_active_requests",
        "vast_multi_source_active_requests",
    ] {
        assert_eq!(sum(s, family, &[]), 0.0, "{family} back to 0");
    }
}

/// The source filled with the InLine ad, after `followed` redirects, as
/// one client request with one outcome: an ad.
fn assert_filled_after(s: &[Sample], source: &str, followed: f64) {
    let l = [("source_url", source)];
    assert_eq!(redirects(s, source), followed, "{source}: redirects");
    assert_eq!(sum(s, "vast_client_request_total", &l), 1.0, "{source}");
    assert_eq!(
        sum(
            s,
            "vast_client_request_success_total",
            &[("source_url", source), ("result", "success")]
        ),
        1.0,
        "{source}"
    );
    assert_eq!(
        sum(s, "vast_client_request_failure_total", &l),
        0.0,
        "{source}: no http_5xx, no redirect"
    );
    assert_eq!(
        sum(
            s,
            "vast_multi_source_sources_success_total",
            &[("source_url", source), ("result", "success")]
        ),
        1.0,
        "{source}"
    );
    assert_eq!(
        sum(s, "vast_multi_source_sources_failure_total", &l),
        0.0,
        "{source}"
    );
}

#[tokio::test]
async fn a_redirect_to_an_inline_ad_is_a_fill_of_the_original_source() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let cases: [(&'static str, &str); 6] = [
        ("found", "/redirect/302"),
        ("absolute", "/redirect-abs"),
        ("moved", "/redirect/301"),
        ("see-other", "/redirect/303"),
        ("temporary", "/redirect/307"),
        ("permanent", "/redirect/308"),
    ];
    for (name, path) in cases {
        let res = fetch(&mut one_source(&metrics, &server, name, path).build())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(res.body(), INLINE_VAST.as_bytes(), "{name}");
        let report = res.extensions().get::<FetchReport>().unwrap();
        assert_eq!(report.winner.as_deref(), Some(name));
        assert_eq!(report.attempts[0].outcome, Outcome::Ad);
        assert!(report.attempts[0].chain.is_none(), "no wrapper chain");
    }
    assert_eq!(server.hits("/inline"), cases.len());
    let s = samples(&metrics);
    for (name, _) in cases {
        assert_filled_after(&s, name, 1.0);
    }
    // One request per fetch, none labelled by the redirect target.
    assert_eq!(
        sum(&s, "vast_client_request_total", &[]),
        cases.len() as f64
    );
    assert_quiet(&s);
}

#[tokio::test]
async fn a_chain_of_relative_redirects_is_followed_to_its_end() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let res = fetch(&mut one_source(&metrics, &server, "hops", "/hop/3").build())
        .await
        .unwrap();
    assert_eq!(res.body(), INLINE_VAST.as_bytes());
    for n in 0..=3 {
        assert_eq!(server.hits(&format!("/hop/{n}")), 1, "/hop/{n}");
    }
    let s = samples(&metrics);
    assert_filled_after(&s, "hops", 3.0);
    assert_quiet(&s);
}

#[tokio::test]
async fn a_redirect_loop_stops_before_the_repeat() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let err = fetch(&mut one_source(&metrics, &server, "loop", "/bounce/0").build())
        .await
        .unwrap_err();
    assert!(matches!(err, MultiSourceError::NoFill { .. }), "{err:?}");
    assert_eq!(
        err.report().attempts[0].outcome,
        Outcome::Failure(ErrorType::Redirect)
    );
    // A -> B -> (A again: not requested).
    assert_eq!(server.hits("/bounce/0"), 1);
    assert_eq!(server.hits("/bounce/1"), 1);
    let s = samples(&metrics);
    assert_eq!(redirects(&s, "loop"), 1.0);
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 1.0);
    assert_eq!(client_failures(&s, "loop", "redirect"), 1.0);
    assert_eq!(client_failures(&s, "loop", "http_5xx"), 0.0);
    assert_eq!(attempt_failures(&s, "loop", "redirect"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[("error_type", "redirect")]
        ),
        1.0
    );
    assert_quiet(&s);
}

#[tokio::test]
async fn the_redirect_limit_stops_the_attempt_as_redirect() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // Three redirects, two allowed: the third is not followed.
    let mut limited = one_source(&metrics, &server, "limited", "/hop/3")
        .max_redirects(2)
        .build();
    let err = fetch(&mut limited).await.unwrap_err();
    assert_eq!(
        err.report().attempts[0].outcome,
        Outcome::Failure(ErrorType::Redirect)
    );
    assert_eq!(server.hits("/hop/1"), 1);
    assert_eq!(server.hits("/hop/0"), 0, "no request past the limit");
    // None allowed.
    let mut none = one_source(&metrics, &server, "none", "/redirect/302")
        .max_redirects(0)
        .build();
    fetch(&mut none).await.unwrap_err();
    assert_eq!(server.hits("/inline"), 0);
    // A redirect that says nowhere to go.
    fetch(&mut one_source(&metrics, &server, "nowhere", "/redirect-nowhere").build())
        .await
        .unwrap_err();

    let s = samples(&metrics);
    for (source, followed) in [("limited", 2.0), ("none", 0.0), ("nowhere", 0.0)] {
        assert_eq!(redirects(&s, source), followed, "{source}");
        let l = [("source_url", source)];
        assert_eq!(sum(&s, "vast_client_request_total", &l), 1.0, "{source}");
        assert_eq!(client_failures(&s, source, "redirect"), 1.0, "{source}");
        assert_eq!(attempt_failures(&s, source, "redirect"), 1.0, "{source}");
        assert_eq!(client_failures(&s, source, "http_5xx"), 0.0, "{source}");
    }
    assert_quiet(&s);
}

#[tokio::test]
async fn a_wrapper_hop_that_redirects_is_followed() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let res = fetch(&mut one_source(&metrics, &server, "wrapped", "/wrap-redirect").build())
        .await
        .unwrap();
    assert_eq!(res.body(), INLINE_VAST.as_bytes());
    let report = res.extensions().get::<FetchReport>().unwrap();
    let chain = report.attempts[0].chain.as_ref().unwrap();
    assert_eq!(chain.result, ChainResult::Success);
    assert_eq!(chain.hops.len(), 1);
    assert_eq!(chain.hops[0].outcome, Outcome::Ad);
    let s = samples(&metrics);
    // Counted for the originating source, though the hop redirected.
    assert_eq!(redirects(&s, "wrapped"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_wrapper_chains_total",
            &[("source_url", "wrapped"), ("result", "success")]
        ),
        1.0
    );
    // The tag and the hop: two requests, the hop's under its own URL, and
    // that one ended with the InLine ad it was redirected to.
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 2.0);
    let hop = SourceHasher::default().label_for(&server.url("/redirect/302").parse().unwrap());
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("source_url", &hop), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(sum(&s, "vast_client_request_failure_total", &[]), 0.0);
    assert_quiet(&s);
}

#[tokio::test]
async fn redirects_run_inside_the_attempts_time_out() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut fetcher = one_source(&metrics, &server, "slow-target", "/redirect-slow/3000")
        .source_timeout(Duration::from_millis(300))
        .build();
    let err = fetch(&mut fetcher).await.unwrap_err();
    let attempt = &err.report().attempts[0];
    assert_eq!(attempt.outcome, Outcome::Failure(ErrorType::Timeout));
    assert!(attempt.elapsed < Duration::from_secs(3));
    let s = samples(&metrics);
    assert_eq!(redirects(&s, "slow-target"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_total",
            &[("source_url", "slow-target")]
        ),
        1.0
    );
    assert_eq!(client_failures(&s, "slow-target", "timeout"), 1.0);
    assert_eq!(attempt_failures(&s, "slow-target", "timeout"), 1.0);
    assert_quiet(&s);
}

#[tokio::test]
async fn a_fetch_dropped_during_a_redirect_ends_its_request_once() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut fetcher = one_source(&metrics, &server, "dropped", "/redirect-slow/2000").build();
    let fetching = fetcher.ready().await.unwrap().call(VastRequest::new());
    assert!(tokio::time::timeout(Duration::from_millis(300), fetching)
        .await
        .is_err());
    // The attempt task is aborted; give it a moment to unwind.
    for _ in 0..100 {
        if sum(&samples(&metrics), "vast_client_active_requests", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = samples(&metrics);
    assert_eq!(server.hits("/slow/2000"), 1, "the redirect was followed");
    assert_eq!(client_failures(&s, "dropped", "cancelled"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_total",
            &[("source_url", "dropped")]
        ),
        1.0
    );
    assert_quiet(&s);
}

/// hyper-util's client behind a load shedder that refuses every request
/// after the first: a follow-up that is never sent.
#[derive(Clone)]
struct ShedAfterFirst {
    inner: HttpClient,
    calls: Arc<AtomicUsize>,
}

impl Service<http::Request<Full<Bytes>>> for ShedAfterFirst {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.calls.load(Ordering::SeqCst) > 0 {
            return Poll::Ready(Err(Overloaded::new().into()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let sent = self.inner.call(req);
        Box::pin(async move { sent.await.map_err(Into::into) })
    }
}

#[tokio::test]
async fn a_follow_up_refused_before_it_is_sent_ends_the_request_held() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let shedding = ShedAfterFirst {
        inner: common::http_client(),
        calls: Arc::default(),
    };
    let client = VastMetricsLayer::new(metrics.clone()).layer(shedding);
    let mut fetcher = MultiSource::builder(client, metrics.clone())
        .tier([Source::parse("shed", &server.url("/redirect/302")).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .build();
    let err = fetch(&mut fetcher).await.unwrap_err();
    assert_eq!(
        err.report().attempts[0].outcome,
        Outcome::Failure(ErrorType::Rejected)
    );
    assert_eq!(server.hits("/inline"), 0);
    let s = samples(&metrics);
    // The request the layer held across the redirect ends once, with the
    // error that stopped its follow-up.
    assert_eq!(
        sum(&s, "vast_client_request_total", &[("source_url", "shed")]),
        1.0
    );
    assert_eq!(client_failures(&s, "shed", "rejected"), 1.0);
    assert_eq!(redirects(&s, "shed"), 1.0);
    assert_quiet(&s);
}

#[tokio::test]
async fn stacked_layers_each_count_one_request() {
    let server = AdServer::start().await.unwrap();
    // Two layers, one inside the other, each with its own registry.
    let (outer, inner) = (PrometheusMetrics::new(), PrometheusMetrics::new());
    let stacked = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(outer.clone()))
        .layer(VastMetricsLayer::new(inner.clone()))
        .service(common::http_client());
    let metrics = PrometheusMetrics::new();
    let mut fetcher = MultiSource::builder(stacked, metrics.clone())
        .tier([Source::parse("stacked", &server.url("/hop/2")).unwrap()])
        .source_timeout(Duration::from_secs(5))
        .build();
    fetch(&mut fetcher).await.unwrap();
    for layer in [&outer, &inner] {
        let s = samples(layer);
        assert_eq!(sum(&s, "vast_client_request_total", &[]), 1.0);
        assert_eq!(
            sum(
                &s,
                "vast_client_request_success_total",
                &[("source_url", "stacked"), ("result", "success")]
            ),
            1.0
        );
        assert_quiet(&s);
    }
    assert_eq!(redirects(&samples(&metrics), "stacked"), 2.0);
}

#[tokio::test]
async fn the_layer_alone_counts_a_redirect_as_redirect() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut alone = layered(VastMetricsLayer::new(metrics.clone()).source_name("alone"));
    let (status, _) = common::fetch(&mut alone, &server.url("/redirect/302"))
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::FOUND);
    // The 3xx without a Location, and one that is not a redirect to follow.
    common::fetch(&mut alone, &server.url("/redirect-nowhere"))
        .await
        .unwrap();
    common::fetch(&mut alone, &server.url("/redirect/300"))
        .await
        .unwrap();
    assert_eq!(server.hits("/inline"), 0, "hyper-util does not follow");
    let s = samples(&metrics);
    assert_eq!(client_failures(&s, "alone", "redirect"), 3.0);
    assert_eq!(client_failures(&s, "alone", "http_5xx"), 0.0);
    // No fetcher of the crate here: no redirects family for this source.
    assert_eq!(redirects(&s, "alone"), 0.0);
    assert!(!metrics.encode().contains("vast_redirects_total{"));
    assert_quiet(&s);
}

#[tokio::test]
async fn the_resolver_follows_redirects_under_the_chains_label() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut resolver = WrapperResolverLayer::new(metrics.clone()).layer(client(&metrics));
    let tag = server.url("/hop/2?cb=1");
    let req = http::Request::get(&tag).body(Full::default()).unwrap();
    let res = resolver.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.body(), INLINE_VAST.as_bytes());
    let report = res.extensions().get::<ChainReport>().unwrap();
    assert_eq!(report.result, ChainResult::Success);
    assert!(report.hops.is_empty(), "redirects are no wrapper hops");

    // The tag's label: the client layer's, and the chain's.
    let label = SourceHasher::default().label_for(&tag.parse().unwrap());
    let s = samples(&metrics);
    assert_eq!(redirects(&s, &label), 2.0);
    assert_eq!(sum(&s, "vast_client_request_total", &[]), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_client_request_success_total",
            &[("source_url", &label), ("result", "success")]
        ),
        1.0
    );

    // Not following: the 3xx is the answer, and the failure is `redirect`.
    let mut strict = WrapperResolverLayer::new(metrics.clone())
        .max_redirects(0)
        .layer(client(&metrics));
    let tag = server.url("/redirect/307");
    let req = http::Request::get(&tag).body(Full::default()).unwrap();
    let res = strict.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        res.extensions().get::<ChainReport>().unwrap().result,
        ChainResult::Error
    );
    let label = SourceHasher::default().label_for(&tag.parse().unwrap());
    let s = samples(&metrics);
    assert_eq!(client_failures(&s, &label, "redirect"), 1.0);
    assert_eq!(redirects(&s, &label), 0.0);
    assert_quiet(&s);
}
