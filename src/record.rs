//! How each family is recorded, written once: small structs of handles
//! resolved from a [`Recorder`], with the start and finish of one request,
//! used by [`VastMetricsLayer`](crate::VastMetricsLayer),
//! [`TrackingMetricsLayer`](crate::TrackingMetricsLayer),
//! [`MultiSource`](crate::MultiSource) and
//! [`MultiSourceMetricsLayer`](crate::MultiSourceMetricsLayer) alike.
//!
//! The one outcome mapping: a request that ends counts in
//! `*_success_total{result}` (an ad, no ad) or `*_failure_total{error_type}`,
//! and its duration in `*_duration_seconds{result}`. Every outcome counter
//! of a source (or strategy) exists at 0 from its first request, so `rate()`
//! and absence alerts work from the first scrape; duration histograms are
//! made on first use.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::classify::{ErrorType, FetchResult, Outcome, VastErrorCode};
use crate::names::{family, MetricDef};
use crate::recorder::{Counter, Gauge, Histogram, RecordError, Recorder};
use crate::trace::TraceContext;
use crate::vast::{Inspection, VastVerdict};
use crate::wrapper::ChainResult;

/// The families of something that starts and ends with an outcome.
pub(crate) struct OutcomeFamilies {
    total: &'static MetricDef,
    active: Option<&'static MetricDef>,
    success: &'static MetricDef,
    failure: &'static MetricDef,
    duration: &'static MetricDef,
    /// Redirects followed, where a fetcher follows them.
    redirects: Option<&'static MetricDef>,
}

/// Client requests, per source.
pub(crate) static CLIENT: OutcomeFamilies = OutcomeFamilies {
    total: &family::CLIENT_REQUEST_TOTAL,
    active: Some(&family::CLIENT_ACTIVE_REQUESTS),
    success: &family::CLIENT_REQUEST_SUCCESS,
    failure: &family::CLIENT_REQUEST_FAILURE,
    duration: &family::CLIENT_REQUEST_DURATION_MS,
    redirects: None,
};

/// Whole multi-source fetches, per strategy.
pub(crate) static FETCH: OutcomeFamilies = OutcomeFamilies {
    total: &family::MULTI_SOURCE_REQUESTS_TOTAL,
    active: Some(&family::MULTI_SOURCE_ACTIVE_REQUESTS),
    success: &family::MULTI_SOURCE_REQUESTS_SUCCESS,
    failure: &family::MULTI_SOURCE_REQUESTS_FAILURE,
    duration: &family::MULTI_SOURCE_LATENCY_MS,
    redirects: None,
};

/// Source attempts of [`MultiSource`](crate::MultiSource), per source,
/// with the redirects it follows.
pub(crate) static ATTEMPT: OutcomeFamilies = OutcomeFamilies {
    total: &family::MULTI_SOURCE_SOURCES_ATTEMPTED,
    active: None,
    success: &family::MULTI_SOURCE_SOURCES_SUCCESS,
    failure: &family::MULTI_SOURCE_SOURCES_FAILURE,
    duration: &family::MULTI_SOURCE_FETCH_DURATION,
    redirects: Some(&family::REDIRECTS),
};

/// Source attempts of a fetcher of one's own, from its reports: no
/// redirects are seen.
pub(crate) static REPORTED_ATTEMPT: OutcomeFamilies = OutcomeFamilies {
    total: &family::MULTI_SOURCE_SOURCES_ATTEMPTED,
    active: None,
    success: &family::MULTI_SOURCE_SOURCES_SUCCESS,
    failure: &family::MULTI_SOURCE_SOURCES_FAILURE,
    duration: &family::MULTI_SOURCE_FETCH_DURATION,
    redirects: None,
};

/// What every recording target does when a request starts and ends.
pub(crate) trait Target: Send + Sync + 'static {
    /// The request started.
    fn start(&self);
    /// The request ended, once per start; `inspection` is the verdict on
    /// its body and how long it took, when the body was inspected.
    /// `trace` is the request's trace context, if it carried one: the
    /// duration's exemplar.
    fn finish(
        &self,
        outcome: Outcome,
        elapsed: Duration,
        inspection: Option<(VastVerdict, Duration)>,
        trace: Option<&TraceContext>,
    );
}

