use std::sync::Arc;
use std::time::Duration;

use quanta::Instant;

use super::layer::Latency;
use crate::classify::{Deadline, ErrorType, Outcome};
use crate::record::Target;
use crate::trace::TraceContext;
use crate::vast::VastVerdict;

/// One started request: ends exactly once, as `cancelled` (or `timeout`
/// past its [`Deadline`]) if dropped before, like tower-http's in-flight
/// guard. Used by every layer and by the multi-source fetcher.
pub(crate) struct InFlight<T: Target> {
    target: Option<Arc<T>>,
    start: Instant,
    latency: Latency,
    to_headers: Option<Duration>,
    deadline: Option<Deadline>,
    /// The request's trace context: its duration's exemplar.
    trace: Option<TraceContext>,
}

impl<T: Target> InFlight<T> {
    /// Starts a request on `target`.
    #[inline]
    pub(crate) fn begin(target: Arc<T>, latency: Latency, deadline: Option<Deadline>) -> Self {
        Self::begin_at(target, Instant::now(), latency, deadline)
    }

    /// Starts a request on `target` whose clock started at `start`.
    #[inline]
    pub(crate) fn begin_at(
        target: Arc<T>,
        start: Instant,
        latency: Latency,
        deadline: Option<Deadline>,
    ) -> Self {
        target.start();
        InFlight {
            target: Some(target),
            start,
            latency,
            to_headers: None,
            deadline,
            trace: None,
        }
    }

    /// The request carries `trace`.
    #[inline]
    pub(crate) fn traced(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }

    /// What the request records into, until it ends.
    pub(crate) fn target(&self) -> Option<&T> {
        self.target.as_deref()
    }

    /// The response headers arrived.
    #[inline]
    pub(crate) fn headers(&mut self) {
        if self.latency == Latency::ToHeaders {
            self.to_headers = Some(self.start.elapsed());
        }
    }

    /// Ends the request with `outcome`, now; returns its latency.
    pub(crate) fn finish(&mut self, outcome: Outcome) -> Duration {
        let elapsed = self.elapsed_at(Instant::now());
        self.finish_after(outcome, elapsed, None);
        elapsed
    }

    /// The latency as configured, with `now` read by the caller.
    #[inline]
    pub(crate) fn elapsed_at(&self, now: Instant) -> Duration {
        self.to_headers
            .unwrap_or_else(|| now.saturating_duration_since(self.start))
    }

    /// Ends the request with an outcome, its latency and the inspection
    /// that gave the outcome.
    #[inline]
    pub(crate) fn finish_after(
        &mut self,
        outcome: Outcome,
        elapsed: Duration,
        inspection: Option<(VastVerdict, Duration)>,
    ) {
        if let Some(target) = self.target.take() {
            target.finish(outcome, elapsed, inspection, self.trace.as_ref());
        }
    }
}

impl<T: Target> Drop for InFlight<T> {
    fn drop(&mut self) {
        if self.target.is_some() {
            // Dropped while a panic unwinds (the inner service panicked):
            // `other`, as the multi-source report says too.
            let error = if std::thread::panicking() {
                ErrorType::Other
            } else {
                Deadline::dropped(self.deadline)
            };
            self.finish(Outcome::Failure(error));
        }
    }
}
