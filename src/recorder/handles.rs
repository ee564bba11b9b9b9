//! The handles a [`Recorder`](super::Recorder) hands out: one enum each,
//! whose built-in variant writes its [`Cells`] directly (no virtual call) and whose `Custom` variant calls a backend's own `*Fn`.

use std::fmt;
use std::sync::Arc;

use super::cells::{Cells, HistogramCells};
use crate::trace::TraceContext;

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
    Cells(Cells),
    // A thin pointer: no larger than `Cells`.
    Custom(Arc<Arc<dyn CounterFn>>),
}

impl Counter {
    pub(crate) fn cells(c: Cells) -> Self {
        Counter(CounterInner::Cells(c))
    }

    /// Adds `n`.
    #[inline]
    pub fn increment(&self, n: u64) {
        match &self.0 {
            CounterInner::Noop => {}
            CounterInner::Cells(c) => c.add(0, n),
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
    Float(Cells),
    /// The contract's gauges count things: one atomic add.
    Int(Cells),
    Custom(Arc<Arc<dyn GaugeFn>>),
}

impl Gauge {
    pub(crate) fn float_cells(c: Cells) -> Self {
        Gauge(GaugeInner::Float(c))
    }

    pub(crate) fn int_cells(c: Cells) -> Self {
        Gauge(GaugeInner::Int(c))
    }

    /// Moves the gauge by `delta`.
    #[inline]
    pub fn add(&self, delta: f64) {
        match &self.0 {
            GaugeInner::Noop => {}
            GaugeInner::Float(c) => c.add_f64(0, delta),
            // Two's complement: adding a negative delta wraps to it.
            GaugeInner::Int(c) => c.add(0, delta as i64 as u64),
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

/// What every handle has: a no-op, a custom one, a name in `Debug`.
macro_rules! handle_common {
    ($($ty:ident($inner:ident, $f:ident)),*) => {$(
        impl $ty {
            /// A handle that records nothing.
            pub fn noop() -> Self {
                $ty($inner::Noop)
            }

            /// A handle backed by `f`.
            pub fn from_fn(f: Arc<dyn $f>) -> Self {
                $ty($inner::Custom(Arc::new(f)))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($ty))
            }
        }
    )*};
}
handle_common!(
    Counter(CounterInner, CounterFn),
    Gauge(GaugeInner, GaugeFn),
    Histogram(HistogramInner, HistogramFn)
);
