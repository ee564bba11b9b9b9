//! [`PrometheusMetrics`]: the Prometheus backend.
//!
//! Families are created on first use, each series is its own set of atomics
//! (so `["ab","c"]` and `["a","bc"]` never share a series), and every call
//! that cannot be recorded is dropped and counted in
//! `vast_metrics_errors_total{reason}` instead of failing the caller.
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

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus::core::{Collector, Desc, Metric};
use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry, TextEncoder,
};

use crate::collector::{Labels, MetricsCollector};
use crate::names::{self, MetricDef, MetricKind, MetricLabels, Unit};
use crate::recorder::{self, Recorder};

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
        let store = Arc::new(Store::new(buckets));
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

    /// How many calls were dropped for `reason` so far.
    pub fn error_count(&self, reason: RecordError) -> u64 {
        self.store.errors[reason as usize].get()
    }

    /// Counts a dropped call in `vast_metrics_errors_total{reason}`.
    pub(crate) fn count_error(&self, reason: RecordError) {
        self.store.errors[reason as usize].inc();
    }

    /// Adds to a counter; returns why the call was dropped, if it was.
    pub fn try_increment(
        &self,
        metric: &str,
        value: u64,
        labels: Labels<'_>,
    ) -> Result<(), RecordError> {
        self.family(metric, Shape::Counter)?
            .series(labels)?
            .counter()
            .inc_by(value);
        Ok(())
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
        self.family(metric, Shape::Histogram)?
            .series(labels)?
            .histogram()
            .observe(value);
        Ok(())
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
        let series = self.family(metric, Shape::Gauge)?.series(labels)?;
        match series {
            _ if delta == 0.0 => {}
            Series::IntGauge(g) if delta.fract() == 0.0 => g.add(delta as i64),
            Series::IntGauge(_) => return Err(RecordError::InvalidValue),
            series => series.gauge().add(delta),
        }
        Ok(())
    }

    /// Observes a duration given in milliseconds, exported in seconds.
    pub fn try_timing(&self, metric: &str, ms: f64, labels: Labels<'_>) -> Result<(), RecordError> {
        finite(ms)?;
        self.family(metric, Shape::Timing)?
            .series(labels)?
            .histogram()
            .observe(ms / 1000.0);
        Ok(())
    }

    fn record(&self, result: Result<(), RecordError>) {
        if let Err(reason) = result {
            self.count_error(reason);
        }
    }

    /// The family a dotted name maps to, created on first use.
    pub(crate) fn family(&self, dotted: &str, shape: Shape) -> Result<Arc<Family>, RecordError> {
        self.store.family(dotted, shape)
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
    /// The series of a contract family; a failure is counted, never raised.
    /// A series with a `source_url` is held for its source until released.
    fn resolve(&self, def: &'static MetricDef, values: &[&str]) -> Option<Series> {
        if !is_per_source(def) {
            return self.resolve_unheld(def, values).map(|(_, _, s)| s);
        }
        let mut held = self
            .store
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (family, hash, series) = self.resolve_unheld(def, values)?;
        let hold = held.entry(values[0].into()).or_default();
        hold.handles += 1;
        if !hold
            .series
            .iter()
            .any(|(f, h)| *h == hash && Arc::ptr_eq(f, &family))
        {
            hold.series.push((family, hash));
        }
        Some(series)
    }

    fn resolve_unheld(
        &self,
        def: &'static MetricDef,
        values: &[&str],
    ) -> Option<(Arc<Family>, u64, Series)> {
        let shape = match (def.kind, def.unit) {
            (MetricKind::Counter, _) => Shape::Counter,
            (MetricKind::Gauge, _) => Shape::Gauge,
            (MetricKind::Histogram, Unit::Seconds) => Shape::Timing,
            (MetricKind::Histogram, Unit::Count) => Shape::Histogram,
        };
        let result = match def.label_pairs(values) {
            None => Err(RecordError::LabelMismatch),
            Some(pairs) => self.family(def.dotted, shape).and_then(|f| {
                let (hash, series) = f.series_hashed(pairs.as_slice())?;
                Ok((f, hash, series))
            }),
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

impl recorder::Recording for PrometheusMetrics {}

impl Recorder for PrometheusMetrics {
    fn register_counter(&self, family: &'static MetricDef, labels: &[&str]) -> recorder::Counter {
        self.resolve(family, labels)
            .map_or_else(recorder::Counter::noop, |s| {
                recorder::Counter::prometheus(s.counter())
            })
    }
    fn register_gauge(&self, family: &'static MetricDef, labels: &[&str]) -> recorder::Gauge {
        self.resolve(family, labels)
            .map_or_else(recorder::Gauge::noop, |s| match s {
                Series::IntGauge(g) => recorder::Gauge::prometheus_int(g),
                s => recorder::Gauge::prometheus(s.gauge()),
            })
    }
    fn register_histogram(
        &self,
        family: &'static MetricDef,
        labels: &[&str],
    ) -> recorder::Histogram {
        self.resolve(family, labels)
            .map_or_else(recorder::Histogram::noop, |s| {
                recorder::Histogram::prometheus(s.histogram())
            })
    }
    fn record_error(&self, error: RecordError) {
        self.count_error(error);
    }
    fn drops_released(&self) -> bool {
        true
    }
    /// Drops every series of the source (its `source_url` value) once all
    /// their handles are released; other series are kept.
    fn release(&self, family: &'static MetricDef, labels: &[&str]) {
        if !is_per_source(family) || labels.len() != family.labels.len() {
            return;
        }
        let mut held = self
            .store
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(hold) = held.get_mut(labels[0]) else {
            return;
        };
        hold.handles = hold.handles.saturating_sub(1);
        if hold.handles > 0 {
            return;
        }
        let source = labels[0];
        if let Some(hold) = held.remove(source) {
            for (family, hash) in hold.series {
                family.remove(hash, source);
            }
        }
        if held.capacity() > 64 && held.len() < held.capacity() / 4 {
            held.shrink_to_fit();
        }
    }
}

/// Whether the family's series are per source (`source_url` first), held
/// and released by source.
fn is_per_source(def: &MetricDef) -> bool {
    def.labels.first() == Some(&MetricLabels::SOURCE_URL)
}

/// The handles given out for one source's series, and those series.
#[derive(Default)]
struct Hold {
    handles: usize,
    /// Each series once: its family and hash.
    series: Vec<(Arc<Family>, u64)>,
}

fn finite(v: f64) -> Result<(), RecordError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(RecordError::InvalidValue)
    }
}

/// How a dotted name is exported: the metric type, and for histograms
/// whether values are milliseconds exported in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    Counter,
    Gauge,
    Histogram,
    Timing,
}

