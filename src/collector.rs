//! The generic metrics API: [`MetricsCollector`] and the zero-cost
//! [`NoOpMetrics`].
//!
//! Implement [`MetricsCollector`] to send the crate's metrics to another
//! backend (StatsD, Datadog, OpenTelemetry). Names are the dotted constants of
//! [`VastMetrics`](crate::VastMetrics); durations are in milliseconds.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use vast_metrics::{MetricLabels, MetricsCollector, NoOpMetrics, VastMetrics};
//!
//! let metrics: Arc<dyn MetricsCollector> = Arc::new(NoOpMetrics);
//! metrics.increment(
//!     VastMetrics::CLIENT_REQUEST_TOTAL,
//!     1,
//!     &[(MetricLabels::SOURCE_URL, "primary")],
//! );
//! metrics.timing(VastMetrics::CLIENT_REQUEST_DURATION_MS, 12.5, &[]);
//! ```

/// Borrowed label pairs: `(key, value)`.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A metrics backend addressed by metric name and label pairs.
///
/// Implementations must not panic and must not block for long: the calls sit
/// on the request path. The trait is object safe: `Arc<dyn MetricsCollector>`
/// works.
pub trait MetricsCollector: Send + Sync {
    /// Adds `value` to the counter `metric`.
    fn increment(&self, metric: &str, value: u64, labels: Labels<'_>);

    /// Records one observation of `metric`. Duration metrics (see
    /// [`names::is_duration`](crate::names::is_duration)) take milliseconds.
    fn histogram(&self, metric: &str, value: f64, labels: Labels<'_>);

    /// Moves the gauge `metric` by `delta`: positive adds, negative
    /// subtracts, zero does nothing.
    fn gauge(&self, metric: &str, delta: f64, labels: Labels<'_>);

    /// Records a duration of `ms` milliseconds. Defaults to
    /// [`histogram`](MetricsCollector::histogram).
    fn timing(&self, metric: &str, ms: f64, labels: Labels<'_>) {
        self.histogram(metric, ms, labels);
    }
}

impl<C: MetricsCollector + ?Sized> MetricsCollector for std::sync::Arc<C> {
    #[inline]
    fn increment(&self, metric: &str, value: u64, labels: Labels<'_>) {
        (**self).increment(metric, value, labels)
    }
    #[inline]
    fn histogram(&self, metric: &str, value: f64, labels: Labels<'_>) {
        (**self).histogram(metric, value, labels)
    }
    #[inline]
    fn gauge(&self, metric: &str, delta: f64, labels: Labels<'_>) {
        (**self).gauge(metric, delta, labels)
    }
    #[inline]
    fn timing(&self, metric: &str, ms: f64, labels: Labels<'_>) {
        (**self).timing(metric, ms, labels)
    }
}

/// Metrics that go nowhere: zero-sized, and every call compiles to nothing.
///
/// The default of [`VastMetricsLayer`](crate::VastMetricsLayer); use it in
/// tests and development.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoOpMetrics;

impl MetricsCollector for NoOpMetrics {
    #[inline(always)]
    fn increment(&self, _: &str, _: u64, _: Labels<'_>) {}
    #[inline(always)]
    fn histogram(&self, _: &str, _: f64, _: Labels<'_>) {}
    #[inline(always)]
    fn gauge(&self, _: &str, _: f64, _: Labels<'_>) {}
    #[inline(always)]
    fn timing(&self, _: &str, _: f64, _: Labels<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl MetricsCollector for Log {
        fn increment(&self, m: &str, v: u64, _: Labels<'_>) {
            self.0.lock().unwrap().push(format!("c {m} {v}"));
        }
        fn histogram(&self, m: &str, v: f64, _: Labels<'_>) {
            self.0.lock().unwrap().push(format!("h {m} {v}"));
        }
        fn gauge(&self, m: &str, v: f64, _: Labels<'_>) {
            self.0.lock().unwrap().push(format!("g {m} {v}"));
        }
    }

    #[test]
    fn noop_is_zero_sized_and_object_safe() {
        assert_eq!(std::mem::size_of::<NoOpMetrics>(), 0);
        let m: Arc<dyn MetricsCollector> = Arc::new(NoOpMetrics);
        m.increment("a", 1, &[("k", "v")]);
        m.timing("a", 1.0, &[]);
    }

    #[test]
    fn timing_defaults_to_histogram_through_arc() {
        let log = Arc::new(Log::default());
        let m: Arc<dyn MetricsCollector> = log.clone();
        m.timing("t", 2.5, &[]);
        m.increment("c", 3, &[]);
        assert_eq!(*log.0.lock().unwrap(), ["h t 2.5", "c c 3"]);
    }
}
