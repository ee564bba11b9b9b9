//! Where [`PrometheusMetrics`](super::PrometheusMetrics) keeps its values:
//! plain atomic cells, per-thread sharded, summed at scrape.
//!
//! A series is a run of cells (a counter one, a histogram one per bucket
//! plus its sum) in a [`Chunk`]. A chunk holds every run once per shard,
//! shard after shard, so the cells one thread writes are never on a cache
//! line another thread writes: two threads recording into one series do not
//! bounce it between cores. A scrape adds the shards up, so the exposition
//! stays exact.
//!
//! Runs are allocated from chunks of a [`Slab`] (no allocation per series)
//! and reused after their series is dropped. The handles hold their chunk,
//! so a late record after a drop lands in live memory, never freed memory.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::trace::TraceContext;

/// Cells per shard in one chunk: 4 KiB per shard.
const CHUNK_CELLS: usize = 512;

/// How many shards a slab has: the machine's cores, as a power of two,
/// at most 16.
pub(crate) fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
        .next_power_of_two()
}

thread_local! {
    /// This thread's shard number, given on its first record.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's shard number (any `usize`; masked by the chunk).
#[inline]
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        let n = s.get();
        if n != usize::MAX {
            return n;
        }
        let n = NEXT.fetch_add(1, Relaxed);
        s.set(n);
        n
    })
}

/// One block of cells: `shards` copies of `CHUNK_CELLS` cells.
pub(crate) struct Chunk {
    cells: Box<[AtomicU64]>,
    /// `shards - 1` (shards is a power of two).
    mask: usize,
}

impl Chunk {
    fn new(shards: usize) -> Self {
        Chunk {
            cells: (0..shards * CHUNK_CELLS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            mask: shards - 1,
        }
    }

    /// The calling thread's copy of cell `index`.
    #[inline]
    fn mine(&self, index: u32) -> &AtomicU64 {
        &self.cells[(shard() & self.mask) * CHUNK_CELLS + index as usize]
    }

    /// Adds `n` to this thread's copy of cell `index`.
    #[inline]
    pub(crate) fn add(&self, index: u32, n: u64) {
        self.mine(index).fetch_add(n, Relaxed);
    }

    /// Adds `v` to this thread's copy of cell `index`, read as `f64`. The
    /// cell is this thread's: the exchange rarely retries.
    #[inline]
    pub(crate) fn add_f64(&self, index: u32, v: f64) {
        let cell = self.mine(index);
        let mut old = cell.load(Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match cell.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(now) => old = now,
            }
        }
    }

    /// Every shard's copy of cell `index`.
    fn all(&self, index: u32) -> impl Iterator<Item = &AtomicU64> {
        (0..=self.mask).map(move |s| &self.cells[s * CHUNK_CELLS + index as usize])
    }
}

/// A run of cells: one series' values.
#[derive(Clone)]
pub(crate) struct Cells {
    chunk: Arc<Chunk>,
    start: u32,
}

/// Where a run is, in two words: its chunk's number and first cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CellRef {
    chunk: u32,
    start: u32,
}

impl Cells {
    /// Adds `n` to cell `i` of the run (a counter, a bucket, an integer
    /// gauge as two's complement).
    #[inline]
    pub(crate) fn add(&self, i: u32, n: u64) {
        self.chunk.add(self.start + i, n);
    }

    /// Adds `v` to cell `i` read as an `f64` (a sum, a float gauge).
    #[inline]
    pub(crate) fn add_f64(&self, i: u32, v: f64) {
        self.chunk.add_f64(self.start + i, v);
    }

    /// The chunk and first cell: what a handle keeps (two words, where a
    /// `Cells` in an enum would take three).
    pub(crate) fn into_parts(self) -> (Arc<Chunk>, u32) {
        (self.chunk, self.start)
    }

    /// Cell `i` summed over the shards.
    pub(crate) fn sum(&self, i: u32) -> u64 {
        self.chunk
            .all(self.start + i)
            .fold(0u64, |acc, c| acc.wrapping_add(c.load(Relaxed)))
    }

    /// Cell `i` read as `f64`, summed over the shards.
    pub(crate) fn sum_f64(&self, i: u32) -> f64 {
        self.chunk
            .all(self.start + i)
            .map(|c| f64::from_bits(c.load(Relaxed)))
            .sum()
    }

    /// Zeroes `width` cells (before the run is reused).
    fn clear(&self, width: u32) {
        for i in 0..width {
            self.chunk
                .all(self.start + i)
                .for_each(|c| c.store(0, Relaxed));
        }
    }
}

/// Hands out runs of cells, and takes them back.
pub(crate) struct Slab {
    shards: usize,
    state: RwLock<SlabState>,
}

#[derive(Default)]
struct SlabState {
    chunks: Vec<Arc<Chunk>>,
    /// First uncut cell of the last chunk.
    next: u32,
    /// Runs given back, by width.
    free: HashMap<u32, Vec<CellRef>>,
}

impl Slab {
    pub(crate) fn new(shards: usize) -> Self {
        Slab {
            shards: shards.max(1).next_power_of_two(),
            state: RwLock::default(),
        }
    }

