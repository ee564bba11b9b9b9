//! The handle model: a backend ([`Recorder`]) is asked once for a series (a
//! family of the contract and its label values) and hands out a
//! [`Counter`], [`Gauge`] or [`Histogram`] handle, as in metrics-rs. The
//! layers, the multi-source fetcher and every other recording path resolve
//! their handles once (per source, per strategy, per event type) and record
//! through them: a few atomic operations per request.
//!
//! Backends: [`NoOpMetrics`] (no-op handles; layers skip recording
//! altogether), [`PrometheusMetrics`](crate::PrometheusMetrics), and
//! [`ByName`], which turns any
//! [`MetricsCollector`](crate::MetricsCollector) (StatsD, Datadog, OTel)
//! into handles that call it by name.
//!
//! # Example
//!
//! ```
//! use vast_metrics::names::family;
//! use vast_metrics::recorder::{ByName, Recorder};
//! use vast_metrics::{NoOpMetrics, PrometheusMetrics};
//!
//! let metrics = PrometheusMetrics::new();
//! let total = metrics.register_counter(&family::CLIENT_REQUEST_TOTAL, &["primary"]);
//! total.increment(1);
//! assert!(metrics.encode().contains(r#"vast_client_request_total{source_url="primary"} 1"#));
//!
//! // A backend of your own, called by name and labels on every record.
//! let custom = ByName::new(NoOpMetrics);
//! custom.register_counter(&family::CLIENT_REQUEST_TOTAL, &["primary"]).increment(1);
//! ```

use std::sync::Arc;

use crate::names::{MetricDef, MetricKind};
use crate::NoOpMetrics;

mod by_name;
pub(crate) mod cells;
mod error;
mod handles;

pub use by_name::ByName;
pub use error::RecordError;
pub use handles::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn};

/// A metrics backend that hands out handles, one per series.
///
/// `labels` are the values of `family.labels`, in that order. A backend
/// never fails the caller: a series it cannot make is a no-op handle (and,
/// for the Prometheus backend, a count in `vast_metrics_errors_total`).
pub trait Recorder: Send + Sync + 'static {
    /// The counter of one series.
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> Counter;
    /// The gauge of one series.
    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> Gauge;
    /// The histogram of one series; durations are observed in seconds.
    fn register_histogram(&self, family: &'static MetricDef, labels: &[&str]) -> Histogram;
    /// Something was not recorded or inspected as asked (a label past a
    /// cap, recorded as `other`; a body encoding not inspected). Defaults
    /// to nothing.
    fn record_error(&self, error: RecordError) {
        let _ = error;
    }
    /// `false` when nothing is recorded: layers then skip source lookup and
    /// clock reads too. Defaults to `true`.
    fn is_enabled(&self) -> bool {
        true
    }
    /// Makes the series of a counter family exist at 0 before its first
    /// event, without handing out a handle, so that `rate()`, `absent()`
    /// and ratios see it from the start. The crate calls it for the series
    /// it shows at zero without holding them (every `error_type` of a new
    /// source; a series it holds is shown by recording 0 through its
    /// handle). Defaults to registering the counter and adding 0 (a backend
    /// that shows a series on its first record shows it now); a backend
    /// that [drops released series](Recorder::drops_released) makes it
    /// unheld instead.
    fn zero(&self, family: &'static MetricDef, labels: &[&str]) {
        if family.kind == MetricKind::Counter {
            self.register_counter(family, labels).increment(0);
        }
    }
    /// Gives back a handle got from a `register_*` call with the same
    /// family and labels: the caller will not record through it again
    /// (each registration is released at most once). Called when a layer
    /// expires an idle source (see
    /// [`VastMetricsLayer::source_idle_expiry`](crate::VastMetricsLayer::source_idle_expiry)).
    ///
    /// A backend may then drop the series, freeing its memory and removing
    /// it from its output, once nothing holds a handle of it; a later
    /// registration starts it again from zero (a counter reset).
    /// [`PrometheusMetrics`](crate::PrometheusMetrics) counts the handles
    /// of each series, and drops the series of one `source_url` value
    /// together once none of them is held: a scrape never sees part of a
    /// source. Defaults to nothing: the series are kept.
    fn release(&self, family: &'static MetricDef, labels: &[&str]) {
        let _ = (family, labels);
    }
    /// Whether [`release`](Recorder::release) drops series. Layers expire
    /// idle sources only with a backend that does: with one that keeps
    /// every series, the source cap stays the bound on how many it holds.
    /// Defaults to `false`.
    fn drops_released(&self) -> bool {
        false
    }
}

/// A backend that records: with it, [`VastMetricsLayer`](crate::VastMetricsLayer)
/// wraps responses to observe them. Implement it (it is empty) next to
/// [`Recorder`] for a backend of your own; [`NoOpMetrics`] does not, so a
/// layer with it passes requests and responses through untouched, at no
/// cost.
pub trait Recording: Recorder {}

impl<R: Recording + ?Sized> Recording for Arc<R> {}

impl<R: Recorder + ?Sized> Recorder for Arc<R> {
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> Counter {
        (**self).register_counter(family, labels)
    }
    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> Gauge {
        (**self).register_gauge(family, labels)
    }
    fn register_histogram(&self, family: &'static MetricDef, labels: &[&str]) -> Histogram {
        (**self).register_histogram(family, labels)
    }
    fn record_error(&self, error: RecordError) {
        (**self).record_error(error)
    }
    fn is_enabled(&self) -> bool {
        (**self).is_enabled()
    }
    fn zero(&self, family: &'static MetricDef, labels: &[&str]) {
        (**self).zero(family, labels)
    }
    fn release(&self, family: &'static MetricDef, labels: &[&str]) {
        (**self).release(family, labels)
    }
    fn drops_released(&self) -> bool {
        (**self).drops_released()
    }
}

impl Recorder for NoOpMetrics {
    #[inline]
    fn register_counter(&self, _: &'static MetricDef, _: &[&str]) -> Counter {
        Counter::noop()
    }
    #[inline]
    fn register_gauge(&self, _: &'static MetricDef, _: &[&str]) -> Gauge {
        Gauge::noop()
    }
    #[inline]
    fn register_histogram(&self, _: &'static MetricDef, _: &[&str]) -> Histogram {
        Histogram::noop()
    }
    #[inline]
    fn zero(&self, _: &'static MetricDef, _: &[&str]) {}
    #[inline]
    fn is_enabled(&self) -> bool {
        false
    }
}
