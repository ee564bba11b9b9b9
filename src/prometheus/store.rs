//! The families of a [`PrometheusMetrics`](super::PrometheusMetrics) and
//! their series: label values interned once, values in sharded cells
//! ([`super::cells`]), the exposition built from them at scrape (a
//! prometheus [`Collector`]).
//!
//! A family's series are grouped by their first label value, so all the
//! series of one `source_url` are found, and dropped, together.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::cells::{Cells, Exemplar, HistogramCells, Slab};
use super::{
    valid_label_name, valid_metric_name, ERRORS_METRIC, MAX_LABEL_VALUE_LEN, MAX_NAME_LEN,
};
use crate::collector::Labels;
use crate::names::{self, MetricKind, MetricLabels};
use crate::recorder::RecordError;

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

/// One series' values, as its handles record them.
#[derive(Clone)]
pub(crate) enum Series {
    Counter(Cells),
    /// The contract's gauges count things: whole numbers, one atomic add.
    IntGauge(Cells),
    Gauge(Cells),
    Histogram(HistogramCells),
}

impl Series {
    fn cells(&self) -> &Cells {
        match self {
            Series::Counter(c) | Series::IntGauge(c) | Series::Gauge(c) => c,
            Series::Histogram(h) => h.cells(),
        }
    }
}

/// Label values after the first, as interned ids.
#[derive(Clone, PartialEq, Eq)]
enum Rest {
    /// Up to three values (every contract family), unused ids zero.
    Inline([u32; 3]),
    Heap(Box<[u32]>),
}

impl Rest {
    fn new(ids: &[u32]) -> Self {
        match ids {
            [a, b, c] => Rest::Inline([*a, *b, *c]),
            [a, b] => Rest::Inline([*a, *b, 0]),
            [a] => Rest::Inline([*a, 0, 0]),
            [] => Rest::Inline([0; 3]),
            more => Rest::Heap(more.into()),
        }
    }

    fn ids(&self, len: usize) -> &[u32] {
        match self {
            Rest::Inline(ids) => &ids[..len.min(3)],
            Rest::Heap(ids) => ids,
        }
    }
}

/// Label values, interned: each distinct value stored once, however many
/// series carry it, and freed with its last series.
#[derive(Default)]
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    /// By id: the value and how many series positions hold it.
    values: Vec<(Option<Arc<str>>, usize)>,
    free: Vec<u32>,
}

impl Interner {
    fn get(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    fn value(&self, id: u32) -> &str {
        self.values[id as usize].0.as_deref().unwrap_or("")
    }

    /// The id of `value`, held once more.
    fn hold(&mut self, value: &str) -> u32 {
        let id = match self.ids.get(value) {
            Some(id) => *id,
            None => {
                let value: Arc<str> = value.into();
                let id = match self.free.pop() {
                    Some(id) => {
                        self.values[id as usize] = (Some(value.clone()), 0);
                        id
                    }
                    None => {
                        self.values.push((Some(value.clone()), 0));
                        (self.values.len() - 1) as u32
                    }
                };
                self.ids.insert(value, id);
                id
            }
        };
        self.values[id as usize].1 += 1;
        id
    }

    fn release(&mut self, id: u32) {
        let slot = &mut self.values[id as usize];
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            if let Some(value) = slot.0.take() {
                self.ids.remove(&value);
                self.free.push(id);
            }
        }
        if self.ids.capacity() > 64 && self.ids.len() < self.ids.capacity() / 4 {
            self.ids.shrink_to_fit();
        }
    }
}

/// A series in its family: the other label values and the values.
struct Stored {
    rest: Rest,
    series: Series,
}

/// Key of a family without labels.
const NO_LABELS: u32 = u32::MAX;

/// One exported metric family and its series.
pub(crate) struct Family {
    name: String,
    help: String,
    shape: Shape,
    /// Bucket bounds of a histogram.
    bounds: Arc<[f64]>,
    /// A gauge of the contract: integer values.
    integer: bool,
    /// Fixed by the first call that records into the family.
    label_keys: RwLock<Option<Box<[String]>>>,
    /// Series by their first label value's id.
    series: RwLock<HashMap<u32, Vec<Stored>>>,
}

impl Family {
    fn width(&self) -> u32 {
        match self.shape {
            Shape::Counter | Shape::Gauge => 1,
            Shape::Histogram | Shape::Timing => HistogramCells::width(&self.bounds),
        }
    }

    fn is_per_source(&self) -> bool {
        self.label_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .and_then(<[String]>::first)
            .is_some_and(|k| k == MetricLabels::SOURCE_URL)
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

    /// Drops every series whose first label value is `first`; their ids
    /// and cells go back.
    fn remove(&self, first: u32, interner: &mut Interner, slab: &Slab) {
        let removed = self
            .series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&first);
        let len = self
            .label_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .map_or(0, |k| k.len().saturating_sub(1));
        for stored in removed.into_iter().flatten() {
            interner.release(first);
            stored
                .rest
                .ids(len)
                .iter()
                .for_each(|id| interner.release(*id));
            slab.free(stored.series.cells().clone(), self.width());
        }
    }

