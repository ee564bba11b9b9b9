//! Observable VAST ad fetching.
#![warn(missing_docs, rust_2018_idioms)]
#![deny(unreachable_pub)]
#![forbid(unsafe_code)]

pub mod ad_server;
pub mod classify;
pub mod collector;
pub mod layer;
pub mod names;
pub mod prometheus;
pub mod recorder;
pub mod server;
pub mod simulate;
pub mod source;
pub mod tracking;
pub mod vast;

pub use crate::collector::{MetricsCollector, NoOpMetrics};
pub use crate::layer::{
    Latency, ResponseBody, ResponseFuture, VastMetricsLayer, VastMetricsService,
};
pub use crate::names::{MetricLabels, VastMetrics};
pub use crate::prometheus::PrometheusMetrics;
pub use crate::server::{MetricsServer, MetricsService};
