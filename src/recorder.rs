//! The handle model: a backend ([`Recorder`]) is asked once for a series (a
//! family of the contract and its label values) and hands out a
//! [`Counter`], [`Gauge`] or [`Histogram`] handle, as in metrics-rs. The
//! layers, the multi-source fetcher and every other recording path resolve
//! their handles once (per source, per strategy, per event type) and record
//! through them: a few atomic operations per request.
//!
//! Backends: [`NoOpMetrics`] (no-op handles; layers skip recording
//! altogether), [`PrometheusMetrics`](crate::PrometheusMetrics), and
//! [`ByName`], which turns any [`MetricsCollector`] (StatsD, Datadog, OTel)
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

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::collector::MetricsCollector;
use crate::names::{MetricDef, Unit};
use crate::prometheus::{Cells, Chunk, HistogramCells};
use crate::trace::TraceContext;
use crate::NoOpMetrics;

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
    /// Gives back a handle got from a `register_*` call with the same
    /// family and labels: the caller will not record through it again
    /// (each registration is released at most once). Called when a layer
    /// expires an idle source (see
    /// [`VastMetricsLayer::source_idle_expiry`](crate::VastMetricsLayer::source_idle_expiry)).
    ///
    /// A backend may then drop the series, freeing its memory and removing
    /// it from its output, once nothing holds a handle of it; a later
    /// registration starts it again from zero (a counter reset).
    /// [`PrometheusMetrics`](crate::PrometheusMetrics) drops the series of
    /// one `source_url` value together, when every handle of every series
    /// with that value has been released. Defaults to nothing: the series
    /// are kept.
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
impl<C: MetricsCollector + Clone + 'static> Recording for ByName<C> {}

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
    fn release(&self, family: &'static MetricDef, labels: &[&str]) {
        (**self).release(family, labels)
    }
    fn drops_released(&self) -> bool {
        (**self).drops_released()
    }
}

/// What a custom counter does: the backend side of a [`Counter`].
pub trait CounterFn: Send + Sync {
    /// Adds `n`.
    fn increment(&self, n: u64);
}

/// What a custom gauge does: the backend side of a [`Gauge`].
pub trait GaugeFn: Send + Sync {
    /// Moves the gauge by `delta`.
    fn add(&self, delta: f64);
}

/// What a custom histogram does: the backend side of a [`Histogram`].
pub trait HistogramFn: Send + Sync {
    /// Records one observation (seconds for durations).
    fn record(&self, value: f64);
}

/// A counter handle. Cheap to clone; the default is a no-op.
#[derive(Clone, Default)]
pub struct Counter(CounterInner);

#[derive(Clone, Default)]
enum CounterInner {
    #[default]
    Noop,
    // Fields, not a `Cells`, and a thin `Custom`: the handle is two words.
    Cells {
        chunk: Arc<Chunk>,
        start: u32,
    },
    Custom(Arc<Arc<dyn CounterFn>>),
}

impl Counter {
    /// A handle that records nothing.
    pub fn noop() -> Self {
        Counter(CounterInner::Noop)
    }

    /// A handle backed by `f`.
    pub fn from_fn(f: Arc<dyn CounterFn>) -> Self {
        Counter(CounterInner::Custom(Arc::new(f)))
    }

    pub(crate) fn cells(c: Cells) -> Self {
        let (chunk, start) = c.into_parts();
        Counter(CounterInner::Cells { chunk, start })
    }

    /// Adds `n`.
    #[inline]
    pub fn increment(&self, n: u64) {
        match &self.0 {
            CounterInner::Noop => {}
            CounterInner::Cells { chunk, start } => chunk.add(*start, n),
            CounterInner::Custom(f) => f.increment(n),
        }
    }
}

/// A gauge handle. Cheap to clone; the default is a no-op.
#[derive(Clone, Default)]
pub struct Gauge(GaugeInner);

#[derive(Clone, Default)]
enum GaugeInner {
    #[default]
    Noop,
    Float {
        chunk: Arc<Chunk>,
        start: u32,
    },
    /// The contract's gauges count things: one atomic add.
    Int {
        chunk: Arc<Chunk>,
        start: u32,
    },
    Custom(Arc<Arc<dyn GaugeFn>>),
}

impl Gauge {
    /// A handle that records nothing.
    pub fn noop() -> Self {
        Gauge(GaugeInner::Noop)
    }

