//! [`PrometheusMetrics`]: the Prometheus backend.
//!
//! Families are created on first use, each series is its own set of atomics
//! (so `["ab","c"]` and `["a","bc"]` never share a series), and every call
//! that cannot be recorded is dropped and counted in
//! `vast_metrics_errors_total{reason}` instead of failing the caller.
//!
//! Values live in the handles' cells ([`crate::recorder`]'s `cells.rs`:
//! plain atomics, one copy per shard so that threads do not share cache
//! lines, summed at scrape) and the series in `store.rs` (interned labels,
//! compact entries, the lock order), built
//! into the registry's families at scrape. [`PrometheusMetrics::encode`]
//! writes the text format 0.0.4 with the prometheus crate's encoder;
//! [`PrometheusMetrics::encode_openmetrics`] writes OpenMetrics 1.0 with the
//! duration buckets' exemplars (`openmetrics.rs`).
//!
//! Series of a `source_url` whose handles were all given back
//! ([`Recorder::release`], when a layer expires an idle source) are dropped
//! together, all of that source's families at once: the next scrape no
//! longer lists them, and a later request from that source starts its
//! counters again from zero (a counter reset, which `rate()` and
//! `increase()` handle).
//!
//! # Example
//!
//! ```
//! use vast_metrics::{MetricLabels, MetricsCollector, PrometheusMetrics, VastMetrics};
//!
//! let metrics = PrometheusMetrics::new();
//! metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &[(MetricLabels::SOURCE_URL, "primary")]);
//! metrics.timing(VastMetrics::CLIENT_REQUEST_DURATION_MS, 42.0, &[(MetricLabels::SOURCE_URL, "primary"), (MetricLabels::RESULT, "success")]);
//! let text = metrics.encode();
//! assert!(text.contains(r#"vast_client_request_total{source_url="primary"} 1"#));
//! assert!(text.contains("vast_client_request_duration_seconds_bucket"));
//! ```

use std::sync::Arc;

use prometheus::{Encoder, Registry, TextEncoder};

use crate::collector::{Labels, MetricsCollector};
use crate::names::{self, MetricDef, MetricKind, Unit};
use crate::recorder::{self, Recorder};

mod family;
mod interner;
mod openmetrics;
mod store;

pub use openmetrics::OPENMETRICS_CONTENT_TYPE;

use family::{Family, Shape};
use store::{Hold, Series, Store, StoreCollector};

/// Default buckets of duration histograms, in seconds: 5 ms to 30 s.
pub const DEFAULT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Longest label value accepted, in bytes. Longer values are rejected
/// (reason `label_value_too_long`): they are ids, not categories.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;

/// Longest metric name accepted, in bytes (dotted or exported).
pub const MAX_NAME_LEN: usize = 200;

/// Exported name of the family that counts dropped calls.
pub const ERRORS_METRIC: &str = "vast_metrics_errors_total";

pub use crate::recorder::RecordError;

/// Error building a [`PrometheusMetrics`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The registry refused the collector (already registered there).
    #[error("registering with the Prometheus registry failed: {0}")]
    Register(#[source] prometheus::Error),
    /// Buckets must be finite, positive and strictly increasing.
    #[error("duration buckets must be finite, positive and strictly increasing")]
    InvalidBuckets,
}

/// Prometheus backend of [`MetricsCollector`]. Cheap to clone; clones share
/// the same metrics.
#[derive(Clone)]
pub struct PrometheusMetrics {
    registry: Registry,
    store: Arc<Store>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Builder of [`PrometheusMetrics`].
#[derive(Debug, Default)]
pub struct PrometheusMetricsBuilder {
    registry: Option<Registry>,
    duration_buckets: Option<Vec<f64>>,
}

impl PrometheusMetricsBuilder {
    /// Records into the given registry. Defaults to a new registry of its own.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Bucket bounds of duration histograms, in seconds. Defaults to
    /// [`DEFAULT_DURATION_BUCKETS`].
    pub fn duration_buckets(mut self, buckets: Vec<f64>) -> Self {
        self.duration_buckets = Some(buckets);
        self
    }

