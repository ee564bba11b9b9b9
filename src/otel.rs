//! [`OtelMetrics`]: a [`Recorder`] that records every family through an
//! OpenTelemetry [`Meter`], for any OTel SDK pipeline (OTLP, stdout, ...).
//!
//! Instruments follow OTel conventions:
//!
//! - Name: the family's dotted name ([`MetricDef::dotted`], e.g.
//!   `vast.client.request.total`), without a trailing `.milliseconds`
//!   (the unit says it): see [`instrument_name`].
//! - Counters: `u64` counters; gauges (values that go up and down):
//!   `f64` up-down counters; durations: `f64` histograms in seconds (unit
//!   `s`) with [`DEFAULT_DURATION_BUCKETS`] as advisory boundaries, the
//!   same buckets as the Prometheus backend.
//! - Units: `s` for durations, else the counted thing in braces
//!   (`{request}`, `{fetch}`, `{attempt}`, ...): see [`instrument_unit`].
//! - Attributes: the family's label keys with the recorded values, built
//!   once per series.
//!
//! Instruments are made once per family and reused; each series' handle
//! holds its instrument and attributes, so the hot path is the SDK's own
//! `add`/`record`. What the crate could not record counts in
//! `vast.metrics.errors{reason}`.
//!
//! [`DEFAULT_DURATION_BUCKETS`]: crate::prometheus::DEFAULT_DURATION_BUCKETS
//!
//! # Example
//!
//! ```
//! use opentelemetry::metrics::MeterProvider as _;
//! use vast_metrics::names::family;
//! use vast_metrics::otel::{instrument_name, instrument_unit, OtelMetrics};
//! use vast_metrics::recorder::Recorder;
//! use vast_metrics::VastMetricsLayer;
//!
//! // Any `MeterProvider`: the SDK's `SdkMeterProvider` with an OTLP exporter
//! // in an application, the no-op global one here.
//! let meter = opentelemetry::global::meter_provider().meter("vast-metrics");
//! let otel = OtelMetrics::new(meter);
//! let _layer = VastMetricsLayer::new(otel.clone());
//! otel.register_counter(&family::CLIENT_REQUEST_TOTAL, &["primary"]).increment(1);
//!
//! let duration = &family::MULTI_SOURCE_LATENCY_MS;
//! assert_eq!(instrument_name(duration), "vast.multi_source.latency");
//! assert_eq!(instrument_unit(duration), "s");
//! assert_eq!(instrument_unit(&family::CLIENT_REQUEST_TOTAL), "{request}");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{self as otel, Meter};
use opentelemetry::KeyValue;

use crate::names::{MetricDef, Unit};
use crate::prometheus::DEFAULT_DURATION_BUCKETS;
use crate::recorder::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, RecordError, Recorder,
};

/// The counter of what the crate could not record, by `reason`.
const ERRORS_INSTRUMENT: &str = "vast.metrics.errors";

/// The OTel instrument name of a family: its dotted name, less a trailing
/// `.milliseconds` (durations are recorded in seconds, unit `s`).
pub fn instrument_name(family: &MetricDef) -> &'static str {
    family
        .dotted
        .strip_suffix(".milliseconds")
        .unwrap_or(family.dotted)
}

/// The OTel unit of a family: `s` for durations; for counts, the counted
/// thing as an annotation: `{request}` (client requests), `{fetch}`
/// (multi-source fetches), `{source}` (sources configured), `{attempt}`
/// (source attempts), `{tier}` (fallback tiers), `{document}` (parsed VAST),
/// `{event}` (tracking events, and any other family), `{response}` (VAST
/// error answers).
pub fn instrument_unit(family: &MetricDef) -> &'static str {
    if family.unit == Unit::Seconds {
        return "s";
    }
    let name = family.dotted;
    let after = |prefix: &str| name.starts_with(prefix);
    if after("vast.client.") {
        "{request}"
    } else if after("vast.multi_source.requests.") || name == "vast.multi_source.active_requests" {
        "{fetch}"
    } else if name == "vast.multi_source.sources.count" {
        "{source}"
    } else if after("vast.multi_source.sources.") {
        "{attempt}"
    } else if after("vast.multi_source.fallback.") {
        "{tier}"
    } else if after("vast.parser.") {
        "{document}"
    } else if name == "vast.errors" {
        "{response}"
    } else {
        "{event}"
    }
}

/// Instruments made so far, one per family and kind.
#[derive(Default)]
struct Instruments {
    counters: HashMap<&'static str, otel::Counter<u64>>,
    /// Counters of seconds (`vast.ad.duration`, the break families).
    seconds: HashMap<&'static str, otel::Counter<f64>>,
    gauges: HashMap<&'static str, otel::UpDownCounter<f64>>,
    histograms: HashMap<&'static str, otel::Histogram<f64>>,
}