    fn collect(&self, interner: &Interner) -> Option<MetricFamily> {
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
        let rest_len = keys.len().saturating_sub(1);
        let metrics = family.mut_metric();
        for (first, stored) in series.iter() {
            for s in stored {
                let mut metric = proto::Metric::default();
                let values = (*first != NO_LABELS)
                    .then_some(*first)
                    .into_iter()
                    .chain(s.rest.ids(rest_len).iter().copied())
                    .map(|id| interner.value(id));
                metric.set_label(
                    keys.iter()
                        .zip(values)
                        .map(|(k, v)| label_pair(k, v))
                        .collect(),
                );
                fill(&mut metric, &s.series);
                metrics.push(metric);
            }
        }
        Some(family)
    }

    /// The exemplars of every series that has some, by label values.
    fn exemplars(&self, interner: &Interner, out: &mut ExemplarMap) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let keys = self.label_keys.read().unwrap_or_else(|e| e.into_inner());
        let rest_len = keys.as_deref().map_or(0, |k| k.len().saturating_sub(1));
        for (first, stored) in series.iter() {
            for s in stored {
                let Series::Histogram(h) = &s.series else {
                    continue;
                };
                if let Some(exemplars) = h.exemplars() {
                    let values = (*first != NO_LABELS)
                        .then_some(*first)
                        .into_iter()
                        .chain(s.rest.ids(rest_len).iter().copied())
                        .map(|id| interner.value(id).to_owned())
                        .collect();
                    out.insert((self.name.clone(), values), exemplars);
                }
            }
        }
    }
}

/// Exemplars per bucket, by family name and label values (family order).
pub(crate) type ExemplarMap = HashMap<(String, Vec<String>), Vec<Option<Exemplar>>>;

fn fill(metric: &mut proto::Metric, series: &Series) {
    match series {
        Series::Counter(c) => {
            let mut v = proto::Counter::default();
            v.set_value(c.sum(0) as f64);
            metric.set_counter(v);
        }
        Series::IntGauge(c) => {
            let mut v = proto::Gauge::default();
            v.set_value(c.sum(0) as i64 as f64);
            metric.set_gauge(v);
        }
        Series::Gauge(c) => {
            let mut v = proto::Gauge::default();
            v.set_value(c.sum_f64(0));
            metric.set_gauge(v);
        }
        Series::Histogram(h) => {
            let snapshot = h.snapshot();
            let mut v = proto::Histogram::default();
            let count = snapshot.cumulative.last().copied().unwrap_or(0);
            v.set_sample_count(count);
            v.set_sample_sum(snapshot.sum);
            v.set_bucket(
                h.bounds()
                    .iter()
                    .zip(&snapshot.cumulative)
                    .map(|(bound, n)| {
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(*bound);
                        b.set_cumulative_count(*n);
                        b
                    })
                    .collect(),
            );
            metric.set_histogram(v);
        }
    }
}

pub(crate) struct Store {
    duration_buckets: Arc<[f64]>,
    slab: Slab,
    /// Dotted name -> family, one map per shape, so lookups borrow `&str`.
    by_dotted: [RwLock<HashMap<String, Arc<Family>>>; 4],
    /// Exported name -> family, to catch one name used with two types.
    by_exported: RwLock<HashMap<String, Arc<Family>>>,
    pub(crate) errors: [Cells; RecordError::ALL.len()],
    errors_desc: Desc,
    /// Label values, and per `source_url` value id the handles of its
    /// series not yet released. Held while a scrape collects, so it never
    /// sees part of a source.
    interner: Mutex<Interner>,
    held: Mutex<HashMap<u32, usize>>,
    /// The contract's families, announced to the registry so that a
    /// family of the same name registered by someone else is refused.
    contract_descs: Vec<Desc>,
}

