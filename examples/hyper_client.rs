//! `VastMetricsLayer` on hyper-util's legacy `Client`, against the embedded
//! ad server on loopback: every outcome (ad, wrapper, no fill, invalid XML,
//! HTTP 5xx, a tower timeout), tracking pixels per event type, and the
//! Prometheus exposition that results.
//!
//! Run: `cargo run --example hyper_client`

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use vast_metrics::tracking::TrackingEvent;
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = AdServer::start().await?;
    let metrics = PrometheusMetrics::new();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // VAST fetches: `/inline` is labelled "primary", other sources get a
    // hash of their normalised URL. The timeout sits inside the layer, so
    // the layer sees (and records) its error.
    let mut vast = ServiceBuilder::new()
        .layer(
            VastMetricsLayer::new(metrics.clone())
                .source_alias(&server.url("/inline"), "primary")
                .expect("the ad server's URL has a host"),
        )
        .timeout(Duration::from_millis(300))
        .service(client.clone());

    println!("== VAST fetches ==");
    let routes = [
        "/inline",
        "/wrapper",
        "/no-ad",
        "/invalid-xml",
        "/status/500",
        "/slow/1000",
        "/slow/20",
    ];
    for n in 1..=3 {
        for route in routes {
            let path = format!("{route}?cb={n}");
            let req = http::Request::get(server.url(&path)).body(Full::default())?;
            let line = match vast.ready().await?.call(req).await {
                // Reading the body to its end is what ends the request.
                Ok(res) => {
                    let status = res.status();
                    let body = res.into_body().collect().await?.to_bytes();
                    format!("{status}, {} bytes", body.len())
                }
                Err(e) => format!("error: {e}"),
            };
            println!("{path:<20} {line}");
        }
    }

    // Tracking pixels: the event type travels in the request's extensions.
    println!("\n== Tracking pixels ==");
    let mut pixels = ServiceBuilder::new()
        .layer(vast_metrics::TrackingMetricsLayer::new(metrics.clone()))
        .service(client);
    for event in [
        TrackingEvent::IMPRESSION,
        TrackingEvent::START,
        TrackingEvent::FIRST_QUARTILE,
    ] {
        let mut req = http::Request::get(server.url("/pixel")).body(Full::default())?;
        req.extensions_mut().insert(event.clone());
        let res = pixels.ready().await?.call(req).await?;
        println!("/pixel {:<14} {}", event.as_str(), res.status());
    }

    // Every `vast_` series (histogram buckets left out for brevity).
    println!("\n== metrics.encode() ==");
    for line in metrics.encode().lines() {
        if line.starts_with("vast_") && !line.contains("_bucket{") {
            println!("{line}");
        }
    }
    Ok(())
}
