//! The families of a [`PrometheusMetrics`](super::PrometheusMetrics) and
//! their series, gathered at scrape (a prometheus [`Collector`]).
//!
//! # Design
//!
//! - A **family** ([`Family`]) is made on first use and numbered.
//! - A **series** is one [`Stored`] entry: its family's number, the
//!   interned tuple of its label values after the first, its cells, and
//!   how many handles hold it. Entries are grouped by their first label
//!   value (for the contract, `source_url`), so all the series of a source
//!   are found, and dropped, together.
//! - **Series at zero**: [`Store::series`] makes a series that does not
//!   exist yet, at zero. With `Hold::Handle` (a `register_*` call) it
//!   counts one more handle of it; with `Hold::None` (the by-name API,
//!   [`Recorder::zero`](crate::Recorder::zero)) it does not.
//! - **Release** ([`Store::release`]) gives back one handle of one series.
//!   When no series of a source is held any more, every series of that
//!   source goes at once: a scrape never sees part of a source (requests
//!   without their failures, say). A release of a series nobody holds does
//!   nothing, so a family released twice cannot drop a source another
//!   family still holds.
//! - **Stale handles**: a dropped series' cells are reused only once no
//!   handle holds them ([`Slab::alloc`]), so a handle kept past its release
//!   writes into its own dropped series, never into another.
//!
//! # Locks
//!
//! Two locks, taken one at a time, never one inside the other: the family
//! table, then the series table. The slab's lock is a leaf, taken inside
//! the series table's for a cut or a reuse; so are a histogram's exemplar
//! slots (only tried when recording). Cells are plain atomics, recorded
//! into without a lock.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::family::{label_pair, Family, Shape};
use super::interner::{FastMap, Interner};
use super::{valid_metric_name, ERRORS_METRIC, MAX_LABEL_VALUE_LEN, MAX_NAME_LEN};
use crate::collector::Labels;
use crate::names;
use crate::recorder::cells::{Cells, Exemplar, HistogramCells, Slab};
use crate::recorder::RecordError;

/// One series' values, lent to record into or to make a handle of
/// (borrowed: a by-name record takes no holder count).
#[derive(Clone, Copy)]
pub(crate) enum Series<'a> {
    Counter(&'a Cells),
    /// The contract's gauges count things: whole numbers, one atomic add.
    IntGauge(&'a Cells),
    Gauge(&'a Cells),
    Histogram(&'a Arc<HistogramCells>),
}

/// Whether a call to [`Store::series`] takes a handle of the series.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A `register_*` call: one more handle, given back by a release.
    Handle,
    /// A by-name record or a series made at zero.
    None,
}

/// A series' cells, shared with its handles.
enum Values {
    Plain(Cells),
    Histogram(Arc<HistogramCells>),
}

impl Values {
    fn cells(&self) -> &Cells {
        match self {
            Values::Plain(c) => c,
            Values::Histogram(h) => h.cells(),
        }
    }
}

/// A series: its family, the interned tuple of its label values after the
/// first, its values, and how many handles of it are held.
struct Stored {
    family: u16,
    rest: u32,
    holds: u32,
    values: Values,
}

/// Key of a family without labels.
const NO_LABELS: u32 = u32::MAX;

/// Families by dotted name (one map per shape, so lookups borrow `&str`),
/// by exported name (to catch one name used with two types), and by id.
#[derive(Default)]
struct Families {
    by_dotted: [FastMap<String, Arc<Family>>; Shape::ALL.len()],
    by_exported: HashMap<String, Arc<Family>>,
    by_id: Vec<Arc<Family>>,
}

/// Every series, and the interned label values that name them.
#[derive(Default)]
struct SeriesTable {
    values: Interner<str>,
    /// Tuples of value ids (the labels after the first): a source's
    /// series share their tuples with every other source's.
    tuples: Interner<[u32]>,
    /// By first label value id; each group sorted by family and tuple.
    groups: FastMap<u32, Box<[Stored]>>,
}

impl SeriesTable {
    fn value(&self, id: u32) -> &str {
        self.values.value(id).unwrap_or("")
    }

    /// Where the series of `family` with these values (family order) is.
    fn find<'a>(
        &self,
        family: &Family,
        mut values: impl Iterator<Item = &'a str>,
    ) -> Option<(u32, usize)> {
        let first = match values.next() {
            Some(v) => self.values.get(v)?,
            None => NO_LABELS,
        };
        let rest = values
            .map(|v| self.values.get(v))
            .collect::<Option<Vec<u32>>>()?;
        let rest = self.tuples.get(&rest)?;
        let group = self.groups.get(&first)?;
        let i = group
            .binary_search_by_key(&(family.id, rest), |s| (s.family, s.rest))
            .ok()?;
        Some((first, i))
    }

    /// Calls `f` with each series' family id, label values (family order)
    /// and cells.
    fn each<'t>(&'t self, mut f: impl FnMut(u16, Vec<&'t str>, &'t Values)) {
        for (first, group) in &self.groups {
            for stored in group {
                let mut values: Vec<&'t str> = Vec::with_capacity(4);
                if *first != NO_LABELS {
                    values.push(self.value(*first));
                }
                let rest = self.tuples.value(stored.rest).unwrap_or(&[]);
                values.extend(rest.iter().map(|id| self.value(*id)));
                f(stored.family, values, &stored.values);
            }
        }
    }

    /// Drops the group's series of `per_source` families; gives back their
    /// cells and label values.
    fn drop_source(&mut self, first: u32, per_source: impl Fn(u16) -> bool, slab: &Slab) {
        let Some(group) = self.groups.remove(&first) else {
            return;
        };
        let (gone, kept): (Vec<Stored>, Vec<Stored>) = group
            .into_vec()
            .into_iter()
            .partition(|s| per_source(s.family));
        if !kept.is_empty() {
            self.groups.insert(first, kept.into_boxed_slice());
        }
        if self.groups.capacity() > 64 && self.groups.len() < self.groups.capacity() / 4 {
            self.groups.shrink_to_fit();
        }
        for stored in gone {
            self.values.release(first);
            let ids = self.tuples.value(stored.rest).unwrap_or(&[]).to_vec();
            self.tuples.release(stored.rest);
            for id in ids {
                self.values.release(id);
            }
            // A histogram's run is reused once its last handle is gone.
            let (cells, width) = match stored.values {
                Values::Plain(c) => (c, 1),
                Values::Histogram(h) => (h.run(), HistogramCells::width(h.bounds())),
            };
            slab.free(cells, width);
        }
    }
}