/// A counter's handle, its series shown at 0 from now on: a registered
/// series exists, and recording 0 shows it on backends that show a series
/// on its first record. (Series without a handle: [`Recorder::zero`].)
pub(crate) fn counter_at_zero(
    recorder: &dyn Recorder,
    family: &'static MetricDef,
    labels: &[&str],
) -> Counter {
    let counter = recorder.register_counter(family, labels);
    counter.increment(0);
    counter
}

/// The handles of one label value (a source, a strategy) of an
/// [`OutcomeFamilies`]: every counter exists from the start (at 0); the
/// handles of failures are held from the first failure, durations from
/// their first use.
pub(crate) struct OutcomeSeries {
    recorder: Arc<dyn Recorder>,
    families: &'static OutcomeFamilies,
    label: Arc<str>,
    total: Counter,
    active: Gauge,
    /// `success`, `no_ad`.
    answers: [Counter; 2],
    /// In [`ErrorType::ALL`] order; boxed, as most sources rarely fail.
    failures: OnceLock<Box<[Counter; ErrorType::ALL.len()]>>,
    durations: [OnceLock<Histogram>; FetchResult::ALL.len()],
    /// `vast_redirects_total`: a no-op for families without it.
    redirects: Counter,
}

impl OutcomeSeries {
    pub(crate) fn new(
        recorder: Arc<dyn Recorder>,
        families: &'static OutcomeFamilies,
        label: Arc<str>,
    ) -> Self {
        let labels = [&*label];
        let answers = [Outcome::Ad, Outcome::NoAd].map(|outcome| {
            let result = outcome.result().as_str();
            counter_at_zero(&*recorder, families.success, &[&label, result])
        });
        // Failure series at 0; their handles are taken on the first failure.
        for error in ErrorType::ALL {
            recorder.zero(families.failure, &[&*label, error.as_str()]);
        }
        OutcomeSeries {
            total: counter_at_zero(&*recorder, families.total, &labels),
            active: families.active.map_or_else(Gauge::noop, |active| {
                recorder.register_gauge(active, &labels)
            }),
            redirects: families.redirects.map_or_else(Counter::noop, |redirects| {
                counter_at_zero(&*recorder, redirects, &labels)
            }),
            recorder,
            families,
            label,
            answers,
            failures: OnceLock::new(),
            durations: Default::default(),
        }
    }

    /// The label value.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// `vast_redirects_total` of this source (a no-op where redirects are
    /// not followed).
    pub(crate) fn redirects(&self) -> &Counter {
        &self.redirects
    }

    fn failures(&self) -> &[Counter; ErrorType::ALL.len()] {
        self.failures.get_or_init(|| {
            let (r, f) = (&self.recorder, self.families);
            Box::new(
                ErrorType::ALL.map(|e| r.register_counter(f.failure, &[&self.label, e.as_str()])),
            )
        })
    }

    /// Gives back every handle registered so far; nothing records through
    /// them afterwards.
    fn release(&self) {
        let (r, f, label) = (&*self.recorder, self.families, &*self.label);
        r.release(f.total, &[label]);
        if let Some(active) = f.active {
            r.release(active, &[label]);
        }
        if let Some(redirects) = f.redirects {
            r.release(redirects, &[label]);
        }
        for outcome in [Outcome::Ad, Outcome::NoAd] {
            r.release(f.success, &[label, outcome.result().as_str()]);
        }
        if self.failures.get().is_some() {
            for error in ErrorType::ALL {
                r.release(f.failure, &[label, error.as_str()]);
            }
        }
        for (result, slot) in FetchResult::ALL.iter().zip(&self.durations) {
            if slot.get().is_some() {
                r.release(f.duration, &[label, result.as_str()]);
            }
        }
    }
}

impl Target for OutcomeSeries {
    #[inline]
    fn start(&self) {
        self.total.increment(1);
        self.active.add(1.0);
    }