impl Store {
    pub(crate) fn new(duration_buckets: Vec<f64>, shards: usize) -> Self {
        let help = "Metric calls dropped by vast-metrics instead of failing the caller, by reason.";
        let slab = Slab::new(shards);
        let errors =
            RecordError::ALL.map(|_| slab.alloc(1).expect("a new slab has room for a cell"));
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
            duration_buckets: duration_buckets.into(),
            slab,
            by_dotted: Default::default(),
            by_exported: Default::default(),
            errors,
            errors_desc,
            interner: Mutex::default(),
            held: Mutex::default(),
        }
    }

    pub(crate) fn family(&self, dotted: &str, shape: Shape) -> Result<Arc<Family>, RecordError> {
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
                let bounds: Arc<[f64]> = match shape {
                    Shape::Timing => self.duration_buckets.clone(),
                    Shape::Histogram if !own.is_empty() => own.into(),
                    Shape::Histogram => prometheus::DEFAULT_BUCKETS[..].into(),
                    _ => Arc::new([]),
                };
                let family = Arc::new(Family {
                    name: e.key().clone(),
                    help,
                    shape,
                    bounds,
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

    /// The series of `family` for these labels (in any key order), made on
    /// first use; with `hold`, a series with a `source_url` counts one
    /// more handle of its source.
    pub(crate) fn series(
        &self,
        family: &Family,
        labels: Labels<'_>,
        hold: bool,
    ) -> Result<Series, RecordError> {
        let order = family.value_order(labels)?;
        let values = || order.iter().map(|&i| labels[i].1);
        if values().any(|v| v.len() > MAX_LABEL_VALUE_LEN) {
            return Err(RecordError::LabelValueTooLong);
        }
        let hold = hold && family.is_per_source();
        let mut interner = self.interner.lock().unwrap_or_else(PoisonError::into_inner);
        let found = self.find(family, &interner, values());
        let series = match found {
            Some(series) => series,
            None => {
                let cells = self
                    .slab
                    .alloc(family.width())
                    .ok_or(RecordError::InvalidName)?;
                let mut ids = values().map(|v| interner.hold(v));
                let first = ids.next().unwrap_or(NO_LABELS);
                let rest: Vec<u32> = ids.collect();
                let series = match family.shape {
                    Shape::Counter => Series::Counter(cells),
                    Shape::Gauge if family.integer => Series::IntGauge(cells),
                    Shape::Gauge => Series::Gauge(cells),
                    Shape::Histogram | Shape::Timing => {
                        Series::Histogram(HistogramCells::new(cells, family.bounds.clone()))
                    }
                };
                family
                    .series
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(first)
                    .or_default()
                    .push(Stored {
                        rest: Rest::new(&rest),
                        series: series.clone(),
                    });
                series
            }
        };
        if hold {
            if let Some(first) = values().next().and_then(|v| interner.get(v)) {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                *held.entry(first).or_default() += 1;
            }
        }
        Ok(series)
    }

    fn find<'a>(
        &self,
        family: &Family,
        interner: &Interner,
        mut values: impl Iterator<Item = &'a str>,
    ) -> Option<Series> {
        let first = match values.next() {
            Some(v) => interner.get(v)?,
            None => NO_LABELS,
        };
        let rest = values
            .map(|v| interner.get(v))
            .collect::<Option<Vec<u32>>>()?;
        let rest = Rest::new(&rest);
        let series = family.series.read().unwrap_or_else(PoisonError::into_inner);
        series
            .get(&first)?
            .iter()
            .find(|s| s.rest == rest)
            .map(|s| s.series.clone())
    }

    /// Gives back one handle of source `source`; with the last, every
    /// series of it goes.
    pub(crate) fn release(&self, source: &str) {
        let mut interner = self.interner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = interner.get(source) else {
            return;
        };
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(handles) = held.get_mut(&id) else {
            return;
        };
        *handles = handles.saturating_sub(1);
        if *handles > 0 {
            return;
        }
        held.remove(&id);
        if held.capacity() > 64 && held.len() < held.capacity() / 4 {
            held.shrink_to_fit();
        }
        drop(held);
        let families: Vec<Arc<Family>> = self
            .by_exported
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|f| f.is_per_source())
            .cloned()
            .collect();
        for family in families {
            family.remove(id, &mut interner, &self.slab);
        }
    }

    /// The exemplars of every histogram series that has some.
    pub(crate) fn exemplars(&self) -> ExemplarMap {
        let interner = self.interner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = HashMap::new();
        for family in self
            .by_exported
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            family.exemplars(&interner, &mut out);
        }
        out
    }
}

fn label_pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// Registered with the registry: gathers every family of the store.
pub(crate) struct StoreCollector(pub(crate) Arc<Store>);

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        std::iter::once(&self.0.errors_desc)
            .chain(&self.0.contract_descs)
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let store = &self.0;
        // No source's series are dropped while the families are read.
        let interner = store
            .interner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<MetricFamily> = store
            .by_exported
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|f| f.collect(&interner))
            .collect();
        drop(interner);
        let mut errors = MetricFamily::default();
        errors.set_name(ERRORS_METRIC.to_owned());
        errors.set_help(store.errors_desc.help.clone());
        errors.set_field_type(MetricType::COUNTER);
        for (reason, cells) in RecordError::ALL.iter().zip(&store.errors) {
            let mut metric = proto::Metric::default();
            fill(&mut metric, &Series::Counter(cells.clone()));
            metric.set_label(vec![label_pair("reason", reason.reason())]);
            errors.mut_metric().push(metric);
        }
        out.push(errors);
        out
    }
}