pub(crate) struct Store {
    duration_buckets: Arc<[f64]>,
    slab: Slab,
    families: RwLock<Families>,
    series: RwLock<SeriesTable>,
    pub(crate) errors: [Cells; RecordError::ALL.len()],
    errors_desc: Desc,
    /// The contract's families, announced to the registry so that a
    /// family of the same name registered by someone else is refused.
    contract_descs: Vec<Desc>,
}

impl Store {
    pub(crate) fn new(duration_buckets: Vec<f64>, shards: usize) -> Self {
        let help = "Metric calls dropped by vast-metrics instead of failing the caller, by reason.";
        let slab = Slab::new(shards);
        let errors = RecordError::ALL.map(|_| slab.alloc(1).expect("a one-cell run fits a chunk"));
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
            families: RwLock::default(),
            series: RwLock::default(),
            errors,
            errors_desc,
        }
    }

    /// The family of a dotted name, if it was made.
    pub(crate) fn find_family(&self, dotted: &str, shape: Shape) -> Option<Arc<Family>> {
        let families = self.families.read().unwrap_or_else(PoisonError::into_inner);
        families.by_dotted[shape as usize].get(dotted).cloned()
    }

    /// The family of a dotted name, made on first use.
    pub(crate) fn family(&self, dotted: &str, shape: Shape) -> Result<Arc<Family>, RecordError> {
        if let Some(family) = self.find_family(dotted, shape) {
            return Ok(family);
        }
        let exported = shape.exported_name(dotted);
        if dotted.is_empty()
            || exported.len() > MAX_NAME_LEN
            || !valid_metric_name(&exported)
            || exported == ERRORS_METRIC
        {
            return Err(RecordError::InvalidName);
        }
        let mut families = self
            .families
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let id = u16::try_from(families.by_id.len()).map_err(|_| RecordError::InvalidName)?;
        let family = match families.by_exported.entry(exported) {
            Entry::Occupied(e) if e.get().shape == shape => e.get().clone(),
            Entry::Occupied(_) => return Err(RecordError::TypeConflict),
            Entry::Vacant(e) => {
                let def = names::lookup(dotted);
                let help = match names::help(dotted) {
                    Some(help) => help.to_owned(),
                    None => format!("Recorded through vast-metrics as {dotted}."),
                };
                let own = def.map_or(&[][..], |def| def.buckets);
                let bounds: Arc<[f64]> = match shape {
                    Shape::Timing => self.duration_buckets.clone(),
                    Shape::Histogram if !own.is_empty() => own.into(),
                    Shape::Histogram => prometheus::DEFAULT_BUCKETS[..].into(),
                    _ => Arc::new([]),
                };
                let family = Family::new(id, e.key().clone(), help, shape, bounds, def);
                e.insert(Arc::new(family)).clone()
            }
        };
        if family.id == id {
            families.by_id.push(family.clone());
        }
        families.by_dotted[shape as usize].insert(dotted.to_owned(), family.clone());
        Ok(family)
    }

    /// Calls `f` with the series of `family` for these labels (in any key
    /// order), made at zero on first use; with [`Hold::Handle`], held once
    /// more.
    pub(crate) fn series<R>(
        &self,
        family: &Family,
        labels: Labels<'_>,
        hold: Hold,
        f: impl FnOnce(Series<'_>) -> R,
    ) -> Result<R, RecordError> {
        let order = family.value_order(labels)?;
        let values = || order.iter().map(|&i| labels[i].1);
        if values().any(|v| v.len() > MAX_LABEL_VALUE_LEN) {
            return Err(RecordError::LabelValueTooLong);
        }
        // A series that exists, not held: a read lock (the by-name API's
        // every call).
        if hold == Hold::None {
            let table = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((first, i)) = table.find(family, values()) {
                return Ok(f(lend(family, &table.groups[&first][i].values)));
            }
        }
        let mut table = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let (first, i) = match table.find(family, values()) {
            Some(at) => at,
            None => self.make(&mut table, family, values())?,
        };
        let stored = &mut table.groups.get_mut(&first).expect("just found")[i];
        if hold == Hold::Handle {
            stored.holds = stored.holds.saturating_add(1);
        }
        Ok(f(lend(family, &stored.values)))
    }

    /// Adds the series of `family` with these values, at zero.
    fn make<'a>(
        &self,
        table: &mut SeriesTable,
        family: &Family,
        mut values: impl Iterator<Item = &'a str>,
    ) -> Result<(u32, usize), RecordError> {
        let cells = self
            .slab
            .alloc(family.width())
            .ok_or(RecordError::InvalidName)?;
        let values_of = match family.shape {
            Shape::Counter | Shape::Gauge => Values::Plain(cells),
            Shape::Histogram | Shape::Timing => {
                Values::Histogram(Arc::new(HistogramCells::new(cells, family.bounds.clone())))
            }
        };
        let first = values.next().map_or(NO_LABELS, |v| table.values.hold(v));
        let rest: Vec<u32> = values.map(|v| table.values.hold(v)).collect();
        let rest = table.tuples.hold(&rest);
        let group = table.groups.entry(first).or_default();
        let key = (family.id, rest);
        let i = group.partition_point(|s| (s.family, s.rest) < key);
        // Series are made rarely and recorded often: groups grow exactly.
        let mut grown = std::mem::take(group).into_vec();
        grown.reserve_exact(1);
        grown.insert(
            i,
            Stored {
                family: family.id,
                rest,
                holds: 0,
                values: values_of,
            },
        );
        *group = grown.into_boxed_slice();
        Ok((first, i))
    }

    /// Gives back one handle of the series of `family` with these labels.
    /// When no series of its source is held any more, the source's series
    /// go together.
    pub(crate) fn release(&self, family: &Family, labels: Labels<'_>) {
        if !family.is_per_source() {
            return;
        }
        let Ok(order) = family.value_order(labels) else {
            return;
        };
        let by_id = self.by_id();
        let per_source = |id: u16| {
            by_id
                .get(usize::from(id))
                .is_some_and(|f| f.is_per_source())
        };
        let mut table = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let Some((first, i)) = table.find(family, order.iter().map(|&i| labels[i].1)) else {
            return;
        };
        let group = table.groups.get_mut(&first).expect("just found");
        if group[i].holds == 0 {
            return;
        }
        group[i].holds -= 1;
        let held = group.iter().any(|s| s.holds > 0 && per_source(s.family));
        if !held {
            table.drop_source(first, per_source, &self.slab);
        }
    }

    /// The exemplars of every histogram series that has some.
    pub(crate) fn exemplars(&self) -> ExemplarMap {
        let by_id = self.by_id();
        let table = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = HashMap::new();
        table.each(|family, values, at| {
            let Values::Histogram(h) = at else { return };
            if let (Some(kept), Some(family)) = (h.exemplars(), by_id.get(usize::from(family))) {
                let values = values.into_iter().map(str::to_owned).collect();
                out.insert((family.name.clone(), values), kept);
            }
        });
        out
    }

    /// The families by id, copied out (the family lock is released).
    fn by_id(&self) -> Vec<Arc<Family>> {
        let families = self.families.read().unwrap_or_else(PoisonError::into_inner);
        families.by_id.clone()
    }
}

/// A series' values, as its family records them.
fn lend<'a>(family: &Family, values: &'a Values) -> Series<'a> {
    match (values, family.shape) {
        (Values::Histogram(h), _) => Series::Histogram(h),
        (Values::Plain(c), Shape::Gauge) if family.integer => Series::IntGauge(c),
        (Values::Plain(c), Shape::Gauge) => Series::Gauge(c),
        (Values::Plain(c), _) => Series::Counter(c),
    }
}

/// Exemplars per bucket, by family name and label values (family order).
pub(crate) type ExemplarMap = HashMap<(String, Vec<String>), Vec<Option<Exemplar>>>;

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
        let by_id = store.by_id();
        let mut out = {
            // Read under one lock: a scrape never sees part of a source.
            let table = store.series.read().unwrap_or_else(PoisonError::into_inner);
            let mut series: Vec<Vec<(Vec<&str>, &Cells)>> = vec![Vec::new(); by_id.len()];
            table.each(|family, values, at| {
                if let Some(list) = series.get_mut(usize::from(family)) {
                    list.push((values, at.cells()));
                }
            });
            by_id
                .iter()
                .zip(&series)
                .filter_map(|(f, list)| f.collect(list))
                .collect::<Vec<_>>()
        };
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