    #[inline]
    fn finish(
        &self,
        outcome: Outcome,
        elapsed: Duration,
        _: Option<(VastVerdict, Duration)>,
        trace: Option<&TraceContext>,
    ) {
        self.active.add(-1.0);
        match outcome {
            Outcome::Ad => self.answers[0].increment(1),
            Outcome::NoAd => self.answers[1].increment(1),
            Outcome::Failure(e) => self.failures()[e as usize].increment(1),
        }
        let result = outcome.result();
        self.durations[result as usize]
            .get_or_init(|| {
                self.recorder
                    .register_histogram(self.families.duration, &[&self.label, result.as_str()])
            })
            .record_traced(elapsed.as_secs_f64(), trace);
    }
}

/// `vast_errors_total{code}` of one source: made on the first error, as
/// most sources never have one.
#[derive(Default)]
pub(crate) struct VastErrorSeries {
    codes: OnceLock<Box<[OnceLock<Counter>; VastErrorCode::ALL.len()]>>,
}

impl VastErrorSeries {
    pub(crate) fn record(&self, recorder: &dyn Recorder, source: &str, code: VastErrorCode) {
        let index = VastErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .unwrap_or(0);
        self.codes.get_or_init(Box::default)[index]
            .get_or_init(|| {
                recorder.register_counter(&family::VAST_ERRORS, &[source, code.as_str()])
            })
            .increment(1);
    }

    /// Gives back the handles registered so far.
    fn release(&self, recorder: &dyn Recorder, source: &str) {
        let Some(codes) = self.codes.get() else {
            return;
        };
        for (code, slot) in VastErrorCode::ALL.iter().zip(codes.iter()) {
            if slot.get().is_some() {
                recorder.release(&family::VAST_ERRORS, &[source, code.as_str()]);
            }
        }
    }
}

/// The pods one source answers: `vast_ads_returned{source_url}` and
/// `vast_ad_duration_seconds_total{source_url}` (at 0 from the first
/// answer inspected). Recorded by the client layer used alone, and by a
/// fetcher (for the answer that ends a source's chain) otherwise.
pub(crate) struct PodSeries {
    recorder: Arc<dyn Recorder>,
    label: Arc<str>,
    /// Counts milliseconds (the family's unit is seconds).
    seconds: Counter,
    ads: OnceLock<Histogram>,
}

impl PodSeries {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, label: Arc<str>) -> Self {
        let seconds = counter_at_zero(&*recorder, &family::AD_DURATION, &[&label]);
        PodSeries {
            recorder,
            label,
            seconds,
            ads: OnceLock::new(),
        }
    }

    /// An answer was read: its pod counts if it has ads.
    pub(crate) fn answered(&self, inspection: &Inspection) {
        if !matches!(inspection.verdict, VastVerdict::Ads { .. }) {
            return;
        }
        self.ads
            .get_or_init(|| {
                self.recorder
                    .register_histogram(&family::ADS_RETURNED, &[&self.label])
            })
            .record(f64::from(inspection.ads));
        let millis = u64::try_from(inspection.linear.as_millis()).unwrap_or(u64::MAX);
        self.seconds.increment(millis);
        for _ in 0..inspection.bad_durations {
            self.recorder.record_error(RecordError::BadDuration);
        }
    }

    /// Gives back the handles registered so far.
    pub(crate) fn release(&self) {
        let labels = [&*self.label];
        self.recorder.release(&family::AD_DURATION, &labels);
        if self.ads.get().is_some() {
            self.recorder.release(&family::ADS_RETURNED, &labels);
        }
    }
}

/// The client and parser families of one source.
pub(crate) struct ClientSeries {
    request: OutcomeSeries,
    /// Made on the first inspected body (boxed: without inspection, a
    /// source does not carry it).
    parser: OnceLock<Box<ParserSeries>>,
    /// Made on the first inspected body, as the parser's.
    pods: OnceLock<Box<PodSeries>>,
}

/// The parser and IAB families of one source.
#[derive(Default)]
struct ParserSeries {
    errors: VastErrorSeries,
    parsed: OnceLock<Counter>,
    /// `invalid_xml`, `empty_body`.
    failed: [OnceLock<Counter>; 2],
    duration: OnceLock<Histogram>,
}