    /// A handle backed by `f`.
    pub fn from_fn(f: Arc<dyn GaugeFn>) -> Self {
        Gauge(GaugeInner::Custom(Arc::new(f)))
    }

    pub(crate) fn float_cells(c: Cells) -> Self {
        let (chunk, start) = c.into_parts();
        Gauge(GaugeInner::Float { chunk, start })
    }

    pub(crate) fn int_cells(c: Cells) -> Self {
        let (chunk, start) = c.into_parts();
        Gauge(GaugeInner::Int { chunk, start })
    }

    /// Moves the gauge by `delta`.
    #[inline]
    pub fn add(&self, delta: f64) {
        match &self.0 {
            GaugeInner::Noop => {}
            GaugeInner::Float { chunk, start } => chunk.add_f64(*start, delta),
            // Two's complement: adding a negative delta wraps to it.
            GaugeInner::Int { chunk, start } => chunk.add(*start, delta as i64 as u64),
            GaugeInner::Custom(f) => f.add(delta),
        }
    }
}

/// A histogram handle. Cheap to clone; the default is a no-op.
#[derive(Clone, Default)]
pub struct Histogram(HistogramInner);

#[derive(Clone, Default)]
enum HistogramInner {
    #[default]
    Noop,
    Cells(Arc<HistogramCells>),
    Custom(Arc<Arc<dyn HistogramFn>>),
}

impl Histogram {
    /// A handle that records nothing.
    pub fn noop() -> Self {
        Histogram(HistogramInner::Noop)
    }

    /// A handle backed by `f`.
    pub fn from_fn(f: Arc<dyn HistogramFn>) -> Self {
        Histogram(HistogramInner::Custom(Arc::new(f)))
    }

    pub(crate) fn cells(h: Arc<HistogramCells>) -> Self {
        Histogram(HistogramInner::Cells(h))
    }

    /// Records one observation (seconds for durations).
    #[inline]
    pub fn record(&self, value: f64) {
        self.record_traced(value, None);
    }

    /// Records one observation made within a trace: backends that keep
    /// exemplars keep it as its bucket's (see [`crate::trace`]).
    #[inline]
    pub fn record_traced(&self, value: f64, trace: Option<&TraceContext>) {
        match &self.0 {
            HistogramInner::Noop => {}
            HistogramInner::Cells(h) => h.observe(value, trace),
            HistogramInner::Custom(f) => f.record(value),
        }
    }
}

macro_rules! debug_handle {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($ty))
            }
        }
    )*};
}
debug_handle!(Counter, Gauge, Histogram);

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
    fn is_enabled(&self) -> bool {
        false
    }
}

/// Any [`MetricsCollector`] as a [`Recorder`]: every record is a call by
/// the family's dotted name and label pairs, as in the original system
/// (durations through `timing`, in milliseconds). Slower than the built-in
/// backends, but works with StatsD, Datadog, OpenTelemetry.
///
/// The collector runs on the request path. A collector that panics cannot
/// take the request down: the panic is caught, the record dropped, the
/// response delivered, and the panic counted ([`ByName::panics`]). A slow
/// collector slows every request by its delay, so keep its calls
/// non-blocking (a UDP send, a channel).
#[derive(Clone, Debug, Default)]
pub struct ByName<C> {
    collector: C,
    panics: Arc<AtomicU64>,
}

impl<C> ByName<C> {
    /// Records through `collector`.
    pub fn new(collector: C) -> Self {
        ByName {
            collector,
            panics: Arc::default(),
        }
    }

    /// The collector.
    pub fn get_ref(&self) -> &C {
        &self.collector
    }