    /// A zeroed run of `width` cells (at most [`CHUNK_CELLS`]).
    pub(crate) fn alloc(&self, width: u32) -> Option<CellRef> {
        if width == 0 || width as usize > CHUNK_CELLS {
            return None;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = state.free.get_mut(&width).and_then(Vec::pop) {
            return Some(at);
        }
        if state.chunks.is_empty() || (state.next + width) as usize > CHUNK_CELLS {
            // The rest of a full chunk stays unused: runs are small.
            state.chunks.push(Arc::new(Chunk::new(self.shards)));
            state.next = 0;
        }
        let at = CellRef {
            chunk: u32::try_from(state.chunks.len() - 1).ok()?,
            start: state.next,
        };
        state.next += width;
        Some(at)
    }

    /// The run at `at`, to record into.
    pub(crate) fn cells(&self, at: CellRef) -> Cells {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Cells {
            chunk: state.chunks[at.chunk as usize].clone(),
            start: at.start,
        }
    }

    /// Reads runs without locking the slab for each.
    pub(crate) fn reader(&self) -> SlabReader {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        SlabReader(state.chunks.clone())
    }

    /// Takes back a run of `width` cells whose series was dropped.
    pub(crate) fn free(&self, at: CellRef, width: u32) {
        self.cells(at).clear(width);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.free.entry(width).or_default().push(at);
    }
}

/// The chunks of a slab, as a scrape found them.
pub(crate) struct SlabReader(Vec<Arc<Chunk>>);

impl SlabReader {
    pub(crate) fn cells(&self, at: CellRef) -> Cells {
        Cells {
            chunk: self.0[at.chunk as usize].clone(),
            start: at.start,
        }
    }
}

/// One histogram series: its bucket counts (not cumulative; the last one
/// past every bound) and sum, in one run of cells; and, once a traced
/// request was observed, an exemplar per bucket.
pub(crate) struct HistogramCells {
    cells: Cells,
    bounds: Arc<[f64]>,
    exemplars: Exemplars,
}

/// The latest traced observation of each bucket, made on the first.
#[derive(Default)]
pub(crate) struct Exemplars(OnceLock<Box<[Mutex<Option<Exemplar>>]>>);

/// A traced observation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exemplar {
    pub(crate) trace: TraceContext,
    pub(crate) value: f64,
    /// Seconds since the Unix epoch.
    pub(crate) at: f64,
}

impl HistogramCells {
    /// Cells a histogram with `bounds` takes: one per bucket, +Inf, sum.
    pub(crate) fn width(bounds: &[f64]) -> u32 {
        bounds.len() as u32 + 2
    }

    pub(crate) fn new(cells: Cells, bounds: Arc<[f64]>) -> Self {
        HistogramCells {
            cells,
            bounds,
            exemplars: Exemplars::default(),
        }
    }

    /// Records `v`; with a trace, it becomes its bucket's exemplar.
    #[inline]
    pub(crate) fn observe(&self, v: f64, trace: Option<&TraceContext>) {
        let n = self.bounds.len();
        let bucket = self.bounds.iter().position(|b| v <= *b).unwrap_or(n);
        self.cells.add(bucket as u32, 1);
        self.cells.add_f64(n as u32 + 1, v);
        if let Some(trace) = trace {
            self.exemplar(bucket, v, trace);
        }
    }

    #[cold]
    fn exemplar(&self, bucket: usize, value: f64, trace: &TraceContext) {
        let slots = self
            .exemplars
            .0
            .get_or_init(|| (0..=self.bounds.len()).map(|_| Mutex::default()).collect());
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // A sample, not a count: a slot another thread is writing is skipped.
        if let Ok(mut slot) = slots[bucket].try_lock() {
            *slot = Some(Exemplar {
                trace: *trace,
                value,
                at,
            });
        }
    }

    /// The exemplar of each bucket (+Inf last), if any.
    pub(crate) fn exemplars(&self) -> Option<Vec<Option<Exemplar>>> {
        let slots = self.exemplars.0.get()?;
        Some(
            slots
                .iter()
                .map(|s| *s.lock().unwrap_or_else(PoisonError::into_inner))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_up_exactly() {
        let slab = Slab::new(4);
        let a = slab.cells(slab.alloc(1).unwrap());
        let b = slab.cells(slab.alloc(3).unwrap());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        a.add(0, 1);
                        b.add(2, 2);
                        b.add_f64(1, 0.5);
                    }
                });
            }
        });
        assert_eq!(a.sum(0), 80_000);
        assert_eq!(b.sum(2), 160_000);
        assert_eq!(b.sum(0), 0);
        assert_eq!(b.sum_f64(1), 40_000.0);
    }

    #[test]
    fn freed_runs_come_back_zeroed() {
        let slab = Slab::new(2);
        let at = slab.alloc(2).unwrap();
        slab.cells(at).add(1, 7);
        slab.free(at, 2);
        let again = slab.alloc(2).unwrap();
        assert_eq!(again, at);
        assert_eq!(slab.cells(again).sum(1), 0);
        assert!(slab.alloc(0).is_none());
        assert!(slab.alloc(CHUNK_CELLS as u32 + 1).is_none());
    }
}
