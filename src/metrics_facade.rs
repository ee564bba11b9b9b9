//! [`MetricsFacade`]: a [`Recorder`] that records through the
//! [`metrics`] crate (metrics-rs), so any metrics-rs exporter
//! (`metrics-exporter-prometheus`, StatsD, ...) receives the crate's metrics.
//!
//! Names are the exported Prometheus-style names of [`VastMetrics::ALL`]
//! ([`MetricDef::exported`], e.g. `vast_client_request_total`), labels the
//! family's keys with the recorded values, durations histograms in seconds.
//! metrics-rs counters are integers, so the contract's counters of seconds
//! (`vast_ad_duration_seconds_total`, the break families) count whole
//! milliseconds under `*_milliseconds_total` ([`millis_name`]).
//! Each series is registered with the installed metrics-rs recorder once,
//! when the crate resolves its handle; the hot path is the metrics-rs
//! handle's own `increment`/`record`. Help text and unit are described
//! (`describe_*`) on a family's first registration. What the crate could not
//! record counts in `vast_metrics_errors_total{reason}`.
//!
//! Install the metrics-rs recorder *before* the first request: a handle
//! resolved while no recorder is installed stays a no-op.
//!
//! [`VastMetrics::ALL`]: crate::VastMetrics::ALL
//!
//! # Example
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use vast_metrics::metrics_facade::MetricsFacade;
//! use vast_metrics::names::family;
//! use vast_metrics::recorder::Recorder;
//! use vast_metrics::VastMetricsLayer;
//!
//! // In an application: install an exporter's recorder first, then
//! // `VastMetricsLayer::new(MetricsFacade::new())`.
//! let _layer = VastMetricsLayer::new(MetricsFacade::new());
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let total = metrics::with_local_recorder(&recorder, || {
//!     MetricsFacade::new().register_counter(&family::CLIENT_REQUEST_TOTAL, &["primary"])
//! });
//! total.increment(1);
//! let (key, _, _, value) = snapshotter.snapshot().into_vec().remove(0);
//! assert_eq!(key.key().name(), "vast_client_request_total");
//! assert_eq!(value, DebugValue::Counter(1));
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::names::{MetricDef, MetricKind, Unit};
use crate::recorder::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, RecordError, Recorder,
};

/// The counter of what the crate could not record, by `reason`.
const ERRORS_METRIC: &str = "vast_metrics_errors_total";

/// A [`Recorder`] that forwards to the [`metrics`] crate's installed
/// recorder (global, or thread-local via `metrics::with_local_recorder`
/// while handles are resolved). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct MetricsFacade {
    /// Families already described, so `describe_*` runs once per family.
    described: Arc<Mutex<HashSet<&'static str>>>,
}

impl MetricsFacade {
    /// A facade over whichever metrics-rs recorder is installed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Describes `family` (help and unit) unless this facade already did.
    fn describe(&self, family: &'static MetricDef) {
        // A poisoned lock only means a describe call panicked elsewhere; the
        // set is still usable.
        let first = self
            .described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(family.exported);
        if !first {
            return;
        }
        let unit = match family.unit {
            Unit::Seconds => metrics::Unit::Seconds,
            Unit::Count => metrics::Unit::Count,
        };
        let (name, help) = (family.exported, family.help);
        match family.kind {
            MetricKind::Counter => metrics::describe_counter!(name, unit, help),
            MetricKind::Gauge => metrics::describe_gauge!(name, unit, help),
            MetricKind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// The facade's name of a counter of seconds: `*_milliseconds_total`
/// (`vast_ad_duration_milliseconds_total`).
pub fn millis_name(family: &MetricDef) -> String {
    let stem = family
        .exported
        .strip_suffix("_seconds_total")
        .unwrap_or(family.exported);
    format!("{stem}_milliseconds_total")
}

/// The family's label keys paired with the recorded values.
fn label_pairs(family: &'static MetricDef, values: &[&str]) -> Vec<metrics::Label> {
    family
        .labels
        .iter()
        .zip(values)
        .map(|(key, value)| metrics::Label::new(*key, (*value).to_owned()))
        .collect()
}

struct FacadeCounter(metrics::Counter);

impl CounterFn for FacadeCounter {
    fn increment(&self, n: u64) {
        self.0.increment(n);
    }
}

struct FacadeGauge(metrics::Gauge);

impl GaugeFn for FacadeGauge {
    fn add(&self, delta: f64) {
        // metrics-rs gauges move up by `increment` and down by `decrement`.
        if delta >= 0.0 {
            self.0.increment(delta);
        } else {
            self.0.decrement(-delta);
        }
    }
}

struct FacadeHistogram(metrics::Histogram);

impl HistogramFn for FacadeHistogram {
    fn record(&self, value: f64) {
        self.0.record(value);
    }
}

impl crate::recorder::Recording for MetricsFacade {}

impl Recorder for MetricsFacade {
    fn register_counter(&self, family: &'static MetricDef, values: &[&str]) -> Counter {
        if family.unit == Unit::Seconds {
            // metrics-rs counters are integers: seconds are counted in
            // whole milliseconds, under a name that says so.
            let name = millis_name(family);
            metrics::describe_counter!(name.clone(), metrics::Unit::Milliseconds, family.help);
            let handle = metrics::counter!(name, label_pairs(family, values));
            return Counter::from_fn(Arc::new(FacadeCounter(handle)));
        }
        self.describe(family);
        let handle = metrics::counter!(family.exported, label_pairs(family, values));
        Counter::from_fn(Arc::new(FacadeCounter(handle)))
    }

    fn register_gauge(&self, family: &'static MetricDef, values: &[&str]) -> Gauge {
        self.describe(family);
        let handle = metrics::gauge!(family.exported, label_pairs(family, values));
        Gauge::from_fn(Arc::new(FacadeGauge(handle)))
    }

    fn register_histogram(&self, family: &'static MetricDef, values: &[&str]) -> Histogram {
        self.describe(family);
        let handle = metrics::histogram!(family.exported, label_pairs(family, values));
        Histogram::from_fn(Arc::new(FacadeHistogram(handle)))
    }

    /// Counted as `vast_metrics_errors_total{reason}`, as in the Prometheus
    /// backend.
    fn record_error(&self, error: RecordError) {
        metrics::counter!(ERRORS_METRIC, "reason" => error.reason()).increment(1);
    }
}
