//! [`Recorder`]: how the layer records, with handles resolved once per
//! source.
//!
//! The generic [`MetricsCollector`] API resolves names and labels on every
//! call. The layer instead asks its recorder once per source (and once per
//! tracking event type) for a handle, caches it, and records through it:
//! with [`PrometheusMetrics`] a few atomic operations per request, with
//! [`NoOpMetrics`] nothing at all. Any other [`MetricsCollector`] plugs in
//! through [`ByName`].
//!
//! [`NoOpMetrics`]: crate::NoOpMetrics
//!
//! # Example
//!
//! ```
//! use vast_metrics::recorder::{ByName, Recorder, SourceRecorder};
//! use vast_metrics::classify::Outcome;
//! use vast_metrics::{NoOpMetrics, PrometheusMetrics};
//!
//! let metrics = PrometheusMetrics::new();
//! let source = metrics.source("primary");
//! source.start();
//! source.finish(Outcome::Ad, std::time::Duration::from_millis(12));
//! assert!(metrics.encode().contains(r#"vast_client_request_success_total{source_url="primary",result="success"} 1"#));
//!
//! // A backend of your own, called by name and labels on every record.
//! let _custom = ByName::new(std::sync::Arc::new(NoOpMetrics));
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Gauge, Histogram, IntCounter};

use crate::classify::{ErrorType, FetchResult, Outcome};
use crate::collector::MetricsCollector;
use crate::layer::{VastMetricsLayer, VastMetricsService};
use crate::names::{MetricLabels, VastMetrics};
use crate::prometheus::{PrometheusMetrics, RecordError, Shape};
use crate::vast::VastVerdict;

/// A metrics backend for the layer.
pub trait Recorder: Clone + Send + Sync + 'static {
    /// Handles of one source.
    type Source: SourceRecorder;
    /// Handles of one tracking event type.
    type Event: EventRecorder;

    /// `false` when recording does nothing: the layer then skips source
    /// lookup and clock reads too.
    const ENABLED: bool = true;

    /// What [`VastMetricsLayer`] makes of an inner service: a
    /// [`VastMetricsService`], or for [`NoOpMetrics`](crate::NoOpMetrics) the inner service
    /// itself, so that the no-op layer costs nothing by construction.
    type Layered<S>;

    /// Wraps `inner` for `layer`.
    fn layered<S>(layer: &VastMetricsLayer<Self>, inner: S) -> Self::Layered<S>;

    /// Handles for the source labelled `label`; called once per source.
    fn source(&self, label: &str) -> Self::Source;

    /// Handles for a tracking event type; called once per type.
    fn event(&self, event_type: &str) -> Self::Event;

    /// A label was past the cap and recorded as `other`.
    fn label_overflow(&self);
}

/// Records the client and parser families of one source.
pub trait SourceRecorder: Clone + Send + Sync + 'static {
    /// A request started: total +1, active +1.
    fn start(&self);
    /// The request ended: active -1, the outcome counted, the duration
    /// observed. Called exactly once per `start`.
    fn finish(&self, outcome: Outcome, elapsed: Duration);
    /// The body was inspected (the parser family).
    fn inspected(&self, verdict: VastVerdict, elapsed: Duration);
}

/// Records the tracking family of one event type.
pub trait EventRecorder: Clone + Send + Sync + 'static {
    /// A tracking request ended; `failure` is `None` when it was sent.
    fn finish(&self, failure: Option<ErrorType>, elapsed: Duration);
}

impl Recorder for crate::NoOpMetrics {
    type Source = Self;
    type Event = Self;
    const ENABLED: bool = false;
    type Layered<S> = S;

    #[inline(always)]
    fn layered<S>(_: &VastMetricsLayer<Self>, inner: S) -> S {
        inner
    }
    #[inline(always)]
    fn source(&self, _: &str) -> Self {
        *self
    }
    #[inline(always)]
    fn event(&self, _: &str) -> Self {
        *self
    }
    #[inline(always)]
    fn label_overflow(&self) {}
}

impl SourceRecorder for crate::NoOpMetrics {
    #[inline(always)]
    fn start(&self) {}
    #[inline(always)]
    fn finish(&self, _: Outcome, _: Duration) {}
    #[inline(always)]
    fn inspected(&self, _: VastVerdict, _: Duration) {}
}

