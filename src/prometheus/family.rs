//! One exported metric family: its name, help, type and label keys, and how
//! its series' cells become the exposition.

use std::sync::{Arc, OnceLock};

use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::valid_label_name;
use crate::collector::Labels;
use crate::names::{self, MetricKind};
use crate::recorder::cells::{Cells, HistogramCells};
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
    pub(super) const ALL: [Shape; 4] = [
        Shape::Counter,
        Shape::Gauge,
        Shape::Histogram,
        Shape::Timing,
    ];

    pub(super) fn kind(self) -> MetricKind {
        match self {
            Shape::Counter => MetricKind::Counter,
            Shape::Gauge => MetricKind::Gauge,
            Shape::Histogram | Shape::Timing => MetricKind::Histogram,
        }
    }

    pub(super) fn exported_name(self, dotted: &str) -> String {
        match self {
            Shape::Timing => names::exported_timing_name(dotted),
            other => names::exported_name(dotted, other.kind()),
        }
    }
}

/// One exported metric family. Everything but its label keys is fixed when
/// it is made; the keys by the first call that records into it.
pub(crate) struct Family {
    /// Its number in the store.
    pub(super) id: u16,
    pub(super) name: String,
    pub(super) help: String,
    pub(super) shape: Shape,
    /// Bucket bounds of a histogram.
    pub(super) bounds: Arc<[f64]>,
    /// A gauge of the contract: integer values.
    pub(super) integer: bool,
    /// A counter of seconds of the contract: its cells count milliseconds.
    millis: bool,
    label_keys: OnceLock<Box<[String]>>,
}

impl Family {
    /// A family of `shape`; `def` when the name is the contract's (its
    /// gauges count whole things, its seconds counters count milliseconds).
    pub(super) fn new(
        id: u16,
        name: String,
        help: String,
        shape: Shape,
        bounds: Arc<[f64]>,
        def: Option<&names::MetricDef>,
    ) -> Self {
        Family {
            id,
            name,
            help,
            shape,
            bounds,
            integer: shape == Shape::Gauge && def.is_some(),
            millis: shape == Shape::Counter && def.is_some_and(|d| d.unit == names::Unit::Seconds),
            label_keys: OnceLock::new(),
        }
    }

    /// Cells one series takes.
    pub(super) fn width(&self) -> u32 {
        match self.shape {
            Shape::Counter | Shape::Gauge => 1,
            Shape::Histogram | Shape::Timing => HistogramCells::width(&self.bounds),
        }
    }

    /// Whether its first label is `source_url`: its series go with their
    /// source.
    pub(super) fn is_per_source(&self) -> bool {
        self.label_keys
            .get()
            .and_then(|keys| keys.first())
            .is_some_and(|k| k == names::MetricLabels::SOURCE_URL)
    }

    /// Index into `labels` of each of the family's keys, in the family's
    /// order; fixes the keys on first use.
    pub(super) fn value_order(&self, labels: Labels<'_>) -> Result<Vec<usize>, RecordError> {
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
        if let Some(keys) = self.label_keys.get() {
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
        // Two first calls may race: the keys of the one that sets them win.
        let keys = self
            .label_keys
            .get_or_init(|| labels.iter().map(|(k, _)| (*k).to_owned()).collect());
        find(keys)
    }

    /// The family's exposition, from its series (label values in the
    /// family's order, and cells); `None` before its first record.
    pub(super) fn collect(&self, series: &[(Vec<&str>, &Cells)]) -> Option<MetricFamily> {
        let keys = self.label_keys.get()?;
        let mut family = MetricFamily::default();
        family.set_name(self.name.clone());
        family.set_help(self.help.clone());
        family.set_field_type(match self.shape.kind() {
            MetricKind::Counter => MetricType::COUNTER,
            MetricKind::Gauge => MetricType::GAUGE,
            MetricKind::Histogram => MetricType::HISTOGRAM,
        });
        let metrics = family.mut_metric();
        for (values, cells) in series {
            let mut metric = proto::Metric::default();
            let pairs = keys.iter().zip(values).map(|(k, v)| label_pair(k, v));
            metric.set_label(pairs.collect());
            self.fill(&mut metric, cells);
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

pub(super) fn label_pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}
