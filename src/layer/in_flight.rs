use std::time::Duration;

use quanta::Instant;

use http::Extensions;

use super::layer::{Latency, Mode, State, UrlHash};
use crate::classify::{Deadline, ErrorType, Outcome};
use crate::recorder::{EventRecorder, Recorder, SourceRecorder};
use crate::vast::VastVerdict;

enum Target<R: Recorder> {
    Source(R::Source),
    Event(R::Event),
}

/// One started request: ends exactly once, as `cancelled` if dropped
/// before (like tower-http's in-flight guard).
pub(crate) struct InFlight<R: Recorder> {
    target: Option<Target<R>>,
    start: Instant,
    latency: Latency,
    to_headers: Option<Duration>,
    /// Dropped at or after it: `timeout`, not `cancelled`.
    deadline: Option<std::time::Instant>,
}

impl<R: Recorder> InFlight<R> {
    /// Starts a request; `None` when the recorder records nothing.
    #[inline]
    pub(crate) fn begin(
        state: &State<R>,
        url: &dyn UrlHash,
        extensions: Option<&Extensions>,
    ) -> Option<Self> {
        if !R::ENABLED {
            return None;
        }
        let target = match state.config.mode {
            Mode::Client => {
                let source = state.source(url, extensions);
                source.start();
                Target::Source(source)
            }
            Mode::Tracking => Target::Event(state.event(extensions)),
        };
        Some(InFlight {
            target: Some(target),
            start: Instant::now(),
            latency: state.config.latency,
            to_headers: None,
            deadline: extensions.and_then(|e| e.get::<Deadline>()).map(|d| d.0),
        })
    }

    /// Whether the request ends at the headers (tracking pixels).
    pub(crate) fn ends_at_headers(&self) -> bool {
        matches!(self.target, Some(Target::Event(_)))
    }

    /// The response headers arrived.
    pub(crate) fn headers(&mut self) {
        if self.latency == Latency::ToHeaders {
            self.to_headers = Some(self.start.elapsed());
        }
    }

    /// Ends the request with `outcome`, now.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        let elapsed = self.elapsed();
        self.finish_after(outcome, elapsed, None);
    }

    /// The latency so far, as configured.
    pub(crate) fn elapsed(&self) -> Duration {
        self.to_headers.unwrap_or_else(|| self.start.elapsed())
    }

    /// The latency as configured, with `now` read by the caller.
    pub(crate) fn elapsed_at(&self, now: Instant) -> Duration {
        self.to_headers
            .unwrap_or_else(|| now.saturating_duration_since(self.start))
    }

    /// Ends the request with an outcome, its latency and the inspection
    /// that gave the outcome.
    pub(crate) fn finish_after(
        &mut self,
        outcome: Outcome,
        elapsed: Duration,
        inspection: Option<(VastVerdict, Duration)>,
    ) {
        match self.target.take() {
            Some(Target::Source(source)) => {
                source.finish(outcome, elapsed);
                if let Some((verdict, took)) = inspection {
                    source.inspected(verdict, took);
                }
            }
            Some(Target::Event(event)) => {
                let failure = match outcome {
                    Outcome::Failure(e) => Some(e),
                    Outcome::Ad | Outcome::NoAd => None,
                };
                event.finish(failure, elapsed);
            }
            None => {}
        }
    }
}

impl<R: Recorder> Drop for InFlight<R> {
    fn drop(&mut self) {
        if self.target.is_some() {
            let timed_out = self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d);
            let error = if timed_out {
                ErrorType::Timeout
            } else {
                ErrorType::Cancelled
            };
            self.finish(Outcome::Failure(error));
        }
    }
}