impl EventRecorder for crate::NoOpMetrics {
    #[inline(always)]
    fn finish(&self, _: Option<ErrorType>, _: Duration) {}
}

/// Index of an outcome in [`PromSource::outcomes`]: successes first, then
/// failures in [`ErrorType::ALL`] order.
fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ad => 0,
        Outcome::NoAd => 1,
        Outcome::Failure(e) => 2 + e as usize,
    }
}

const OUTCOMES: usize = 2 + ErrorType::ALL.len();

/// Prometheus handles of one source. The total and active series exist from
/// the first request; outcome series appear when first recorded.
#[derive(Clone)]
pub struct PromSource(Arc<PromSourceInner>);

struct PromSourceInner {
    metrics: PrometheusMetrics,
    label: Box<str>,
    total: Option<IntCounter>,
    active: Option<Gauge>,
    outcomes: [OnceLock<Option<IntCounter>>; OUTCOMES],
    durations: [OnceLock<Option<Histogram>>; FetchResult::ALL.len()],
    parsed: OnceLock<Option<IntCounter>>,
    parse_failed: [OnceLock<Option<IntCounter>>; 2],
    parse_duration: OnceLock<Option<Histogram>>,
}

impl std::fmt::Debug for PromSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PromSource").field(&self.0.label).finish()
    }
}

impl PrometheusMetrics {
    /// Resolves one series; failures are counted, never raised.
    fn resolve<T>(
        &self,
        dotted: &str,
        shape: Shape,
        labels: &[(&str, &str)],
        pick: fn(crate::prometheus::Series) -> T,
    ) -> Option<T> {
        match self.family(dotted, shape).and_then(|f| f.series(labels)) {
            Ok(series) => Some(pick(series)),
            Err(reason) => {
                self.count_error(reason);
                None
            }
        }
    }

    fn counter(&self, dotted: &str, labels: &[(&str, &str)]) -> Option<IntCounter> {
        self.resolve(
            dotted,
            Shape::Counter,
            labels,
            crate::prometheus::Series::counter,
        )
    }

    fn timing_histogram(&self, dotted: &str, labels: &[(&str, &str)]) -> Option<Histogram> {
        self.resolve(
            dotted,
            Shape::Timing,
            labels,
            crate::prometheus::Series::histogram,
        )
    }
}

impl Recorder for PrometheusMetrics {
    type Source = PromSource;
    type Event = PromEvent;
    type Layered<S> = VastMetricsService<S, Self>;

    fn layered<S>(layer: &VastMetricsLayer<Self>, inner: S) -> Self::Layered<S> {
        VastMetricsService::from_layer(layer, inner)
    }

    fn source(&self, label: &str) -> PromSource {
        let labels = [(MetricLabels::SOURCE_URL, label)];
        PromSource(Arc::new(PromSourceInner {
            total: self.counter(VastMetrics::CLIENT_REQUEST_TOTAL, &labels),
            active: self.resolve(
                VastMetrics::CLIENT_ACTIVE_REQUESTS,
                Shape::Gauge,
                &labels,
                crate::prometheus::Series::gauge,
            ),
            metrics: self.clone(),
            label: label.into(),
            outcomes: Default::default(),
            durations: Default::default(),
            parsed: OnceLock::new(),
            parse_failed: Default::default(),
            parse_duration: OnceLock::new(),
        }))
    }

    fn event(&self, event_type: &str) -> PromEvent {
        PromEvent(Arc::new(PromEventInner {
            metrics: self.clone(),
            event_type: event_type.into(),
            sent: OnceLock::new(),
            failed: Default::default(),
            duration: OnceLock::new(),
        }))
    }

    fn label_overflow(&self) {
        self.count_error(RecordError::SourceLabelOverflow);
    }
}

impl SourceRecorder for PromSource {
    #[inline]
    fn start(&self) {
        if let Some(total) = &self.0.total {
            total.inc();
        }
        if let Some(active) = &self.0.active {
            active.inc();
        }
    }