    /// Builds the backend and registers it with the registry.
    pub fn build(self) -> Result<PrometheusMetrics, BuildError> {
        let buckets = self
            .duration_buckets
            .unwrap_or_else(|| DEFAULT_DURATION_BUCKETS.to_vec());
        let increasing = buckets.windows(2).all(|w| w[0] < w[1]);
        if buckets.is_empty() || !increasing || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
        {
            return Err(BuildError::InvalidBuckets);
        }
        let registry = self.registry.unwrap_or_default();
        let store = Arc::new(Store::new(
            buckets,
            crate::recorder::cells::default_shards(),
        ));
        registry
            .register(Box::new(StoreCollector(store.clone())))
            .map_err(BuildError::Register)?;
        Ok(PrometheusMetrics { registry, store })
    }
}

impl PrometheusMetrics {
    /// A backend with a registry of its own and the default buckets.
    pub fn new() -> Self {
        PrometheusMetricsBuilder::default()
            .build()
            .expect("a new registry accepts the default configuration")
    }

    /// A builder for a given registry or other buckets.
    pub fn builder() -> PrometheusMetricsBuilder {
        PrometheusMetricsBuilder::default()
    }

    /// The registry the metrics are in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry's metrics in the Prometheus text format (0.0.4).
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        self.encode_to(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Appends the text exposition to `buf`.
    pub fn encode_to(&self, buf: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and our families are well-formed.
        let _ = TextEncoder::new().encode(&self.registry.gather(), buf);
    }

    /// The registry's metrics in the OpenMetrics 1.0 text format, ending in
    /// `# EOF`. Duration histogram buckets carry an exemplar (`trace_id`,
    /// `span_id`, value, time) from the latest traced request observed in
    /// them (see [`VastMetricsLayer::trace_exemplars`](crate::VastMetricsLayer::trace_exemplars)).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let exemplars = self.store.exemplars();
        openmetrics::encode(&self.registry.gather(), &exemplars, &mut out);
        out
    }

    /// How many calls were dropped for `reason` so far.
    pub fn error_count(&self, reason: RecordError) -> u64 {
        self.store.errors[reason as usize].sum(0)
    }

    /// Counts a dropped call in `vast_metrics_errors_total{reason}`.
    pub(crate) fn count_error(&self, reason: RecordError) {
        self.store.errors[reason as usize].add(0, 1);
    }

    /// Adds to a counter; returns why the call was dropped, if it was.
    pub fn try_increment(
        &self,
        metric: &str,
        value: u64,
        labels: Labels<'_>,
    ) -> Result<(), RecordError> {
        self.series(metric, Shape::Counter, labels, |s| {
            if let Series::Counter(c) = s {
                c.add(0, value);
            }
        })
    }

    /// Observes a histogram value; durations (see [`names::is_duration`])
    /// are taken in milliseconds.
    pub fn try_histogram(
        &self,
        metric: &str,
        value: f64,
        labels: Labels<'_>,
    ) -> Result<(), RecordError> {
        if names::is_duration(metric) {
            return self.try_timing(metric, value, labels);
        }
        finite(value)?;
        self.series(metric, Shape::Histogram, labels, |s| {
            if let Series::Histogram(h) = s {
                h.observe(value, None);
            }
        })
    }

    /// Moves a gauge by `delta`. The contract's gauges (active requests,
    /// sources) count things: they take whole deltas only.
    pub fn try_gauge(
        &self,
        metric: &str,
        delta: f64,
        labels: Labels<'_>,
    ) -> Result<(), RecordError> {
        finite(delta)?;
        self.series(metric, Shape::Gauge, labels, |s| {
            match s {
                _ if delta == 0.0 => {}
                Series::IntGauge(g) if delta.fract() == 0.0 => g.add(0, delta as i64 as u64),
                Series::IntGauge(_) => return Err(RecordError::InvalidValue),
                Series::Gauge(g) => g.add_f64(0, delta),
                _ => {}
            }
            Ok(())
        })?
    }

