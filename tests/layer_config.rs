//! What configuring the layers promises: builders only configure, bad
//! aliases are errors, any error type can be classified, the contract's
//! names are the backend's own, and a panicking inner service is reported
//! the same way in metrics and in the fetch report.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::layer::VastMetricsService;
use vast_metrics::multi_source::{MultiSource, MultiSourceError, Source, VastRequest};
use vast_metrics::source::AliasError;
use vast_metrics::{NoOpMetrics, PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::INLINE_VAST;

type Req = http::Request<Full<Bytes>>;

fn get(url: &str) -> Req {
    http::Request::get(url).body(Full::default()).unwrap()
}

async fn inline(_: Req) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    Ok(http::Response::new(Full::new(Bytes::from_static(
        INLINE_VAST.as_bytes(),
    ))))
}

#[tokio::test]
async fn builder_methods_register_nothing() {
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone())
        .source_name("draft")
        .source_name("final");
    assert!(
        !metrics.encode().contains("vast_client_"),
        "a configured, unused layer created series"
    );
    let mut svc = layer.layer(service_fn(inline));
    assert!(!metrics.encode().contains("vast_client_"));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://a/"))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let text = metrics.encode();
    assert!(text.contains(r#"vast_client_request_total{source_url="final"} 1"#));
    assert!(!text.contains("draft"), "{text}");
}

#[test]
fn an_alias_that_cannot_match_is_an_error() {
    let layer = VastMetricsLayer::new(NoOpMetrics);
    assert!(matches!(
        layer.clone().source_alias("http://[::1", "x"),
        Err(AliasError::InvalidUrl(_))
    ));
    assert!(matches!(
        layer.clone().source_alias("/vast?no=host", "x"),
        Err(AliasError::NoHost)
    ));
    assert!(layer
        .source_alias("https://ads.example.com/vast", "x")
        .is_ok());
}

#[test]
fn the_service_type_does_not_depend_on_the_configuration() {
    let inner = service_fn(inline);
    let plain: VastMetricsService<_, PrometheusMetrics> =
        VastMetricsLayer::new(PrometheusMetrics::new()).layer(inner);
    let configured: VastMetricsService<_, PrometheusMetrics> =
        VastMetricsLayer::new(PrometheusMetrics::new())
            .inspect_vast(false)
            .source_name("x")
            .max_sources(3)
            .layer(inner);
    // Same type, so either can stand where the other is expected.
    let _both = [plain, configured];
}

#[tokio::test]
async fn with_noop_the_service_is_the_inner_services_twin() {
    // The response type is the inner service's own: nothing is wrapped.
    let mut noop: VastMetricsService<_, NoOpMetrics> =
        VastMetricsLayer::default().layer(service_fn(inline));
    let res: http::Response<Full<Bytes>> = noop
        .ready()
        .await
        .unwrap()
        .call(get("http://a/"))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, INLINE_VAST.as_bytes());
}

/// An error type the crate has never heard of (as `anyhow::Error` is).
#[derive(Debug)]
enum MyClientError {
    Refused,
}

#[tokio::test]
async fn any_error_type_works_and_a_classifier_names_it() {
    let failing = service_fn(|_: Req| async {
        Err::<http::Response<Full<Bytes>>, _>(MyClientError::Refused)
    });
    let metrics = PrometheusMetrics::new();
    let mut default = VastMetricsLayer::new(metrics.clone())
        .source_name("default")
        .layer(failing);
    let mut classified = VastMetricsLayer::new(metrics.clone())
        .source_name("classified")
        .classify_errors(|e| match e.downcast_ref::<MyClientError>()? {
            MyClientError::Refused => Some(ErrorType::Connect),
        })
        .layer(failing);
    // The error comes through unchanged.
    let err = default
        .ready()
        .await
        .unwrap()
        .call(get("http://a/"))
        .await
        .unwrap_err();
    assert!(matches!(err, MyClientError::Refused));
    let err = classified
        .ready()
        .await
        .unwrap()
        .call(get("http://a/"))
        .await
        .unwrap_err();
    assert!(matches!(err, MyClientError::Refused));
    let text = metrics.encode();
    assert!(text.contains(
        r#"vast_client_request_failure_total{source_url="default",error_type="other"} 1"#
    ));
    assert!(text.contains(
        r#"vast_client_request_failure_total{source_url="classified",error_type="connect"} 1"#
    ));
}

#[test]
fn a_clashing_family_is_refused_at_registration() {
    let metrics = PrometheusMetrics::new();
    let mine = prometheus::IntCounter::new("vast_client_request_total", "my own").unwrap();
    assert!(metrics.registry().register(Box::new(mine)).is_err());
    let fine = prometheus::IntCounter::new("my_app_requests_total", "mine").unwrap();
    assert!(metrics.registry().register(Box::new(fine)).is_ok());
}

#[tokio::test]
async fn a_panicking_inner_service_is_other_in_metrics_and_report() {
    let metrics = PrometheusMetrics::new();
    let panicking = service_fn(|_: Req| async {
        if true {
            panic!("the inner service panicked");
        }
        inline(get("http://a/")).await
    });
    let client = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()))
        .service(panicking);
    let mut fetcher = MultiSource::builder(client, metrics.clone())
        .tier([Source::parse("boom", "http://boom.example/vast").unwrap()])
        .source_timeout(Duration::from_secs(5))
        .build();
    let err = fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new())
        .await
        .unwrap_err();
    let MultiSourceError::NoFill { report } = err else {
        panic!("expected no fill, got {err:?}");
    };
    assert_eq!(
        report.attempts[0].outcome,
        Outcome::Failure(ErrorType::Other)
    );
    let text = metrics.encode();
    for series in [
        r#"vast_multi_source_sources_failure_total{source_url="boom",error_type="other"} 1"#,
        r#"vast_client_request_failure_total{source_url="boom",error_type="other"} 1"#,
        r#"vast_client_active_requests{source_url="boom"} 0"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}