    #[inline]
    fn finish(&self, outcome: Outcome, elapsed: Duration) {
        let s = &*self.0;
        if let Some(active) = &s.active {
            active.dec();
        }
        let counter = s.outcomes[outcome_index(outcome)].get_or_init(|| {
            let source = (MetricLabels::SOURCE_URL, &*s.label);
            match outcome {
                Outcome::Failure(e) => s.metrics.counter(
                    VastMetrics::CLIENT_REQUEST_FAILURE,
                    &[source, (MetricLabels::ERROR_TYPE, e.as_str())],
                ),
                _ => s.metrics.counter(
                    VastMetrics::CLIENT_REQUEST_SUCCESS,
                    &[source, (MetricLabels::RESULT, outcome.result().as_str())],
                ),
            }
        });
        if let Some(counter) = counter {
            counter.inc();
        }
        let result = outcome.result();
        let histogram = s.durations[result as usize].get_or_init(|| {
            s.metrics.timing_histogram(
                VastMetrics::CLIENT_REQUEST_DURATION_MS,
                &[
                    (MetricLabels::SOURCE_URL, &*s.label),
                    (MetricLabels::RESULT, result.as_str()),
                ],
            )
        });
        if let Some(histogram) = histogram {
            histogram.observe(elapsed.as_secs_f64());
        }
    }

    fn inspected(&self, verdict: VastVerdict, elapsed: Duration) {
        let s = &*self.0;
        let source = (MetricLabels::SOURCE_URL, &*s.label);
        let counter = match verdict {
            VastVerdict::Ads { .. } | VastVerdict::NoAd => s
                .parsed
                .get_or_init(|| s.metrics.counter(VastMetrics::PARSER_XML_PARSED, &[source])),
            VastVerdict::InvalidXml
            | VastVerdict::NotVast
            | VastVerdict::UnsupportedVersion
            | VastVerdict::Empty => {
                let error = verdict.outcome_error();
                s.parse_failed[(error == ErrorType::EmptyBody) as usize].get_or_init(|| {
                    s.metrics.counter(
                        VastMetrics::PARSER_XML_FAILED,
                        &[source, (MetricLabels::ERROR_TYPE, error.as_str())],
                    )
                })
            }
        };
        if let Some(counter) = counter {
            counter.inc();
        }
        let histogram = s.parse_duration.get_or_init(|| {
            s.metrics
                .timing_histogram(VastMetrics::PARSER_PARSE_DURATION, &[source])
        });
        if let Some(histogram) = histogram {
            histogram.observe(elapsed.as_secs_f64());
        }
    }
}

impl VastVerdict {
    fn outcome_error(self) -> ErrorType {
        match self.outcome() {
            Outcome::Failure(e) => e,
            _ => ErrorType::Other,
        }
    }
}

/// Prometheus handles of one tracking event type.
#[derive(Clone)]
pub struct PromEvent(Arc<PromEventInner>);

struct PromEventInner {
    metrics: PrometheusMetrics,
    event_type: Box<str>,
    sent: OnceLock<Option<IntCounter>>,
    failed: [OnceLock<Option<IntCounter>>; ErrorType::ALL.len()],
    duration: OnceLock<Option<Histogram>>,
}

impl std::fmt::Debug for PromEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PromEvent")
            .field(&self.0.event_type)
            .finish()
    }
}

impl EventRecorder for PromEvent {
    fn finish(&self, failure: Option<ErrorType>, elapsed: Duration) {
        let s = &*self.0;
        let event = (MetricLabels::EVENT_TYPE, &*s.event_type);
        let counter = match failure {
            None => s.sent.get_or_init(|| {
                s.metrics
                    .counter(VastMetrics::TRACKING_EVENT_SENT, &[event])
            }),
            Some(e) => s.failed[e as usize].get_or_init(|| {
                s.metrics.counter(
                    VastMetrics::TRACKING_EVENT_FAILED,
                    &[event, (MetricLabels::ERROR_TYPE, e.as_str())],
                )
            }),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
        let histogram = s.duration.get_or_init(|| {
            s.metrics
                .timing_histogram(VastMetrics::TRACKING_REQUEST_DURATION, &[event])
        });
        if let Some(histogram) = histogram {
            histogram.observe(elapsed.as_secs_f64());
        }
    }
}

/// Any [`MetricsCollector`] as a [`Recorder`]: every record is a call by
/// name and label pairs, as in the original system. Slower than the
/// built-in backends, but works with StatsD, Datadog, OpenTelemetry.
///
/// The collector runs on the request path. A collector that panics cannot
/// take the request down: the panic is caught, the record dropped, the
/// response delivered, and the panic counted ([`ByName::panics`]). A slow
/// collector slows every request by its delay, so keep its calls
/// non-blocking (a UDP send, a channel).
#[derive(Clone, Debug, Default)]
pub struct ByName<C> {
    collector: C,
    panics: Arc<AtomicU64>,
}

impl<C> ByName<C> {
    /// Records through `collector`.
    pub fn new(collector: C) -> Self {
        ByName {
            collector,
            panics: Arc::default(),
        }
    }

