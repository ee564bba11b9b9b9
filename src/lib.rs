//! Observable VAST ad fetching.
//!
//! - [`VastMetricsLayer`] ([`layer`]): Tower middleware for the client that
//!   fetches VAST; records requests, outcomes, latency to the end of the body
//!   and requests in flight per hashed [`source`], inspecting bodies
//!   as they stream past ([`vast`]).
//! - [`MetricsCollector`] ([`collector`]): the generic API of the original
//!   VAST Client metrics system, by the names in [`names`]; [`NoOpMetrics`]
//!   costs nothing, [`PrometheusMetrics`] ([`prometheus`](mod@crate::prometheus))
//!   exports conventional Prometheus names.
//! - [`MetricsServer`] and [`MetricsService`] ([`server`]): `/metrics`.
//!
//! # Example
//!
//! ```
//! use vast_metrics::{MetricLabels, MetricsCollector, PrometheusMetrics, VastMetrics, VastMetricsLayer};
//!
//! let metrics = PrometheusMetrics::new();
//! // Stack on any VAST-fetching client: `ServiceBuilder::new().layer(layer).service(client)`.
//! let _layer = VastMetricsLayer::new(metrics.clone())
//!     .source_alias("https://ads.example.com/vast", "primary")
//!     .expect("a URL with a host");
//! metrics.increment(VastMetrics::TRACKING_EVENT_SENT, 1, &[(MetricLabels::EVENT_TYPE, "impression")]);
//! assert!(metrics.encode().contains(r#"vast_tracking_event_sent_total{event_type="impression"} 1"#));
//! ```
#![warn(missing_docs, rust_2018_idioms)]
#![deny(unreachable_pub)]
#![forbid(unsafe_code)]

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of `docs/recording.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/recording.md")]
pub struct RecordingDoctests;

/// The examples of `docs/integrations.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/integrations.md")]
pub struct IntegrationsDoctests;

/// The examples of `docs/multi-source.md` (ignored: they need a client).
#[cfg(doctest)]
#[doc = include_str!("../docs/multi-source.md")]
pub struct MultiSourceDoctests;

pub mod classify;
pub mod collector;
pub mod layer;
#[cfg(feature = "metrics-facade")]
pub mod metrics_facade;
pub mod multi_source;
pub mod names;
#[cfg(feature = "opentelemetry")]
pub mod otel;
pub mod prometheus;
mod record;
pub mod recorder;
pub mod server;
pub mod source;
pub mod trace;
pub mod tracking;
pub mod vast;
pub mod wrapper;

// The types a user names: layers, the fetcher, backends, the server.
pub use crate::collector::{MetricsCollector, NoOpMetrics};
pub use crate::layer::VastMetricsLayer;
#[cfg(feature = "reqwest-middleware")]
pub use crate::layer::VastMetricsMiddleware;
#[cfg(feature = "metrics-facade")]
pub use crate::metrics_facade::MetricsFacade;
pub use crate::multi_source::{MultiSource, MultiSourceMetricsLayer};
pub use crate::names::{MetricLabels, VastMetrics};
#[cfg(feature = "opentelemetry")]
pub use crate::otel::OtelMetrics;
pub use crate::prometheus::PrometheusMetrics;
pub use crate::recorder::Recorder;
#[cfg(feature = "server")]
pub use crate::server::MetricsServer;
pub use crate::server::MetricsService;
pub use crate::tracking::TrackingMetricsLayer;
pub use crate::wrapper::WrapperResolverLayer;