impl ClientSeries {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, label: &Arc<str>) -> Self {
        ClientSeries {
            request: OutcomeSeries::new(recorder, &CLIENT, label.clone()),
            parser: OnceLock::new(),
            pods: OnceLock::new(),
        }
    }

    /// Gives back every handle of this source to the recorder, once no
    /// request holds it (the source expired): the backend may then drop
    /// the source's series.
    pub(crate) fn release(&self) {
        let r = &*self.request.recorder;
        let label = self.request.label();
        self.request.release();
        if let Some(pods) = self.pods.get() {
            pods.release();
        }
        let Some(parser) = self.parser.get() else {
            return;
        };
        parser.errors.release(r, label);
        if parser.parsed.get().is_some() {
            r.release(&family::PARSER_XML_PARSED, &[label]);
        }
        let failed = [ErrorType::InvalidXml, ErrorType::EmptyBody];
        for (error, slot) in failed.iter().zip(&parser.failed) {
            if slot.get().is_some() {
                r.release(&family::PARSER_XML_FAILED, &[label, error.as_str()]);
            }
        }
        if parser.duration.get().is_some() {
            r.release(&family::PARSER_PARSE_DURATION, &[label]);
        }
    }

    /// Something about this source's request was not recorded as asked.
    pub(crate) fn record_error(&self, error: RecordError) {
        self.request.recorder.record_error(error);
    }

    /// The pod of an answer no fetcher above reads (the layer used alone).
    pub(crate) fn answered(&self, inspection: &Inspection) {
        if !matches!(inspection.verdict, VastVerdict::Ads { .. }) {
            return;
        }
        self.pods
            .get_or_init(|| {
                Box::new(PodSeries::new(
                    self.request.recorder.clone(),
                    self.request.label.clone(),
                ))
            })
            .answered(inspection);
    }

    fn inspected(&self, verdict: VastVerdict, took: Duration) {
        let r = &self.request.recorder;
        let label = self.request.label();
        let parser = self.parser.get_or_init(Box::default);
        match verdict.outcome() {
            Outcome::Failure(error) => {
                let slot = &parser.failed[(error == ErrorType::EmptyBody) as usize];
                slot.get_or_init(|| {
                    r.register_counter(&family::PARSER_XML_FAILED, &[label, error.as_str()])
                })
            }
            Outcome::Ad | Outcome::NoAd => parser
                .parsed
                .get_or_init(|| r.register_counter(&family::PARSER_XML_PARSED, &[label])),
        }
        .increment(1);
        if let Some(code) = verdict.iab_code().and_then(VastErrorCode::from_code) {
            parser.errors.record(&**r, label, code);
        }
        parser
            .duration
            .get_or_init(|| r.register_histogram(&family::PARSER_PARSE_DURATION, &[label]))
            .record(took.as_secs_f64());
    }
}

impl Target for ClientSeries {
    #[inline]
    fn start(&self) {
        self.request.start();
    }

    #[inline]
    fn finish(
        &self,
        outcome: Outcome,
        elapsed: Duration,
        inspection: Option<(VastVerdict, Duration)>,
        trace: Option<&TraceContext>,
    ) {
        self.request.finish(outcome, elapsed, None, trace);
        if let Some((verdict, took)) = inspection {
            self.inspected(verdict, took);
        }
    }
}

/// The tracking family of one event type.
pub(crate) struct EventSeries {
    recorder: Arc<dyn Recorder>,
    event_type: Box<str>,
    sent: OnceLock<Counter>,
    failed: [OnceLock<Counter>; ErrorType::ALL.len()],
    duration: OnceLock<Histogram>,
}

impl EventSeries {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, event_type: &str) -> Self {
        EventSeries {
            recorder,
            event_type: event_type.into(),
            sent: OnceLock::new(),
            failed: Default::default(),
            duration: OnceLock::new(),
        }
    }
}

impl Target for EventSeries {
    fn start(&self) {}

