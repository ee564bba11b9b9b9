//! What the multi-source family records, shared by [`MultiSource`](super::MultiSource)
//! and [`MultiSourceMetricsLayer`](super::MultiSourceMetricsLayer).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::Strategy;
use crate::classify::{ErrorType, Outcome};
use crate::collector::MetricsCollector;
use crate::names::{MetricLabels, VastMetrics};

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// One fetch: total +1 and active +1 on start; ends exactly once, as
/// `cancelled` when dropped before.
pub(crate) struct FetchGuard<M: MetricsCollector> {
    metrics: Option<M>,
    strategy: Strategy,
    start: Instant,
}

impl<M: MetricsCollector> FetchGuard<M> {
    pub(crate) fn start(metrics: M, strategy: Strategy) -> Self {
        let labels = [(MetricLabels::FETCH_STRATEGY, strategy.as_str())];
        metrics.increment(VastMetrics::MULTI_SOURCE_REQUESTS_TOTAL, 1, &labels);
        metrics.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, 1.0, &labels);
        FetchGuard {
            metrics: Some(metrics),
            strategy,
            start: Instant::now(),
        }
    }

    /// Ends the fetch with `outcome`: active -1, success or failure, latency.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        let Some(metrics) = self.metrics.take() else {
            return;
        };
        let strategy = (MetricLabels::FETCH_STRATEGY, self.strategy.as_str());
        metrics.gauge(VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS, -1.0, &[strategy]);
        let result = (MetricLabels::RESULT, outcome.result().as_str());
        match outcome {
            Outcome::Failure(error) => metrics.increment(
                VastMetrics::MULTI_SOURCE_REQUESTS_FAILURE,
                1,
                &[strategy, (MetricLabels::ERROR_TYPE, error.as_str())],
            ),
            Outcome::Ad | Outcome::NoAd => metrics.increment(
                VastMetrics::MULTI_SOURCE_REQUESTS_SUCCESS,
                1,
                &[strategy, result],
            ),
        }
        metrics.timing(
            VastMetrics::MULTI_SOURCE_LATENCY_MS,
            ms(self.start.elapsed()),
            &[strategy, result],
        );
    }
}

impl<M: MetricsCollector> Drop for FetchGuard<M> {
    fn drop(&mut self) {
        self.finish(Outcome::Failure(ErrorType::Cancelled));
    }
}

/// One source attempt: attempted +1 on start; ends exactly once. Dropped
/// before it ends, it is `timeout` once its deadline has passed (cut by the
/// overall deadline), else `cancelled` (race losers, dropped fetches).
pub(crate) struct AttemptGuard<M: MetricsCollector> {
    metrics: Option<M>,
    label: Cow<'static, str>,
    start: Instant,
    deadline: Instant,
}

impl<M: MetricsCollector> AttemptGuard<M> {
    pub(crate) fn start(metrics: M, label: Cow<'static, str>, deadline: Instant) -> Self {
        attempt_started(&metrics, &label);
        AttemptGuard {
            metrics: Some(metrics),
            label,
            start: Instant::now(),
            deadline,
        }
    }

    /// Ends the attempt with `outcome`; returns its elapsed time.
    pub(crate) fn finish(&mut self, outcome: Outcome) -> Duration {
        let elapsed = self.start.elapsed();
        if let Some(metrics) = self.metrics.take() {
            attempt_finished(&metrics, &self.label, outcome, elapsed);
        }
        elapsed
    }
}

impl<M: MetricsCollector> Drop for AttemptGuard<M> {
    fn drop(&mut self) {
        self.finish(Outcome::Failure(dropped_at(self.deadline)));
    }
}

pub(crate) fn attempt_started<M: MetricsCollector>(metrics: &M, label: &str) {
    metrics.increment(
        VastMetrics::MULTI_SOURCE_SOURCES_ATTEMPTED,
        1,
        &[(MetricLabels::SOURCE_URL, label)],
    );
}

pub(crate) fn attempt_finished<M: MetricsCollector>(
    metrics: &M,
    label: &str,
    outcome: Outcome,
    elapsed: Duration,
) {
    let source = (MetricLabels::SOURCE_URL, label);
    let result = (MetricLabels::RESULT, outcome.result().as_str());
    match outcome {
        Outcome::Failure(error) => metrics.increment(
            VastMetrics::MULTI_SOURCE_SOURCES_FAILURE,
            1,
            &[source, (MetricLabels::ERROR_TYPE, error.as_str())],
        ),
        Outcome::Ad | Outcome::NoAd => metrics.increment(
            VastMetrics::MULTI_SOURCE_SOURCES_SUCCESS,
            1,
            &[source, result],
        ),
    }
    metrics.timing(
        VastMetrics::MULTI_SOURCE_FETCH_DURATION,
        ms(elapsed),
        &[source, result],
    );
}

/// The fallback tier `depth` (1, 2, ...) was entered.
pub(crate) fn fallback_entered<M: MetricsCollector>(metrics: &M, depth: usize) {
    let depth = depth.to_string();
    metrics.increment(
        VastMetrics::MULTI_SOURCE_FALLBACK_TRIGGERED,
        1,
        &[(MetricLabels::FALLBACK_DEPTH, &depth)],
    );
}

/// Times `f` into the duration histogram `metric` (no labels).
pub(crate) fn timed<M: MetricsCollector, T>(metrics: &M, metric: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    metrics.timing(metric, ms(start.elapsed()), &[]);
    out
}

/// The error of an attempt dropped now: past its deadline a `timeout`.
pub(crate) fn dropped_at(deadline: Instant) -> ErrorType {
    if Instant::now() >= deadline {
        ErrorType::Timeout
    } else {
        ErrorType::Cancelled
    }
}
