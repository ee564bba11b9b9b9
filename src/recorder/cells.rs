//! The built-in handles' fast path, free of any backend: plain atomic
//! cells, per-thread sharded, summed when read. The Prometheus backend
//! keeps its values here and hands out [`Counter`](super::Counter),
//! [`Gauge`](super::Gauge) and [`Histogram`](super::Histogram) handles that
//! write them directly.
//!
//! A series is a run of cells (a counter one, a histogram one per bucket
//! plus its sum) in a [`Chunk`]. A chunk holds every run once per shard,
//! shard after shard, so the cells one thread writes are never on a cache
//! line another thread writes: two threads recording into one series do not
//! bounce it between cores. A scrape adds the shards up, so the exposition
//! stays exact.
//!
//! Runs are cut from the chunks of a [`Slab`] and held by the store and the
//! handles ([`Cells`], each holder counted). A run given back is reused
//! only once no handle holds it: a late record through a stale handle
//! lands in its own dropped series, never in another series and never in
//! freed memory.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{
    AtomicU32, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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
struct Chunk {
    cells: Box<[AtomicU64]>,
    /// `shards - 1` (shards is a power of two).
    mask: usize,
    /// How many [`Cells`] hold the run starting at each cell.
    leases: Box<[AtomicU32]>,
}

impl Chunk {
    fn new(shards: usize) -> Self {
        Chunk {
            cells: (0..shards * CHUNK_CELLS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            mask: shards - 1,
            leases: (0..CHUNK_CELLS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The calling thread's copy of cell `index`.
    #[inline]
    fn mine(&self, index: u32) -> &AtomicU64 {
        &self.cells[(shard() & self.mask) * CHUNK_CELLS + index as usize]
    }

    /// Adds `n` to this thread's copy of cell `index`.
    #[inline]
    fn add(&self, index: u32, n: u64) {
        self.mine(index).fetch_add(n, Relaxed);
    }

    /// Adds `v` to this thread's copy of cell `index`, read as `f64`. The
    /// cell is this thread's: the exchange rarely retries.
    #[inline]
    fn add_f64(&self, index: u32, v: f64) {
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

/// A run of cells: one series' values, held by the store and by each of
/// its handles. Each holder is a lease counted in the chunk, and the slab
/// reuses a run only once it holds the last one. Counted in the chunk
/// rather than by an `Arc` per run: a record still follows one pointer
/// (handle → chunk), and a counter costs no allocation of its own.
pub(crate) struct Cells {
    chunk: Arc<Chunk>,
    start: u32,
}

impl Clone for Cells {
    fn clone(&self) -> Self {
        self.lease().fetch_add(1, Relaxed);
        Cells {
            chunk: self.chunk.clone(),
            start: self.start,
        }
    }
}

impl Drop for Cells {
    fn drop(&mut self) {
        // Release: this holder's records come before a reuse's clearing.
        self.lease().fetch_sub(1, Release);
    }
}

impl Cells {
    /// A new holder of the run at `start`.
    fn lease_new(chunk: Arc<Chunk>, start: u32) -> Self {
        chunk.leases[start as usize].fetch_add(1, Relaxed);
        Cells { chunk, start }
    }

    fn lease(&self) -> &AtomicU32 {
        &self.chunk.leases[self.start as usize]
    }

    /// Whether the caller holds the only lease.
    fn is_only_holder(&self) -> bool {
        self.lease().load(Acquire) == 1
    }

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

/// Hands out runs of cells, and takes them back. Its lock is a leaf: held
/// for a cut or a reuse, never while taking another lock.
pub(crate) struct Slab {
    shards: usize,
    state: Mutex<SlabState>,
}

#[derive(Default)]
struct SlabState {
    /// The chunk runs are cut from; a full one lives on in its runs.
    current: Option<Arc<Chunk>>,
    /// First uncut cell of `current`.
    next: u32,
    /// Runs given back, by width.
    free: HashMap<u32, Vec<Cells>>,
}

impl Slab {
    pub(crate) fn new(shards: usize) -> Self {
        Slab {
            shards: shards.max(1).next_power_of_two(),
            state: Mutex::default(),
        }
    }

    /// A zeroed run of `width` cells (at most [`CHUNK_CELLS`]): a run given
    /// back that no handle holds any more, or a new one.
    pub(crate) fn alloc(&self, width: u32) -> Option<Cells> {
        if width == 0 || width as usize > CHUNK_CELLS {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A run some stale handle still holds stays out: its writes must not
        // land in another series.
        if let Some(free) = state.free.get_mut(&width) {
            if let Some(i) = free.iter().position(Cells::is_only_holder) {
                let run = free.swap_remove(i);
                run.clear(width);
                return Some(run);
            }
        }
        let chunk = match &state.current {
            Some(chunk) if (state.next + width) as usize <= CHUNK_CELLS => chunk.clone(),
            // The rest of a full chunk stays unused: runs are small.
            _ => {
                let chunk = Arc::new(Chunk::new(self.shards));
                state.current = Some(chunk.clone());
                state.next = 0;
                chunk
            }
        };
        let start = state.next;
        state.next += width;
        Some(Cells::lease_new(chunk, start))
    }

    /// Takes back a run of `width` cells whose series was dropped; it is
    /// reused once its last handle is gone.
    pub(crate) fn free(&self, run: Cells, width: u32) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.free.entry(width).or_default().push(run);
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

    /// Its cells: buckets (not cumulative), then +Inf, then the sum.
    pub(crate) fn cells(&self) -> &Cells {
        &self.cells
    }

    /// Its run, to give back to the slab.
    pub(crate) fn run(&self) -> Cells {
        self.cells.clone()
    }

    pub(crate) fn bounds(&self) -> &[f64] {
        &self.bounds
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
        let a = slab.alloc(1).unwrap();
        let b = slab.alloc(3).unwrap();
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
    fn a_run_is_reused_zeroed_once_no_handle_holds_it() {
        let slab = Slab::new(2);
        let run = slab.alloc(2).unwrap();
        let stale = run.clone();
        run.add(1, 7);
        slab.free(run, 2);
        // A handle still holds it: a new series gets other cells.
        let other = slab.alloc(2).unwrap();
        stale.add(1, 1);
        assert_eq!(other.sum(1), 0);
        drop(stale);
        let again = slab.alloc(2).unwrap();
        assert!(again.start != other.start || !Arc::ptr_eq(&again.chunk, &other.chunk));
        assert_eq!(again.sum(1), 0);
        assert!(slab.alloc(0).is_none());
        assert!(slab.alloc(CHUNK_CELLS as u32 + 1).is_none());
    }
}