impl Shape {
    fn kind(self) -> MetricKind {
        match self {
            Shape::Counter => MetricKind::Counter,
            Shape::Gauge => MetricKind::Gauge,
            Shape::Histogram | Shape::Timing => MetricKind::Histogram,
        }
    }

    fn exported_name(self, dotted: &str) -> String {
        match self {
            Shape::Timing => names::exported_timing_name(dotted),
            other => names::exported_name(dotted, other.kind()),
        }
    }
}

struct Store {
    duration_buckets: Vec<f64>,
    /// Dotted name -> family, one map per shape, so lookups borrow `&str`.
    by_dotted: [RwLock<HashMap<String, Arc<Family>>>; 4],
    /// Exported name -> family, to catch one name used with two types.
    by_exported: RwLock<HashMap<String, Arc<Family>>>,
    errors: [IntCounter; RecordError::ALL.len()],
    errors_desc: Desc,
    /// Per `source_url` value: the handles of its series not yet released.
    /// Held while a scrape collects, so it never sees part of a source.
    held: Mutex<HashMap<Box<str>, Hold>>,
    /// The contract's families, announced to the registry so that a
    /// family of the same name registered by someone else is refused.
    contract_descs: Vec<Desc>,
}

impl Store {
    fn new(duration_buckets: Vec<f64>) -> Self {
        let help = "Metric calls dropped by vast-metrics instead of failing the caller, by reason.";
        let errors = RecordError::ALL.map(|_| {
            IntCounter::with_opts(Opts::new(ERRORS_METRIC, help)).expect("static name is valid")
        });
        let errors_desc = Desc::new(
            ERRORS_METRIC.into(),
            help.into(),
            vec!["reason".into()],
            HashMap::new(),
        )
        .expect("static name is valid");
        let contract_descs = names::VastMetrics::ALL
            .iter()
            .map(|def| {
                let labels = def.labels.iter().map(|l| (*l).to_owned()).collect();
                Desc::new(def.exported.into(), def.help.into(), labels, HashMap::new())
                    .expect("the contract's names are valid")
            })
            .collect();
        Store {
            contract_descs,
            duration_buckets,
            by_dotted: Default::default(),
            by_exported: Default::default(),
            errors,
            errors_desc,
            held: Mutex::default(),
        }
    }

