//! Idle expiry of a resolver's sources, on a coarse clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Handles of an expired source, given back by the resolver's owner.
pub(super) type Release<T> = Box<dyn Fn(&T) + Send + Sync>;

/// Idle expiry of a resolver's sources, on a coarse clock: milliseconds
/// since the resolver was made, read with `quanta` (no system call).
pub(super) struct Expiry<T> {
    pub(super) epoch: quanta::Instant,
    /// Idle time after which a source expires, in milliseconds.
    pub(super) after: u64,
    /// Granularity: `used` is stored at most once per tick per entry, and
    /// sources arriving sweep at most once per tick.
    pub(super) tick: u64,
    /// When the table was last swept.
    pub(super) swept: AtomicU64,
    pub(super) release: Release<T>,
}

impl<T> Expiry<T> {
    pub(super) fn new(after: Duration, release: Release<T>) -> Self {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        Expiry {
            epoch: quanta::Instant::now(),
            after,
            tick: (after / 8).clamp(1, 1000),
            swept: AtomicU64::new(0),
            release,
        }
    }

    /// Milliseconds from the epoch to `at`.
    #[inline]
    pub(super) fn ms(&self, at: quanta::Instant) -> u64 {
        let elapsed = at.duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a use: one relaxed store at most once per tick; `true` when
    /// it stored.
    #[inline]
    pub(super) fn touch(&self, used: &AtomicU64, now: u64) -> bool {
        let stale = now.saturating_sub(used.load(Ordering::Relaxed)) >= self.tick;
        if stale {
            used.store(now, Ordering::Relaxed);
        }
        stale
    }

    /// Whether an entry last stored `used` has surely been idle for
    /// `after` (its last use was at most a tick past `used`).
    pub(super) fn idle(&self, used: u64, now: u64) -> bool {
        now.saturating_sub(used) > self.after.saturating_add(self.tick)
    }

    /// Claims a sweep if none ran for `every` milliseconds.
    pub(super) fn claim(&self, now: u64, every: u64) -> bool {
        let last = self.swept.load(Ordering::Relaxed);
        now.saturating_sub(last) >= every
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