/// A [`Recorder`] over an OpenTelemetry [`Meter`]. Cheap to clone.
#[derive(Clone)]
pub struct OtelMetrics {
    meter: Meter,
    instruments: Arc<Mutex<Instruments>>,
    errors: otel::Counter<u64>,
}

impl fmt::Debug for OtelMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelMetrics").finish_non_exhaustive()
    }
}

impl OtelMetrics {
    /// Records through `meter` (e.g. `provider.meter("vast-metrics")`).
    pub fn new(meter: Meter) -> Self {
        let errors = meter
            .u64_counter(ERRORS_INSTRUMENT)
            .with_unit("{error}")
            .with_description("Calls the crate could not record or inspect as asked, by reason.")
            .build();
        OtelMetrics {
            meter,
            instruments: Arc::default(),
            errors,
        }
    }

    /// The cached instruments; a poisoned lock (an SDK panic while building
    /// one) leaves the cache usable.
    fn instruments(&self) -> std::sync::MutexGuard<'_, Instruments> {
        self.instruments.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The family's label keys paired with the recorded values.
fn attributes(family: &'static MetricDef, values: &[&str]) -> Box<[KeyValue]> {
    family
        .labels
        .iter()
        .zip(values)
        .map(|(key, value)| KeyValue::new(*key, (*value).to_owned()))
        .collect()
}

struct OtelCounter {
    counter: otel::Counter<u64>,
    attributes: Box<[KeyValue]>,
}

impl CounterFn for OtelCounter {
    fn increment(&self, n: u64) {
        self.counter.add(n, &self.attributes);
    }
}

struct OtelGauge {
    gauge: otel::UpDownCounter<f64>,
    attributes: Box<[KeyValue]>,
}

impl GaugeFn for OtelGauge {
    fn add(&self, delta: f64) {
        // A NaN would stick in the sum for good.
        if delta.is_finite() {
            self.gauge.add(delta, &self.attributes);
        }
    }
}

struct OtelHistogram {
    histogram: otel::Histogram<f64>,
    attributes: Box<[KeyValue]>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        if value.is_finite() {
            self.histogram.record(value, &self.attributes);
        }
    }
}

impl crate::recorder::Recording for OtelMetrics {}

/// A counter of seconds: its handle counts milliseconds.
struct OtelSecondsCounter {
    counter: otel::Counter<f64>,
    attributes: Box<[KeyValue]>,
}

impl CounterFn for OtelSecondsCounter {
    fn increment(&self, millis: u64) {
        self.counter.add(millis as f64 / 1000.0, &self.attributes);
    }
}

impl Recorder for OtelMetrics {
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> Counter {
        if family.unit == Unit::Seconds {
            let counter = self
                .instruments()
                .seconds
                .entry(family.dotted)
                .or_insert_with(|| {
                    self.meter
                        .f64_counter(instrument_name(family))
                        .with_unit("s")
                        .with_description(family.help)
                        .build()
                })
                .clone();
            return Counter::from_fn(Arc::new(OtelSecondsCounter {
                counter,
                attributes: attributes(family, labels),
            }));
        }
        let counter = self
            .instruments()
            .counters
            .entry(family.dotted)
            .or_insert_with(|| {
                self.meter
                    .u64_counter(instrument_name(family))
                    .with_unit(instrument_unit(family))
                    .with_description(family.help)
                    .build()
            })
            .clone();
        Counter::from_fn(Arc::new(OtelCounter {
            counter,
            attributes: attributes(family, labels),
        }))
    }

    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> Gauge {
        let gauge = self
            .instruments()
            .gauges
            .entry(family.dotted)
            .or_insert_with(|| {
                self.meter
                    .f64_up_down_counter(instrument_name(family))
                    .with_unit(instrument_unit(family))
                    .with_description(family.help)
                    .build()
            })
            .clone();
        Gauge::from_fn(Arc::new(OtelGauge {
            gauge,
            attributes: attributes(family, labels),
        }))
    }

    fn register_histogram(&self, family: &'static MetricDef, labels: &[&str]) -> Histogram {
        let histogram = self
            .instruments()
            .histograms
            .entry(family.dotted)
            .or_insert_with(|| {
                let builder = self
                    .meter
                    .f64_histogram(instrument_name(family))
                    .with_unit(instrument_unit(family))
                    .with_description(family.help);
                match family.unit {
                    // The Prometheus backend's buckets: the two exports agree.
                    Unit::Seconds => builder
                        .with_boundaries(DEFAULT_DURATION_BUCKETS.to_vec())
                        .build(),
                    Unit::Count => builder.build(),
                }
            })
            .clone();
        Histogram::from_fn(Arc::new(OtelHistogram {
            histogram,
            attributes: attributes(family, labels),
        }))
    }

    /// Counted as `vast.metrics.errors{reason}`.
    fn record_error(&self, error: RecordError) {
        self.errors
            .add(1, &[KeyValue::new("reason", error.reason())]);
    }
}
