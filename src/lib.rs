//! Observable VAST ad fetching.
#![warn(missing_docs, rust_2018_idioms)]
#![deny(unreachable_pub)]
#![forbid(unsafe_code)]

pub mod collector;
pub mod names;
pub mod prometheus;

pub use crate::collector::{MetricsCollector, NoOpMetrics};
pub use crate::names::{MetricLabels, VastMetrics};
pub use crate::prometheus::PrometheusMetrics;
