//! [`ByName`]: any [`MetricsCollector`] as a [`Recorder`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, RecordError, Recorder, Recording,
};
use crate::collector::MetricsCollector;
use crate::names::{MetricDef, Unit};

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

impl<C: MetricsCollector + Clone + 'static> Recording for ByName<C> {}

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