    /// Observes a duration given in milliseconds, exported in seconds.
    pub fn try_timing(&self, metric: &str, ms: f64, labels: Labels<'_>) -> Result<(), RecordError> {
        finite(ms)?;
        self.series(metric, Shape::Timing, labels, |s| {
            if let Series::Histogram(h) = s {
                h.observe(ms / 1000.0, None);
            }
        })
    }

    fn record(&self, result: Result<(), RecordError>) {
        if let Err(reason) = result {
            self.count_error(reason);
        }
    }

    /// The family a dotted name maps to, created on first use.
    fn family(&self, dotted: &str, shape: Shape) -> Result<Arc<Family>, RecordError> {
        self.store.family(dotted, shape)
    }

    /// Calls `f` with the series of a name and labels, made on first use
    /// (not held).
    fn series<R>(
        &self,
        dotted: &str,
        shape: Shape,
        labels: Labels<'_>,
        f: impl FnOnce(Series<'_>) -> R,
    ) -> Result<R, RecordError> {
        let family = self.family(dotted, shape)?;
        self.store.series(&family, labels, Hold::None, f)
    }
}

impl MetricsCollector for PrometheusMetrics {
    fn increment(&self, metric: &str, value: u64, labels: Labels<'_>) {
        self.record(self.try_increment(metric, value, labels));
    }
    fn histogram(&self, metric: &str, value: f64, labels: Labels<'_>) {
        self.record(self.try_histogram(metric, value, labels));
    }
    fn gauge(&self, metric: &str, delta: f64, labels: Labels<'_>) {
        self.record(self.try_gauge(metric, delta, labels));
    }
    fn timing(&self, metric: &str, ms: f64, labels: Labels<'_>) {
        self.record(self.try_timing(metric, ms, labels));
    }
}

impl PrometheusMetrics {
    /// Calls `f` with the series of a contract family; a failure is
    /// counted, never raised.
    fn resolve<R>(
        &self,
        def: &'static MetricDef,
        values: &[&str],
        hold: Hold,
        f: impl FnOnce(Series<'_>) -> R,
    ) -> Option<R> {
        let result = match def.label_pairs(values) {
            None => Err(RecordError::LabelMismatch),
            Some(pairs) => self
                .family(def.dotted, shape_of(def))
                .and_then(|family| self.store.series(&family, pairs.as_slice(), hold, f)),
        };
        match result {
            Ok(found) => Some(found),
            Err(reason) => {
                self.count_error(reason);
                None
            }
        }
    }
}

/// How a family of the contract is stored.
fn shape_of(def: &MetricDef) -> Shape {
    match (def.kind, def.unit) {
        (MetricKind::Counter, _) => Shape::Counter,
        (MetricKind::Gauge, _) => Shape::Gauge,
        (MetricKind::Histogram, Unit::Seconds) => Shape::Timing,
        (MetricKind::Histogram, Unit::Count) => Shape::Histogram,
    }
}

impl recorder::Recording for PrometheusMetrics {}

impl Recorder for PrometheusMetrics {
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> recorder::Counter {
        self.resolve(family, labels, Hold::Handle, |s| match s {
            Series::Counter(c) => recorder::Counter::cells(c.clone()),
            _ => recorder::Counter::noop(),
        })
        .unwrap_or_default()
    }
    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> recorder::Gauge {
        self.resolve(family, labels, Hold::Handle, |s| match s {
            Series::IntGauge(c) => recorder::Gauge::int_cells(c.clone()),
            Series::Gauge(c) => recorder::Gauge::float_cells(c.clone()),
            _ => recorder::Gauge::noop(),
        })
        .unwrap_or_default()
    }
    fn register_histogram(
        &self,
        family: &'static MetricDef,
        labels: &[&str],
    ) -> recorder::Histogram {
        self.resolve(family, labels, Hold::Handle, |s| match s {
            Series::Histogram(h) => recorder::Histogram::cells(h.clone()),
            _ => recorder::Histogram::noop(),
        })
        .unwrap_or_default()
    }
    fn record_error(&self, error: RecordError) {
        self.count_error(error);
    }
    fn drops_released(&self) -> bool {
        true
    }
    /// Made unheld: it goes with its source.
    fn zero(&self, family: &'static MetricDef, labels: &[&str]) {
        self.resolve(family, labels, Hold::None, |_| ());
    }
    /// Gives back one handle of the series; the series of a source go
    /// together once none of them is held. Other series are kept.
    fn release(&self, family: &'static MetricDef, labels: &[&str]) {
        let (Some(pairs), Some(f)) = (
            family.label_pairs(labels),
            self.store.find_family(family.dotted, shape_of(family)),
        ) else {
            return;
        };
        self.store.release(&f, pairs.as_slice());
    }
}

fn finite(v: f64) -> Result<(), RecordError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(RecordError::InvalidValue)
    }
}

pub(crate) fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VastMetrics;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn values_appear_in_the_exposition() {
        let m = PrometheusMetrics::new();
        m.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 2, &[("source_url", "a")]);
        m.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 3, &[("source_url", "a")]);
        m.timing(
            VastMetrics::CLIENT_REQUEST_DURATION_MS,
            20.0,
            &[("source_url", "a")],
        );
        m.histogram(VastMetrics::MULTI_SOURCE_LATENCY_MS, 2000.0, &[]);
        let text = m.encode();
        assert_eq!(
            sample(&text, r#"vast_client_request_total{source_url="a"}"#),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"vast_client_request_duration_seconds_sum{source_url="a"}"#
            ),
            Some(0.02)
        );
        assert_eq!(
            sample(
                &text,
                r#"vast_client_request_duration_seconds_bucket{source_url="a",le="0.025"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"vast_client_request_duration_seconds_bucket{source_url="a",le="0.01"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "vast_multi_source_latency_seconds_sum"),
            Some(2.0)
        );
        assert!(text.contains("# HELP vast_client_request_total VAST client requests started."));
        assert!(text.contains("# TYPE vast_client_request_duration_seconds histogram"));
    }

    #[test]
    fn gauge_moves_by_delta() {
        let m = PrometheusMetrics::new();
        let labels = &[("fetch_strategy", "race")][..];
        m.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, 3.0, labels);
        m.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, -1.0, labels);
        m.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, 0.0, labels);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"vast_multi_source_active_requests{fetch_strategy="race"}"#
            ),
            Some(2.0)
        );
    }

    #[test]
    fn contract_gauges_count_whole_numbers() {
        let m = PrometheusMetrics::new();
        let labels = &[("fetch_strategy", "race")][..];
        m.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, 2.0, labels);
        assert_eq!(
            m.try_gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, 0.5, labels),
            Err(RecordError::InvalidValue)
        );
        m.gauge("app.load", 0.5, &[]);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"vast_multi_source_active_requests{fetch_strategy="race"}"#
            ),
            Some(2.0)
        );
        assert_eq!(sample(&text, "app_load"), Some(0.5));
    }

    #[test]
    fn label_values_never_merge() {
        let m = PrometheusMetrics::new();
        m.increment("x.y", 1, &[("a", "ab"), ("b", "c")]);
        m.increment("x.y", 10, &[("a", "a"), ("b", "bc")]);
        let text = m.encode();
        assert_eq!(sample(&text, r#"x_y_total{a="ab",b="c"}"#), Some(1.0));
        assert_eq!(sample(&text, r#"x_y_total{a="a",b="bc"}"#), Some(10.0));
    }

    #[test]
    fn label_order_does_not_matter() {
        let m = PrometheusMetrics::new();
        m.increment("x.y", 1, &[("a", "1"), ("b", "2")]);
        m.increment("x.y", 1, &[("b", "2"), ("a", "1")]);
        assert_eq!(sample(&m.encode(), r#"x_y_total{a="1",b="2"}"#), Some(2.0));
    }

    #[test]
    fn bad_calls_are_dropped_and_counted() {
        let m = PrometheusMetrics::new();
        m.increment("c.one", 1, &[("source_url", "a")]);
        assert_eq!(
            m.try_increment("c.one", 1, &[("other", "a")]),
            Err(RecordError::LabelMismatch)
        );
        assert_eq!(
            m.try_increment("c.one", 1, &[]),
            Err(RecordError::LabelMismatch)
        );
        assert_eq!(
            m.try_gauge("c.one.total", 1.0, &[]),
            Err(RecordError::TypeConflict)
        );
        assert_eq!(
            m.try_increment("1bad name", 1, &[]),
            Err(RecordError::InvalidName)
        );
        assert_eq!(m.try_increment("", 1, &[]), Err(RecordError::InvalidName));
        assert_eq!(
            m.try_histogram("h", 1.0, &[("le", "1")]),
            Err(RecordError::InvalidLabelName)
        );
        assert_eq!(
            m.try_increment("c.two", 1, &[("__name__", "x")]),
            Err(RecordError::InvalidLabelName)
        );
        assert_eq!(
            m.try_gauge("g", f64::NAN, &[]),
            Err(RecordError::InvalidValue)
        );
        let long = "x".repeat(MAX_LABEL_VALUE_LEN + 1);
        assert_eq!(
            m.try_increment("c.one", 1, &[("source_url", &long)]),
            Err(RecordError::LabelValueTooLong)
        );
        // The same calls through the trait: no panic, counted.
        m.increment("c.one", 1, &[("other", "a")]);
        m.gauge("c.one.total", 1.0, &[]);
        assert_eq!(m.error_count(RecordError::LabelMismatch), 1);
        assert_eq!(m.error_count(RecordError::TypeConflict), 1);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"vast_metrics_errors_total{reason="label_mismatch"}"#
            ),
            Some(1.0)
        );
        assert_eq!(sample(&text, r#"c_one_total{source_url="a"}"#), Some(1.0));
    }

    #[test]
    fn a_source_is_dropped_when_every_handle_is_released() {
        use crate::names::family;
        let m = PrometheusMetrics::new();
        let total = &family::CLIENT_REQUEST_TOTAL;
        let failure = &family::CLIENT_REQUEST_FAILURE;
        // Two holders of source "a" (two layers on one backend); only the
        // first saw a timeout.
        m.register_counter(total, &["a"]).increment(1);
        m.register_counter(failure, &["a", "timeout"]).increment(1);
        m.register_counter(total, &["a"]).increment(1);
        m.register_counter(total, &["b"]).increment(5);
        m.increment(VastMetrics::TRACKING_EVENT_SENT, 1, &[("event_type", "x")]);
        m.release(total, &["a"]);
        m.release(failure, &["a", "timeout"]);
        // The second holder still holds "a": all of it is kept.
        let text = m.encode();
        assert_eq!(
            sample(&text, r#"vast_client_request_total{source_url="a"}"#),
            Some(2.0)
        );
        assert!(text.contains(r#"error_type="timeout""#));
        m.release(total, &["a"]);
        let text = m.encode();
        assert!(!text.contains(r#"source_url="a""#), "{text}");
        assert_eq!(
            sample(&text, r#"vast_client_request_total{source_url="b"}"#),
            Some(5.0)
        );
        // Registered again: from zero. Unknown or extra releases do nothing.
        m.register_counter(total, &["a"]).increment(1);
        m.release(total, &["zzz"]);
        m.release(&family::TRACKING_EVENT_SENT, &["x"]);
        let text = m.encode();
        assert_eq!(
            sample(&text, r#"vast_client_request_total{source_url="a"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"vast_tracking_event_sent_total{event_type="x"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn given_registry_and_buckets() {
        let registry = Registry::new();
        let m = PrometheusMetrics::builder()
            .registry(registry.clone())
            .duration_buckets(vec![0.1, 1.0])
            .build()
            .unwrap();
        m.timing("op", 50.0, &[]);
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.contains(&"op_seconds".to_owned()));
        assert!(m.encode().contains(r#"op_seconds_bucket{le="0.1"} 1"#));
        // A second backend on the same registry is refused, not merged.
        assert!(matches!(
            PrometheusMetrics::builder().registry(registry).build(),
            Err(BuildError::Register(_))
        ));
        assert!(matches!(
            PrometheusMetrics::builder()
                .duration_buckets(vec![1.0, 0.5])
                .build(),
            Err(BuildError::InvalidBuckets)
        ));
    }
}