    fn family(&self, dotted: &str, shape: Shape) -> Result<Arc<Family>, RecordError> {
        let map = &self.by_dotted[shape as usize];
        if let Some(family) = map.read().unwrap_or_else(|e| e.into_inner()).get(dotted) {
            return Ok(family.clone());
        }
        let exported = shape.exported_name(dotted);
        if dotted.is_empty()
            || exported.len() > MAX_NAME_LEN
            || !valid_metric_name(&exported)
            || exported == ERRORS_METRIC
        {
            return Err(RecordError::InvalidName);
        }
        let mut by_exported = self.by_exported.write().unwrap_or_else(|e| e.into_inner());
        let family = match by_exported.entry(exported) {
            Entry::Occupied(e) if e.get().shape == shape => e.get().clone(),
            Entry::Occupied(_) => return Err(RecordError::TypeConflict),
            Entry::Vacant(e) => {
                let help = match names::help(dotted) {
                    Some(help) => help.to_owned(),
                    None => format!("Recorded through vast-metrics as {dotted}."),
                };
                let own = names::lookup(dotted).map_or(&[][..], |def| def.buckets);
                let buckets = match shape {
                    Shape::Timing => self.duration_buckets.clone(),
                    Shape::Histogram if !own.is_empty() => own.to_vec(),
                    _ => prometheus::DEFAULT_BUCKETS.to_vec(),
                };
                let family = Arc::new(Family {
                    name: e.key().clone(),
                    help,
                    shape,
                    buckets,
                    integer: shape == Shape::Gauge && names::lookup(dotted).is_some(),
                    label_keys: RwLock::new(None),
                    series: RwLock::new(HashMap::new()),
                });
                e.insert(family).clone()
            }
        };
        drop(by_exported);
        map.write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dotted.to_owned(), family.clone());
        Ok(family)
    }
}

/// One exported metric family and its series.
pub(crate) struct Family {
    name: String,
    help: String,
    shape: Shape,
    buckets: Vec<f64>,
    /// A gauge of the contract: integer values.
    integer: bool,
    /// Fixed by the first call that records into the family.
    label_keys: RwLock<Option<Box<[String]>>>,
    /// Series by a hash of their label values; the values are compared in
    /// full, so distinct values never merge.
    series: RwLock<HashMap<u64, Vec<LabelledSeries>>>,
}

/// A series and its label values, in the family's key order.
type LabelledSeries = (Box<[String]>, Series);

/// One series: its own atomics, cheap to clone.
#[derive(Clone)]
pub(crate) enum Series {
    Counter(IntCounter),
    Gauge(Gauge),
    /// The contract's gauges count things: an integer is one atomic add.
    IntGauge(IntGauge),
    Histogram(Histogram),
}

impl Series {
    pub(crate) fn counter(self) -> IntCounter {
        match self {
            Series::Counter(c) => c,
            _ => unreachable!("a family holds series of its own shape"),
        }
    }
    pub(crate) fn gauge(self) -> Gauge {
        match self {
            Series::Gauge(g) => g,
            _ => unreachable!("a family holds series of its own shape"),
        }
    }
    pub(crate) fn histogram(self) -> Histogram {
        match self {
            Series::Histogram(h) => h,
            _ => unreachable!("a family holds series of its own shape"),
        }
    }
}

impl Family {
    /// The series for these labels (in any key order), created on first use.
    pub(crate) fn series(&self, labels: Labels<'_>) -> Result<Series, RecordError> {
        self.series_hashed(labels).map(|(_, series)| series)
    }