    /// The collector.
    pub fn get_ref(&self) -> &C {
        &self.collector
    }

    /// Collector calls that panicked and were dropped.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

/// Handles of one [`ByName`] source or event type: its label.
#[derive(Clone, Debug)]
pub struct ByNameHandle<C> {
    collector: C,
    label: Arc<str>,
    panics: Arc<AtomicU64>,
}

impl<C: MetricsCollector> ByNameHandle<C> {
    /// Runs `record`; a panic in the collector is caught and counted.
    fn guarded(&self, record: impl FnOnce(&C, (&'static str, &str))) {
        let call =
            AssertUnwindSafe(|| record(&self.collector, (MetricLabels::SOURCE_URL, &*self.label)));
        if catch_unwind(call).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<C: MetricsCollector + Clone + 'static> Recorder for ByName<C> {
    type Source = ByNameHandle<C>;
    type Event = ByNameHandle<C>;
    type Layered<S> = VastMetricsService<S, Self>;

    fn layered<S>(layer: &VastMetricsLayer<Self>, inner: S) -> Self::Layered<S> {
        VastMetricsService::from_layer(layer, inner)
    }

    fn source(&self, label: &str) -> Self::Source {
        ByNameHandle {
            collector: self.collector.clone(),
            label: label.into(),
            panics: self.panics.clone(),
        }
    }

    fn event(&self, event_type: &str) -> Self::Event {
        self.source(event_type)
    }

    fn label_overflow(&self) {
        let handle = self.source("");
        handle.guarded(|c, _| c.increment("vast.metrics.source_label_overflow", 1, &[]));
    }
}

impl<C: MetricsCollector + Clone + 'static> SourceRecorder for ByNameHandle<C> {
    fn start(&self) {
        self.guarded(|c, source| {
            c.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &[source]);
            c.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, 1.0, &[source]);
        });
    }

    fn finish(&self, outcome: Outcome, elapsed: Duration) {
        self.guarded(|c, source| {
            c.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, -1.0, &[source]);
            let result = (MetricLabels::RESULT, outcome.result().as_str());
            match outcome {
                Outcome::Failure(e) => c.increment(
                    VastMetrics::CLIENT_REQUEST_FAILURE,
                    1,
                    &[source, (MetricLabels::ERROR_TYPE, e.as_str())],
                ),
                _ => c.increment(VastMetrics::CLIENT_REQUEST_SUCCESS, 1, &[source, result]),
            }
            c.timing(
                VastMetrics::CLIENT_REQUEST_DURATION_MS,
                elapsed.as_secs_f64() * 1000.0,
                &[source, result],
            );
        });
    }

    fn inspected(&self, verdict: VastVerdict, elapsed: Duration) {
        self.guarded(|c, source| {
            if verdict.is_vast() {
                c.increment(VastMetrics::PARSER_XML_PARSED, 1, &[source]);
            } else {
                let error = (MetricLabels::ERROR_TYPE, verdict.outcome_error().as_str());
                c.increment(VastMetrics::PARSER_XML_FAILED, 1, &[source, error]);
            }
            c.timing(
                VastMetrics::PARSER_PARSE_DURATION,
                elapsed.as_secs_f64() * 1000.0,
                &[source],
            );
        });
    }
}

impl<C: MetricsCollector + Clone + 'static> EventRecorder for ByNameHandle<C> {
    fn finish(&self, failure: Option<ErrorType>, elapsed: Duration) {
        self.guarded(|c, (_, label)| {
            let event = (MetricLabels::EVENT_TYPE, label);
            match failure {
                None => c.increment(VastMetrics::TRACKING_EVENT_SENT, 1, &[event]),
                Some(e) => c.increment(
                    VastMetrics::TRACKING_EVENT_FAILED,
                    1,
                    &[event, (MetricLabels::ERROR_TYPE, e.as_str())],
                ),
            }
            c.timing(
                VastMetrics::TRACKING_REQUEST_DURATION,
                elapsed.as_secs_f64() * 1000.0,
                &[event],
            );
        });
    }
}
