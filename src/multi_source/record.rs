//! The multi-source families, written once and shared by
//! [`MultiSource`](super::MultiSource) (live, as attempts run) and
//! [`MultiSourceMetricsLayer`](super::MultiSourceMetricsLayer) (from a
//! [`FetchReport`]).

use std::sync::{Arc, OnceLock};

use super::report::FetchReport;
use super::Strategy;
use crate::classify::Deadline;
use crate::layer::{InFlight, Latency};
use crate::names::family;
use crate::record::{
    FallbackSeries, OutcomeFamilies, OutcomeSeries, ATTEMPT, FETCH, REPORTED_ATTEMPT,
};
use crate::recorder::{Counter, Gauge, Histogram, RecordError, Recorder};
use crate::source::{SourceConfig, SourceResolver, DEFAULT_MAX_SOURCES};
use crate::wrapper::WrapperRecorder;

/// The handles of the multi-source families: per strategy, per source
/// (capped, as the client layer's), per fallback depth.
pub(crate) struct MultiSourceRecorder {
    recorder: Arc<dyn Recorder>,
    fetches: [OnceLock<Arc<OutcomeSeries>>; Strategy::ALL.len()],
    sources_count: [OnceLock<Gauge>; Strategy::ALL.len()],
    attempts: SourceResolver<OutcomeSeries>,
    /// With redirects for [`MultiSource`](super::MultiSource), without
    /// for reports.
    attempt_families: &'static OutcomeFamilies,
    fallback: FallbackSeries,
    parse: OnceLock<Histogram>,
    filter: OnceLock<Histogram>,
    wrappers: WrapperRecorder,
    /// Per strategy: seconds of break requested, and filled (both count
    /// milliseconds), made on the first fetch that asks for a break.
    breaks: [OnceLock<[Counter; 2]>; Strategy::ALL.len()],
}

impl MultiSourceRecorder {
    /// The recorder of [`MultiSource`](super::MultiSource)'s fetches.
    pub(crate) fn new(recorder: Arc<dyn Recorder>) -> Self {
        Self::with(recorder, &ATTEMPT)
    }

    /// The recorder of a fetcher's reports
    /// ([`MultiSourceMetricsLayer`](super::MultiSourceMetricsLayer)).
    pub(crate) fn reported(recorder: Arc<dyn Recorder>) -> Self {
        Self::with(recorder, &REPORTED_ATTEMPT)
    }

    fn with(recorder: Arc<dyn Recorder>, attempt_families: &'static OutcomeFamilies) -> Self {
        MultiSourceRecorder {
            fetches: Default::default(),
            sources_count: Default::default(),
            attempts: SourceResolver::new(SourceConfig::new(DEFAULT_MAX_SOURCES)),
            attempt_families,
            fallback: FallbackSeries::new(recorder.clone()),
            parse: OnceLock::new(),
            filter: OnceLock::new(),
            wrappers: WrapperRecorder::new(
                recorder.clone(),
                SourceConfig::new(DEFAULT_MAX_SOURCES),
            ),
            breaks: Default::default(),
            recorder,
        }
    }

    /// A fetch starts: total +1, active +1; ends once, `cancelled` if
    /// dropped.
    pub(crate) fn fetch(&self, strategy: Strategy) -> InFlight<OutcomeSeries> {
        let series = self.fetches[strategy as usize]
            .get_or_init(|| {
                Arc::new(OutcomeSeries::new(
                    self.recorder.clone(),
                    &FETCH,
                    strategy.as_str().into(),
                ))
            })
            .clone();
        InFlight::begin(series, Latency::ToBodyEnd, None)
    }

    /// A source attempt starts: attempted +1; ends once, dropped before
    /// its deadline `cancelled`, at or past it `timeout`.
    pub(crate) fn attempt(
        &self,
        source: &str,
        deadline: Option<Deadline>,
    ) -> InFlight<OutcomeSeries> {
        let series = self.attempts.by_name(
            source,
            |label| OutcomeSeries::new(self.recorder.clone(), self.attempt_families, label.clone()),
            || self.recorder.record_error(RecordError::SourceLabelOverflow),
        );
        InFlight::begin(series, Latency::ToBodyEnd, deadline)
    }

    /// The fallback tier `depth` (1, 2, ...) was entered.
    pub(crate) fn fallback(&self, depth: usize) {
        self.fallback.entered(depth);
    }

    /// Moves `vast_multi_source_sources{fetch_strategy}` by `delta`.
    pub(crate) fn sources_count(&self, strategy: Strategy, delta: f64) {
        self.sources_count[strategy as usize]
            .get_or_init(|| {
                self.recorder
                    .register_gauge(&family::MULTI_SOURCE_SOURCES_COUNT, &[strategy.as_str()])
            })
            .add(delta);
    }

    /// The wrapper-chain families, per source.
    pub(crate) fn wrappers(&self) -> &WrapperRecorder {
        &self.wrappers
    }

    /// `vast_multi_source_parse_duration_seconds`.
    pub(crate) fn parse(&self) -> &Histogram {
        self.parse.get_or_init(|| {
            self.recorder
                .register_histogram(&family::MULTI_SOURCE_PARSE_DURATION, &[])
        })
    }

    /// `vast_multi_source_filter_duration_seconds`.
    pub(crate) fn filter(&self) -> &Histogram {
        self.filter.get_or_init(|| {
            self.recorder
                .register_histogram(&family::MULTI_SOURCE_FILTER_DURATION, &[])
        })
    }

    /// Fill by time of a fetch that ended: the break it was to fill, and
    /// the seconds of linear ads of the answer it returned (not capped at
    /// the break). Nothing for a fetch without a break.
    pub(crate) fn fill_by_time(&self, report: &FetchReport) {
        let Some(requested) = report.break_requested else {
            return;
        };
        let strategy = report.strategy;
        let [requested_ms, filled_ms] = self.breaks[strategy as usize].get_or_init(|| {
            [
                &family::MULTI_SOURCE_BREAK_REQUESTED,
                &family::MULTI_SOURCE_BREAK_FILLED,
            ]
            .map(|f| self.recorder.register_counter(f, &[strategy.as_str()]))
        });
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        requested_ms.increment(millis(requested));
        filled_ms.increment(millis(report.ad_duration));
    }

    /// The fallback and per-source families of a fetch that ended, from
    /// its report.
    pub(crate) fn report(&self, report: &FetchReport) {
        self.fill_by_time(report);
        for depth in 1..=report.fallback_depth {
            self.fallback(depth);
        }
        for attempt in &report.attempts {
            self.attempt(&attempt.source, None).finish_after(
                attempt.outcome,
                attempt.elapsed,
                None,
            );
        }
    }
}