    fn finish(
        &self,
        outcome: Outcome,
        elapsed: Duration,
        _: Option<(VastVerdict, Duration)>,
        trace: Option<&TraceContext>,
    ) {
        let r = &self.recorder;
        let event = &*self.event_type;
        match outcome {
            Outcome::Failure(e) => self.failed[e as usize].get_or_init(|| {
                r.register_counter(&family::TRACKING_EVENT_FAILED, &[event, e.as_str()])
            }),
            Outcome::Ad | Outcome::NoAd => self
                .sent
                .get_or_init(|| r.register_counter(&family::TRACKING_EVENT_SENT, &[event])),
        }
        .increment(1);
        self.duration
            .get_or_init(|| r.register_histogram(&family::TRACKING_REQUEST_DURATION, &[event]))
            .record_traced(elapsed.as_secs_f64(), trace);
    }
}

/// Fallback tiers entered, by depth; depths past the cache are resolved
/// on each use (fetchers with that many tiers are rare).
pub(crate) struct FallbackSeries {
    recorder: Arc<dyn Recorder>,
    depths: [OnceLock<Counter>; 8],
}

impl FallbackSeries {
    pub(crate) fn new(recorder: Arc<dyn Recorder>) -> Self {
        FallbackSeries {
            recorder,
            depths: Default::default(),
        }
    }

    /// The fallback tier `depth` (1, 2, ...) was entered.
    pub(crate) fn entered(&self, depth: usize) {
        let resolve = || {
            let depth = depth.to_string();
            self.recorder
                .register_counter(&family::MULTI_SOURCE_FALLBACK_TRIGGERED, &[&depth])
        };
        match self.depths.get(depth) {
            Some(slot) => slot.get_or_init(resolve).increment(1),
            None => resolve().increment(1),
        }
    }
}

/// Times `f` into an unlabelled duration histogram.
pub(crate) fn timed<T>(histogram: &Histogram, f: impl FnOnce() -> T) -> T {
    let start = quanta::Instant::now();
    let out = f();
    histogram.record(start.elapsed().as_secs_f64());
    out
}

/// What a fetcher records for one originating source beyond its
/// attempts: its wrapper chains, its redirects (at 0 from the start, as
/// the outcome counters) and the pods of the answers that end its chains.
pub(crate) struct ChainSeries {
    recorder: Arc<dyn Recorder>,
    label: Box<str>,
    results: [OnceLock<Counter>; ChainResult::ALL.len()],
    durations: [OnceLock<Histogram>; ChainResult::ALL.len()],
    hops: OnceLock<Histogram>,
    errors: VastErrorSeries,
    redirects: Counter,
    /// Made on the first answer with ads, as the layer's.
    pods: OnceLock<PodSeries>,
}

impl ChainSeries {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, label: &str) -> Self {
        let redirects = counter_at_zero(&*recorder, &family::REDIRECTS, &[label]);
        ChainSeries {
            redirects,
            recorder,
            label: label.into(),
            results: Default::default(),
            durations: Default::default(),
            hops: OnceLock::new(),
            errors: VastErrorSeries::default(),
            pods: OnceLock::new(),
        }
    }

    /// The answer that ends one of this source's chains (or its only
    /// answer) was read: its pod counts if it has ads.
    pub(crate) fn answered(&self, inspection: &Inspection) {
        if !matches!(inspection.verdict, VastVerdict::Ads { .. }) {
            return;
        }
        self.pods
            .get_or_init(|| PodSeries::new(self.recorder.clone(), Arc::from(&*self.label)))
            .answered(inspection);
    }

    /// `vast_redirects_total` of this source.
    pub(crate) fn redirects(&self) -> &Counter {
        &self.redirects
    }

    /// A chain ended with `result` after `hops` hops.
    pub(crate) fn finish(&self, result: ChainResult, hops: usize, elapsed: Duration) {
        let r = &*self.recorder;
        let label = &*self.label;
        let index = result as usize;
        self.results[index]
            .get_or_init(|| r.register_counter(&family::WRAPPER_CHAINS, &[label, result.as_str()]))
            .increment(1);
        self.hops
            .get_or_init(|| r.register_histogram(&family::WRAPPER_CHAIN_HOPS, &[label]))
            .record(hops as f64);
        self.durations[index]
            .get_or_init(|| {
                r.register_histogram(&family::WRAPPER_CHAIN_DURATION, &[label, result.as_str()])
            })
            .record(elapsed.as_secs_f64());
        if let Some(code) = result.code() {
            self.errors.record(r, label, code);
        }
    }
}
