//! [`TrackingMetricsLayer`]: Tower middleware for the client that fires
//! VAST tracking pixels (impressions, quartiles, clicks, errors).
//!
//! Per event type it records `vast_tracking_event_sent_total{event_type}`,
//! `vast_tracking_event_failed_total{event_type,error_type}` and
//! `vast_tracking_request_duration_seconds{event_type}`. The event type is
//! the [`TrackingEvent`] in the request's extensions, else the layer's
//! [default event](TrackingMetricsLayer::default_event). A pixel ends at
//! its response headers (its body is not read): a 2xx is `sent`, and so is
//! a 3xx (the server took the hit; where it redirects is the player's to
//! follow); another status or an error of the inner service is `failed`, a
//! dropped future `failed{error_type="cancelled"}`.
//!
//! # Example
//!
//! ```
//! use http_body_util::Empty;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use vast_metrics::tracking::{TrackingEvent, TrackingMetricsLayer};
//! use vast_metrics::PrometheusMetrics;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = PrometheusMetrics::new();
//! let pixel_server = service_fn(|_req: http::Request<Empty<bytes::Bytes>>| async {
//!     Ok::<_, std::io::Error>(http::Response::builder().status(204).body(Empty::<bytes::Bytes>::new()).unwrap())
//! });
//! let mut pixels = ServiceBuilder::new()
//!     .layer(TrackingMetricsLayer::new(metrics.clone()))
//!     .service(pixel_server);
//!
//! let mut pixel = http::Request::get("http://t.example.com/imp?id=1").body(Empty::new()).unwrap();
//! pixel.extensions_mut().insert(TrackingEvent::IMPRESSION);
//! pixels.ready().await.unwrap().call(pixel).await.unwrap();
//! assert!(metrics.encode().contains(r#"vast_tracking_event_sent_total{event_type="impression"} 1"#));
//! # }
//! ```

mod future;
mod layer;
mod service;

use std::borrow::Cow;

pub use self::future::{ResponseFuture, TrackingResponse};
pub use self::layer::TrackingMetricsLayer;
pub use self::service::TrackingMetricsService;

/// Default cap on distinct event types a layer records: 64. Past it,
/// `other`.
pub const MAX_EVENT_TYPES: usize = 64;

/// The VAST event a tracking request reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrackingEvent(Cow<'static, str>);

impl TrackingEvent {
    /// `impression`
    pub const IMPRESSION: Self = Self::from_static("impression");
    /// `start`
    pub const START: Self = Self::from_static("start");
    /// `firstQuartile`
    pub const FIRST_QUARTILE: Self = Self::from_static("firstQuartile");
    /// `midpoint`
    pub const MIDPOINT: Self = Self::from_static("midpoint");
    /// `thirdQuartile`
    pub const THIRD_QUARTILE: Self = Self::from_static("thirdQuartile");
    /// `complete`
    pub const COMPLETE: Self = Self::from_static("complete");
    /// `error`
    pub const ERROR: Self = Self::from_static("error");
    /// `click`
    pub const CLICK: Self = Self::from_static("click");

    /// An event type of a static name.
    pub const fn from_static(name: &'static str) -> Self {
        TrackingEvent(Cow::Borrowed(name))
    }

    /// An event type (VAST's event names: `pause`, `mute`, `skip`, ...).
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        TrackingEvent(name.into())
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