    /// Collector calls that panicked and were dropped.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

/// One series of a [`ByName`] recorder: its name and label pairs.
struct ByNameSeries<C> {
    collector: C,
    family: &'static MetricDef,
    values: Box<[Box<str>]>,
    panics: Arc<AtomicU64>,
}

impl<C: MetricsCollector> ByNameSeries<C> {
    /// Calls the collector with the series' labels; a panic is caught and
    /// counted.
    fn call(&self, record: impl FnOnce(&C, &str, &[(&str, &str)])) {
        // Made from the family's own keys: the values always match them.
        let pairs = self.family.label_pairs(&self.values);
        let labels = pairs.as_ref().map_or(&[][..], |p| p.as_slice());
        let call = AssertUnwindSafe(|| record(&self.collector, self.family.dotted, labels));
        if catch_unwind(call).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<C: MetricsCollector> CounterFn for ByNameSeries<C> {
    fn increment(&self, n: u64) {
        self.call(|c, name, labels| c.increment(name, n, labels));
    }
}

impl<C: MetricsCollector> GaugeFn for ByNameSeries<C> {
    fn add(&self, delta: f64) {
        self.call(|c, name, labels| c.gauge(name, delta, labels));
    }
}

impl<C: MetricsCollector> HistogramFn for ByNameSeries<C> {
    fn record(&self, value: f64) {
        match self.family.unit {
            Unit::Seconds => self.call(|c, name, labels| c.timing(name, value * 1000.0, labels)),
            Unit::Count => self.call(|c, name, labels| c.histogram(name, value, labels)),
        }
    }
}

impl<C: MetricsCollector + Clone + 'static> ByName<C> {
    fn series(&self, family: &'static MetricDef, labels: &[&str]) -> Arc<ByNameSeries<C>> {
        Arc::new(ByNameSeries {
            collector: self.collector.clone(),
            family,
            values: labels.iter().map(|v| Box::from(*v)).collect(),
            panics: self.panics.clone(),
        })
    }
}

impl<C: MetricsCollector + Clone + 'static> Recorder for ByName<C> {
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> Counter {
        Counter::from_fn(self.series(family, labels))
    }
    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> Gauge {
        Gauge::from_fn(self.series(family, labels))
    }
    fn register_histogram(&self, family: &'static MetricDef, labels: &[&str]) -> Histogram {
        Histogram::from_fn(self.series(family, labels))
    }
    /// Counted as `vast.metrics.errors{reason}`.
    fn record_error(&self, error: RecordError) {
        let call = AssertUnwindSafe(|| {
            self.collector
                .increment("vast.metrics.errors", 1, &[("reason", error.reason())])
        });
        if catch_unwind(call).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the crate could not record or inspect, instead of failing the
/// caller: the `reason` label of `vast_metrics_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The metric name does not make a valid Prometheus name (ASCII letters,
    /// digits, `_` and `:`, not starting with a digit, at most
    /// [`MAX_NAME_LEN`](crate::prometheus::MAX_NAME_LEN) bytes).
    #[error("invalid metric name")]
    InvalidName,
    /// A label key is not a valid Prometheus label name, or is reserved.
    #[error("invalid or reserved label name")]
    InvalidLabelName,
    /// The label keys differ from the ones the family was created with.
    #[error("label keys differ from the family's")]
    LabelMismatch,
    /// The name is already used by a metric of another type.
    #[error("metric name already used with another type")]
    TypeConflict,
    /// A label value is longer than [`MAX_LABEL_VALUE_LEN`](crate::prometheus::MAX_LABEL_VALUE_LEN).
    #[error("label value too long")]
    LabelValueTooLong,
    /// The value is NaN or infinite.
    #[error("value is not finite")]
    InvalidValue,
    /// A source label went past the layer's cap and was recorded as `other`.
    #[error("source label cap reached")]
    SourceLabelOverflow,
    /// A body's `Content-Encoding` is one the inspection cannot decode: it
    /// was not inspected, and its verdict is the HTTP one.
    #[error("body encoding not inspected")]
    UnsupportedEncoding,
    /// A linear creative of an answer with ads had no `<Duration>`, or one
    /// that is not `HH:MM:SS(.mmm)`: it added nothing to
    /// `vast_ad_duration_seconds_total`.
    #[error("linear creative without a valid duration")]
    BadDuration,
}

impl RecordError {
    /// Every value, in label order.
    pub const ALL: [RecordError; 9] = [
        RecordError::InvalidName,
        RecordError::InvalidLabelName,
        RecordError::LabelMismatch,
        RecordError::TypeConflict,
        RecordError::LabelValueTooLong,
        RecordError::InvalidValue,
        RecordError::SourceLabelOverflow,
        RecordError::UnsupportedEncoding,
        RecordError::BadDuration,
    ];

    /// The `reason` label value.
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::InvalidName => "invalid_name",
            RecordError::InvalidLabelName => "invalid_label_name",
            RecordError::LabelMismatch => "label_mismatch",
            RecordError::TypeConflict => "type_conflict",
            RecordError::LabelValueTooLong => "label_value_too_long",
            RecordError::InvalidValue => "invalid_value",
            RecordError::SourceLabelOverflow => "source_label_overflow",
            RecordError::UnsupportedEncoding => "unsupported_encoding",
            RecordError::BadDuration => "bad_duration",
        }
    }
}
