//! Tracking pixels: the event type of a tracking request.
//!
//! A layer in tracking mode ([`VastMetricsLayer::tracking`](crate::VastMetricsLayer::tracking))
//! records `vast_tracking_event_sent_total{event_type}`,
//! `vast_tracking_event_failed_total{event_type,error_type}` and
//! `vast_tracking_request_duration_seconds{event_type}`, with the event type
//! taken from a [`TrackingEvent`] in the request's extensions.
//!
//! # Example
//!
//! ```
//! use vast_metrics::tracking::TrackingEvent;
//!
//! let mut pixel = http::Request::get("http://t.example.com/imp?id=1").body(()).unwrap();
//! pixel.extensions_mut().insert(TrackingEvent::IMPRESSION);
//! assert_eq!(TrackingEvent::FIRST_QUARTILE.as_str(), "firstQuartile");
//! ```

use std::borrow::Cow;

/// Distinct event types a layer records; past it, `other`.
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