    /// The series for these labels and the hash of their values.
    fn series_hashed(&self, labels: Labels<'_>) -> Result<(u64, Series), RecordError> {
        let order = self.value_order(labels)?;
        let values = || order.iter().map(|&i| labels[i].1);
        for value in values() {
            if value.len() > MAX_LABEL_VALUE_LEN {
                return Err(RecordError::LabelValueTooLong);
            }
        }
        let mut hasher = DefaultHasher::new();
        for value in values() {
            value.hash(&mut hasher);
        }
        let hash = hasher.finish();
        let same = |stored: &[String]| stored.iter().map(String::as_str).eq(values());
        if let Some(bucket) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
        {
            if let Some((_, series)) = bucket.iter().find(|(stored, _)| same(stored)) {
                return Ok((hash, series.clone()));
            }
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let bucket = map.entry(hash).or_default();
        if let Some((_, series)) = bucket.iter().find(|(stored, _)| same(stored)) {
            return Ok((hash, series.clone()));
        }
        let series = self.new_series().ok_or(RecordError::InvalidName)?;
        bucket.push((values().map(str::to_owned).collect(), series.clone()));
        Ok((hash, series))
    }

    /// Drops the series of hash `hash` whose first label value is `first`.
    fn remove(&self, hash: u64, first: &str) {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = map.get_mut(&hash) {
            bucket.retain(|(values, _)| values.first().map(String::as_str) != Some(first));
            if bucket.is_empty() {
                map.remove(&hash);
            }
        }
        if map.capacity() > 64 && map.len() < map.capacity() / 4 {
            map.shrink_to_fit();
        }
    }

    /// Index into `labels` of each of the family's keys, in the family's
    /// order; fixes the keys on first use.
    fn value_order(&self, labels: Labels<'_>) -> Result<Vec<usize>, RecordError> {
        let find = |keys: &[String]| -> Result<Vec<usize>, RecordError> {
            if keys.len() != labels.len() {
                return Err(RecordError::LabelMismatch);
            }
            keys.iter()
                .map(|k| {
                    labels
                        .iter()
                        .position(|(l, _)| l == k)
                        .ok_or(RecordError::LabelMismatch)
                })
                .collect()
        };
        if let Some(keys) = &*self.label_keys.read().unwrap_or_else(|e| e.into_inner()) {
            return find(keys);
        }
        let mut slot = self.label_keys.write().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = &*slot {
            return find(keys);
        }
        for (i, (key, _)) in labels.iter().enumerate() {
            let reserved = key.starts_with("__")
                || (self.shape.kind() == MetricKind::Histogram && *key == "le");
            if !valid_label_name(key) || reserved {
                return Err(RecordError::InvalidLabelName);
            }
            if labels[..i].iter().any(|(k, _)| k == key) {
                return Err(RecordError::LabelMismatch);
            }
        }
        let keys: Box<[String]> = labels.iter().map(|(k, _)| (*k).to_owned()).collect();
        let order = (0..keys.len()).collect();
        *slot = Some(keys);
        Ok(order)
    }

    fn new_series(&self) -> Option<Series> {
        Some(match self.shape {
            Shape::Counter => {
                Series::Counter(IntCounter::with_opts(Opts::new(&self.name, &self.help)).ok()?)
            }
            Shape::Gauge if self.integer => {
                Series::IntGauge(IntGauge::with_opts(Opts::new(&self.name, &self.help)).ok()?)
            }
            Shape::Gauge => {
                Series::Gauge(Gauge::with_opts(Opts::new(&self.name, &self.help)).ok()?)
            }
            Shape::Histogram | Shape::Timing => Series::Histogram(
                Histogram::with_opts(
                    HistogramOpts::new(&self.name, &self.help).buckets(self.buckets.clone()),
                )
                .ok()?,
            ),
        })
    }

    fn collect(&self) -> Option<MetricFamily> {
        let keys = self.label_keys.read().unwrap_or_else(|e| e.into_inner());
        let keys = keys.as_deref()?;
        let mut family = MetricFamily::default();
        family.set_name(self.name.clone());
        family.set_help(self.help.clone());
        family.set_field_type(match self.shape.kind() {
            MetricKind::Counter => MetricType::COUNTER,
            MetricKind::Gauge => MetricType::GAUGE,
            MetricKind::Histogram => MetricType::HISTOGRAM,
        });
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let metrics = family.mut_metric();
        for (values, series) in series.values().flatten() {
            let mut metric = match series {
                Series::Counter(c) => c.metric(),
                Series::Gauge(g) => g.metric(),
                Series::IntGauge(g) => g.metric(),
                Series::Histogram(h) => h.metric(),
            };
            metric.set_label(
                keys.iter()
                    .zip(values.iter())
                    .map(|(k, v)| label_pair(k, v))
                    .collect(),
            );
            metrics.push(metric);
        }
        Some(family)
    }
}

fn label_pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Registered with the registry: gathers every family of the store.
struct StoreCollector(Arc<Store>);

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        std::iter::once(&self.0.errors_desc)
            .chain(&self.0.contract_descs)
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let store = &self.0;
        // No source's series are dropped while the families are read.
        let _held = store.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<MetricFamily> = store
            .by_exported
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|f| f.collect())
            .collect();
        let mut errors = MetricFamily::default();
        errors.set_name(ERRORS_METRIC.to_owned());
        errors.set_help(store.errors_desc.help.clone());
        errors.set_field_type(MetricType::COUNTER);
        for (reason, counter) in RecordError::ALL.iter().zip(&store.errors) {
            let mut metric = counter.metric();
            metric.set_label(vec![label_pair("reason", reason.reason())]);
            errors.mut_metric().push(metric);
        }
        out.push(errors);
        out
    }
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
