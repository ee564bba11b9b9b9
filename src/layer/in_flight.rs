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
    /// Nanoseconds to the headers, with `Latency::ToHeaders`; `u64::MAX`
    /// until then (an `Option<Duration>` would double it: the guard moves
    /// with every response, so it is kept small).
    to_headers: u64,
    /// What few requests carry, boxed for the same reason.
    context: Option<Box<Context>>,
}

/// A request's deadline and trace, when it has either.
struct Context {
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
            to_headers: u64::MAX,
            context: deadline.map(|deadline| {
                Box::new(Context {
                    deadline: Some(deadline),
                    trace: None,
                })
            }),
        }
    }

    /// The request carries `trace`.
    #[inline]
    pub(crate) fn traced(mut self, trace: Option<TraceContext>) -> Self {
        if let Some(trace) = trace {
            match &mut self.context {
                Some(context) => context.trace = Some(trace),
                None => {
                    self.context = Some(Box::new(Context {
                        deadline: None,
                        trace: Some(trace),
                    }))
                }
            }
        }
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
            let nanos = self.start.elapsed().as_nanos();
            self.to_headers = u64::try_from(nanos).unwrap_or(u64::MAX - 1);
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
        match self.to_headers {
            u64::MAX => now.saturating_duration_since(self.start),
            nanos => Duration::from_nanos(nanos),
        }
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
            let trace = self.context.as_ref().and_then(|c| c.trace.as_ref());
            target.finish(outcome, elapsed, inspection, trace);
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
                Deadline::dropped(self.context.as_ref().and_then(|c| c.deadline))
            };
            self.finish(Outcome::Failure(error));
        }
    }
}
