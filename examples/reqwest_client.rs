//! `VastMetricsLayer` on `reqwest::Client` (reqwest 0.13), against the
//! embedded ad server on loopback: every outcome (ad, wrapper, no fill,
//! invalid XML, HTTP 5xx, reqwest's own timeout), the response URL surviving
//! the layer, tracking pixels, and the Prometheus exposition that results.
//!
//! Run: `cargo run --example reqwest_client --features reqwest`
//! (without the feature it only says so).

#[cfg(feature = "reqwest")]
mod with_reqwest {
    use std::time::Duration;

    use tower::{Service, ServiceBuilder, ServiceExt};
    use vast_metrics::tracking::TrackingEvent;
    use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
    use vast_test_support::ad_server::AdServer;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    pub async fn run() -> Result<(), BoxError> {
        let server = AdServer::start().await?;
        let metrics = PrometheusMetrics::new();
        // reqwest's own timeout: its error is classified as `timeout`.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()?;

        // One upstream, one fixed label.
        let mut vast = ServiceBuilder::new()
            .layer(VastMetricsLayer::new(metrics.clone()).source_name("reqwest-primary"))
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
                let req = client.get(server.url(&path)).build()?;
                let line = match vast.ready().await?.call(req).await {
                    // Reading the body to its end is what ends the request;
                    // the URL is still the response's.
                    Ok(res) => {
                        let (status, url) = (res.status(), res.url().clone());
                        let body = res.bytes().await?;
                        format!("{status}, {} bytes, url {url}", body.len())
                    }
                    Err(e) if e.is_timeout() => "error: timed out".to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                println!("{path:<20} {line}");
            }
        }

        // Tracking pixels: reqwest requests carry no extensions, so the
        // event type is the layer's default: one service per event type.
        println!("\n== Tracking pixels ==");
        let pixel_layer = vast_metrics::TrackingMetricsLayer::new(metrics.clone());
        for event in [
            TrackingEvent::IMPRESSION,
            TrackingEvent::START,
            TrackingEvent::FIRST_QUARTILE,
        ] {
            let mut pixels = ServiceBuilder::new()
                .layer(pixel_layer.clone().default_event(event.clone()))
                .service(client.clone());
            let req = client.get(server.url("/pixel")).build()?;
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
}

#[cfg(feature = "reqwest")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    with_reqwest::run().await
}

#[cfg(not(feature = "reqwest"))]
fn main() {
    println!("run with: cargo run --example reqwest_client --features reqwest");
}
