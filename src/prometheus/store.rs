//! The families of a [`PrometheusMetrics`](super::PrometheusMetrics) and
//! their series: label values interned once, values in sharded cells
//! ([`super::cells`]), the exposition built from them at scrape (a
//! prometheus [`Collector`]).
//!
//! A family's series are grouped by their first label value, so all the
//! series of one `source_url` are found, and dropped, together.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::cells::{CellRef, Cells, Exemplar, HistogramCells, Slab, SlabReader};
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
    Histogram(Arc<HistogramCells>),
}

/// Label values (`str`) or tuples of their ids (`[u32]`), interned: each
/// stored once, however many series carry it, and freed with its last.
struct Interner<K: ?Sized> {
    ids: FastMap<Arc<K>, u32>,
    /// By id: the value and how many series hold it.
    values: Vec<(Option<Arc<K>>, usize)>,
    free: Vec<u32>,
}

impl<K: ?Sized> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: FastMap::default(),
            values: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K> Interner<K>
where
    K: ?Sized + Hash + Eq,
    for<'a> Arc<K>: From<&'a K>,
{
    fn get(&self, value: &K) -> Option<u32> {
        self.ids.get(value).copied()
    }

    fn value(&self, id: u32) -> Option<&K> {
        self.values.get(id as usize)?.0.as_deref()
    }

    /// The id of `value`, held once more.
    fn hold(&mut self, value: &K) -> u32 {
        let id = match self.ids.get(value) {
            Some(id) => *id,
            None => {
                let value: Arc<K> = Arc::from(value);
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
        let Some(slot) = self.values.get_mut(id as usize) else {
            return;
        };
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

/// A series, in sixteen bytes: its family, the interned tuple of its label
/// values after the first, and where its cells are.
#[derive(Clone, Copy)]
struct Stored {
    family: u16,
    rest: u32,
    at: CellRef,
}

/// The store's maps: looked up on every by-name record, keyed by the
/// application's own names and values (seeded per map, not SipHash).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Key of a family without labels.
const NO_LABELS: u32 = u32::MAX;

/// One exported metric family and its series.
pub(crate) struct Family {
    /// Its number in the store.
    id: u16,
    name: String,
    help: String,
    shape: Shape,
    /// Bucket bounds of a histogram.
    bounds: Arc<[f64]>,
    /// A gauge of the contract: integer values.
    integer: bool,
    /// A counter of seconds of the contract: its cells count milliseconds.
    millis: bool,
    /// Fixed by the first call that records into the family.
    label_keys: RwLock<Option<Box<[String]>>>,
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

    /// The family's exposition, from its series (label values in the
    /// family's order, and cells); `None` before its first record.
    fn collect(&self, series: &[(Vec<&str>, CellRef)], slab: &SlabReader) -> Option<MetricFamily> {
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
        let metrics = family.mut_metric();
        for (values, at) in series {
            let mut metric = proto::Metric::default();
            let pairs = keys.iter().zip(values).map(|(k, v)| label_pair(k, v));
            metric.set_label(pairs.collect());
            self.fill(&mut metric, &slab.cells(*at));
            metrics.push(metric);
        }
        Some(family)
    }

    /// A series' values, read from its cells.
    fn fill(&self, metric: &mut proto::Metric, cells: &Cells) {
        match self.shape {
            Shape::Counter => {
                let mut v = proto::Counter::default();
                let value = cells.sum(0) as f64;
                v.set_value(if self.millis { value / 1000.0 } else { value });
                metric.set_counter(v);
            }
            Shape::Gauge => {
                let mut v = proto::Gauge::default();
                v.set_value(if self.integer {
                    cells.sum(0) as i64 as f64
                } else {
                    cells.sum_f64(0)
                });
                metric.set_gauge(v);
            }
            Shape::Histogram | Shape::Timing => {
                let n = self.bounds.len() as u32;
                let mut total = 0u64;
                let mut v = proto::Histogram::default();
                v.set_bucket(
                    self.bounds
                        .iter()
                        .zip(0..)
                        .map(|(bound, i)| {
                            total = total.wrapping_add(cells.sum(i));
                            let mut b = proto::Bucket::default();
                            b.set_upper_bound(*bound);
                            b.set_cumulative_count(total);
                            b
                        })
                        .collect(),
                );
                v.set_sample_count(total.wrapping_add(cells.sum(n)));
                v.set_sample_sum(cells.sum_f64(n + 1));
                metric.set_histogram(v);
            }
        }
    }
}

/// Exemplars per bucket, by family name and label values (family order).
pub(crate) type ExemplarMap = HashMap<(String, Vec<String>), Vec<Option<Exemplar>>>;

/// What names and finds the series: interned label values and tuples of
/// them, histograms' shared state, and which sources are held.
#[derive(Default)]
struct Index {
    values: Interner<str>,
    /// Tuples of value ids (the labels after the first): a source's
    /// series share their tuples with every other source's.
    tuples: Interner<[u32]>,
    /// Histogram series' handles, shared so that their exemplars are.
    histograms: FastMap<CellRef, Arc<HistogramCells>>,
    /// Per `source_url` value id: the handles of its series not yet
    /// released.
    held: FastMap<u32, usize>,
}

impl Index {
    fn value(&self, id: u32) -> &str {
        self.values.value(id).unwrap_or("")
    }

    /// The value ids of tuple `id`.
    fn tuple(&self, id: u32) -> &[u32] {
        self.tuples.value(id).unwrap_or(&[])
    }

    /// Releases tuple `id` once, and its values with it.
    fn release_tuple(&mut self, id: u32) {
        let ids: Vec<u32> = self.tuple(id).to_vec();
        self.tuples.release(id);
        for value in ids {
            self.values.release(value);
        }
    }
}

pub(crate) struct Store {
    duration_buckets: Arc<[f64]>,
    slab: Slab,
    /// Dotted name -> family, one map per shape, so lookups borrow `&str`.
    by_dotted: [RwLock<FastMap<String, Arc<Family>>>; 4],
    /// Exported name -> family, to catch one name used with two types.
    by_exported: RwLock<HashMap<String, Arc<Family>>>,
    pub(crate) errors: [Cells; RecordError::ALL.len()],
    errors_desc: Desc,
    /// Held while a scrape collects, so it never sees part of a source.
    index: RwLock<Index>,
    /// Every series, by its first label value's id: all of a source's
    /// series in one group, allocated to its exact size (series are made
    /// rarely, recorded often), found and dropped together.
    groups: RwLock<FastMap<u32, Box<[Stored]>>>,
    /// Families by id.
    families: RwLock<Vec<Arc<Family>>>,
    /// The contract's families, announced to the registry so that a
    /// family of the same name registered by someone else is refused.
    contract_descs: Vec<Desc>,
}

impl Store {
    pub(crate) fn new(duration_buckets: Vec<f64>, shards: usize) -> Self {
        let help = "Metric calls dropped by vast-metrics instead of failing the caller, by reason.";
        let slab = Slab::new(shards);
        let errors = RecordError::ALL
            .map(|_| slab.cells(slab.alloc(1).expect("a new slab has room for a cell")));
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
            index: RwLock::default(),
            groups: RwLock::default(),
            families: RwLock::default(),
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
                let mut families = self
                    .families
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let id = u16::try_from(families.len()).map_err(|_| RecordError::InvalidName)?;
                let family = Arc::new(Family {
                    id,
                    name: e.key().clone(),
                    help,
                    shape,
                    bounds,
                    integer: shape == Shape::Gauge && names::lookup(dotted).is_some(),
                    millis: shape == Shape::Counter
                        && names::lookup(dotted).is_some_and(|def| def.unit == names::Unit::Seconds),
                    label_keys: RwLock::new(None),
                });
                families.push(family.clone());
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
        // A series that exists, not held: a read lock (the by-name API's
        // every call).
        if !hold {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = self.find(family, &index, values()) {
                return Ok(self.handle(family, at, &index));
            }
        }
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        let at = match self.find(family, &index, values()) {
            Some(at) => at,
            None => {
                let at = self
                    .slab
                    .alloc(family.width())
                    .ok_or(RecordError::InvalidName)?;
                let mut ids = values().map(|v| index.values.hold(v));
                let first = ids.next().unwrap_or(NO_LABELS);
                let rest: Vec<u32> = ids.collect();
                let rest = index.tuples.hold(&rest);
                let stored = Stored {
                    family: family.id,
                    rest,
                    at,
                };
                let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
                let group = groups.entry(first).or_default();
                // Sorted by family and tuple, for a binary search.
                let key = |s: &Stored| (s.family, s.rest);
                let i = group.partition_point(|s| key(s) < key(&stored));
                let mut grown = Vec::with_capacity(group.len() + 1);
                grown.extend_from_slice(&group[..i]);
                grown.push(stored);
                grown.extend_from_slice(&group[i..]);
                *group = grown.into_boxed_slice();
                drop(groups);
                if matches!(family.shape, Shape::Histogram | Shape::Timing) {
                    let cells = HistogramCells::new(self.slab.cells(at), family.bounds.clone());
                    index.histograms.insert(at, Arc::new(cells));
                }
                at
            }
        };
        if hold {
            if let Some(first) = values().next().and_then(|v| index.values.get(v)) {
                *index.held.entry(first).or_default() += 1;
            }
        }
        Ok(self.handle(family, at, &index))
    }

    /// The handle of the series at `at`.
    fn handle(&self, family: &Family, at: CellRef, index: &Index) -> Series {
        let cells = || self.slab.cells(at);
        match family.shape {
            Shape::Counter => Series::Counter(cells()),
            Shape::Gauge if family.integer => Series::IntGauge(cells()),
            Shape::Gauge => Series::Gauge(cells()),
            Shape::Histogram | Shape::Timing => {
                Series::Histogram(index.histograms.get(&at).cloned().unwrap_or_else(|| {
                    Arc::new(HistogramCells::new(cells(), family.bounds.clone()))
                }))
            }
        }
    }

    fn find<'a>(
        &self,
        family: &Family,
        index: &Index,
        mut values: impl Iterator<Item = &'a str>,
    ) -> Option<CellRef> {
        let first = match values.next() {
            Some(v) => index.values.get(v)?,
            None => NO_LABELS,
        };
        let rest = values
            .map(|v| index.values.get(v))
            .collect::<Option<Vec<u32>>>()?;
        let rest = index.tuples.get(&rest)?;
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let group = groups.get(&first)?;
        let i = group
            .binary_search_by_key(&(family.id, rest), |s| (s.family, s.rest))
            .ok()?;
        Some(group[i].at)
    }

    /// Calls `f` with each series' family, label values (family order)
    /// and cells.
    fn each<'i>(&self, index: &'i Index, mut f: impl FnMut(&Family, Vec<&'i str>, CellRef)) {
        let families = self.families.read().unwrap_or_else(PoisonError::into_inner);
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        for (first, group) in groups.iter() {
            for stored in group.iter() {
                let Some(family) = families.get(usize::from(stored.family)) else {
                    continue;
                };
                let mut values: Vec<&'i str> = Vec::with_capacity(4);
                if *first != NO_LABELS {
                    values.push(index.value(*first));
                }
                values.extend(index.tuple(stored.rest).iter().map(|id| index.value(*id)));
                f(family, values, stored.at);
            }
        }
    }

    /// Gives back one handle of source `source`; with the last, every
    /// series of it goes.
    pub(crate) fn release(&self, source: &str) {
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = index.values.get(source) else {
            return;
        };
        let Some(handles) = index.held.get_mut(&id) else {
            return;
        };
        *handles = handles.saturating_sub(1);
        if *handles > 0 {
            return;
        }
        index.held.remove(&id);
        if index.held.capacity() > 64 && index.held.len() < index.held.capacity() / 4 {
            index.held.shrink_to_fit();
        }
        // The group holds this value's series of every family: only those
        // of families labelled by source go.
        let families = self.families.read().unwrap_or_else(PoisonError::into_inner);
        let per_source = |s: &Stored| {
            families
                .get(usize::from(s.family))
                .is_some_and(|f| f.is_per_source())
        };
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        let Some(group) = groups.remove(&id) else {
            return;
        };
        let (gone, kept): (Vec<Stored>, Vec<Stored>) = group.iter().partition(|s| per_source(s));
        if !kept.is_empty() {
            groups.insert(id, kept.into_boxed_slice());
        }
        if groups.capacity() > 64 && groups.len() < groups.capacity() / 4 {
            groups.shrink_to_fit();
        }
        drop(groups);
        for stored in gone {
            index.values.release(id);
            index.release_tuple(stored.rest);
            index.histograms.remove(&stored.at);
            let width = families[usize::from(stored.family)].width();
            self.slab.free(stored.at, width);
        }
    }

    /// The exemplars of every histogram series that has some.
    pub(crate) fn exemplars(&self) -> ExemplarMap {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = HashMap::new();
        self.each(&index, |family, values, at| {
            let kept = index.histograms.get(&at).and_then(|h| h.exemplars());
            if let Some(kept) = kept {
                let values = values.into_iter().map(str::to_owned).collect();
                out.insert((family.name.clone(), values), kept);
            }
        });
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
        let index = store.index.read().unwrap_or_else(PoisonError::into_inner);
        let slab = store.slab.reader();
        let families: Vec<Arc<Family>> = store
            .families
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut series: Vec<Vec<(Vec<&str>, CellRef)>> = vec![Vec::new(); families.len()];
        store.each(&index, |family, values, at| {
            if let Some(list) = series.get_mut(usize::from(family.id)) {
                list.push((values, at));
            }
        });
        let mut out: Vec<MetricFamily> = families
            .iter()
            .zip(&series)
            .filter_map(|(f, list)| f.collect(list, &slab))
            .collect();
        drop(series);
        drop(index);
        let mut errors = MetricFamily::default();
        errors.set_name(ERRORS_METRIC.to_owned());
        errors.set_help(store.errors_desc.help.clone());
        errors.set_field_type(MetricType::COUNTER);
        for (reason, cells) in RecordError::ALL.iter().zip(&store.errors) {
            let mut metric = proto::Metric::default();
            let mut v = proto::Counter::default();
            v.set_value(cells.sum(0) as f64);
            metric.set_counter(v);
            metric.set_label(vec![label_pair("reason", reason.reason())]);
            errors.mut_metric().push(metric);
        }
        out.push(errors);
        out
    }
}
