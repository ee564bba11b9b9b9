use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tower_layer::Layer;

use super::service::{State, VastMetricsService};
use crate::classify::Classifier;
use crate::recorder::Recorder;
use crate::source::{AliasError, SourceConfig, SourceHasher, DEFAULT_MAX_SOURCES};
use crate::vast::DEFAULT_INSPECT_LIMIT;

/// Where request latency ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Latency {
    /// At the end of the response body: the VAST is the body.
    #[default]
    ToBodyEnd,
    /// When the response headers arrive.
    ToHeaders,
}

/// The configuration of one [`VastMetricsLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) latency: Latency,
    pub(crate) inspect: bool,
    pub(crate) inspect_limit: usize,
    pub(crate) sources: SourceConfig,
    pub(crate) classify: Option<Classifier>,
    pub(crate) trace_exemplars: bool,
}

/// Layer that records VAST fetches (see the [module docs](crate::layer)).
///
/// `R` is the backend: with one that records ([`Recording`]), the service
/// wraps responses to observe them; with [`NoOpMetrics`](crate::NoOpMetrics)
/// it passes them through untouched (the same types as the inner service,
/// no cost). Builder methods only set configuration; the per-source handles
/// are made when a wrapped service sees a source's first request. Services
/// made by one layer (and its clones) share those handles and the source
/// cap.
///
/// [`Recording`]: crate::recorder::Recording
pub struct VastMetricsLayer<R = crate::PrometheusMetrics> {
    recorder: Arc<dyn Recorder>,
    config: Config,
    state: Arc<OnceLock<Arc<State>>>,
    backend: PhantomData<fn() -> R>,
}

impl<R> Clone for VastMetricsLayer<R> {
    fn clone(&self) -> Self {
        VastMetricsLayer {
            recorder: self.recorder.clone(),
            config: self.config.clone(),
            state: self.state.clone(),
            backend: PhantomData,
        }
    }
}

impl<R> fmt::Debug for VastMetricsLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastMetricsLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for VastMetricsLayer<crate::NoOpMetrics> {
    /// A layer recording into [`NoOpMetrics`](crate::NoOpMetrics): it
    /// passes requests through untouched.
    fn default() -> Self {
        Self::new(crate::NoOpMetrics)
    }
}

impl<R: Recorder> VastMetricsLayer<R> {
    /// A layer that records into `recorder`:
    /// [`PrometheusMetrics`](crate::PrometheusMetrics),
    /// [`NoOpMetrics`](crate::NoOpMetrics), or any
    /// [`MetricsCollector`](crate::MetricsCollector) through
    /// [`ByName`](crate::recorder::ByName).
    pub fn new(recorder: R) -> Self {
        if recorder.is_enabled() {
            // The first read calibrates the clock (once per process, up to
            // 200 ms): do it here, not on the first request.
            let _ = quanta::Instant::now();
        }
        VastMetricsLayer {
            recorder: Arc::new(recorder),
            config: Config {
                latency: Latency::ToBodyEnd,
                inspect: true,
                inspect_limit: DEFAULT_INSPECT_LIMIT,
                sources: SourceConfig::new(DEFAULT_MAX_SOURCES),
                classify: None,
                trace_exemplars: true,
            },
            state: Arc::default(),
            backend: PhantomData,
        }
    }
}

impl<R> VastMetricsLayer<R> {
    /// A new configuration: no longer shares handles with earlier clones.
    fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self.state = Arc::default();
        self
    }

    /// Labels every request of this layer `name`: for a layer that wraps one
    /// upstream. Defaults to none (labels come from the URL).
    pub fn source_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        self.configure(|c| c.sources.fixed = Some(name))
    }

    /// Labels requests to `url` (normalised: query, fragment and userinfo do
    /// not matter) `alias` instead of a hash. Aliases do not count against
    /// the cap; a later alias of the same URL wins. Defaults to none.
    ///
    /// # Errors
    ///
    /// An URL that does not parse, or has no host, is an [`AliasError`]:
    /// no request could ever match it.
    pub fn source_alias(
        self,
        url: &str,
        alias: impl Into<Cow<'static, str>>,
    ) -> Result<Self, AliasError> {
        let mut sources = self.config.sources.clone();
        sources.alias(url, alias.into())?;
        Ok(self.configure(|c| c.sources = sources))
    }

    /// Keys the source hash with a secret, so labels cannot be matched with
    /// hashes of known URLs. Defaults to the all-zero key.
    pub fn hash_key(self, key: [u8; 16]) -> Self {
        self.configure(|c| c.sources.hasher = SourceHasher::keyed(key))
    }

    /// Caps distinct source labels; past it, sources are labelled `other`
    /// and counted in `vast_metrics_errors_total{reason="source_label_overflow"}`,
    /// until idle sources expire and free their slots (see
    /// [`source_idle_expiry`](Self::source_idle_expiry)). Defaults to
    /// [`DEFAULT_MAX_SOURCES`].
    pub fn max_sources(self, max: usize) -> Self {
        self.configure(|c| c.sources.max = max)
    }

    /// Forgets a source (a hash label or a [`SourceLabel`]) after it has
    /// been idle for `idle`: no request started, none in flight. Its slot
    /// under [`max_sources`](Self::max_sources) is freed, so new sources get
    /// labels again instead of `other`, and its series are released to the
    /// backend, which may drop them ([`PrometheusMetrics`] does: they leave
    /// the exposition and their memory is freed). Aliases, the
    /// [`source_name`](Self::source_name) and `other` never expire.
    ///
    /// A source seen again after it expired starts from zero: Prometheus
    /// sees a counter reset (which `rate()` and `increase()` handle) and
    /// its gauge and histograms start over. Idleness is measured on a
    /// coarse clock: a source expires between `idle` and `idle` plus an
    /// eighth of it (at most 1 s more), when a new source arrives or a
    /// request is made after that.
    ///
    /// Counts recorded after the last scrape before a source expires are
    /// not seen: keep the expiry well above the scrape interval and the
    /// request timeout. Only backends that drop released series
    /// ([`Recorder::drops_released`], as [`PrometheusMetrics`] does) let
    /// sources expire; with others the cap stays the bound on their series.
    ///
    /// Defaults to [`DEFAULT_SOURCE_IDLE_EXPIRY`](crate::source::DEFAULT_SOURCE_IDLE_EXPIRY) (10 minutes);
    /// [`Duration::MAX`] turns expiry off (sources are then kept for the
    /// life of the layer, and past the cap new ones are `other`).
    ///
    /// [`SourceLabel`]: crate::source::SourceLabel
    /// [`PrometheusMetrics`]: crate::PrometheusMetrics
    pub fn source_idle_expiry(self, idle: Duration) -> Self {
        self.configure(|c| c.sources.idle_expiry = (idle != Duration::MAX).then_some(idle))
    }

    /// Whether 2xx bodies are inspected as VAST. Defaults to `true`; when
    /// off, a 2xx is `success`.
    pub fn inspect_vast(self, inspect: bool) -> Self {
        self.configure(|c| c.inspect = inspect)
    }

    /// Bytes of a body retained for inspection; past it the verdict is the
    /// HTTP one (`success`). Defaults to [`DEFAULT_INSPECT_LIMIT`] (1 MiB).
    pub fn inspect_limit(self, bytes: usize) -> Self {
        self.configure(|c| c.inspect_limit = bytes)
    }

    /// Whether a request's W3C `traceparent` header becomes the exemplar
    /// of its duration bucket (shown by backends that keep exemplars, as
    /// [`PrometheusMetrics`](crate::PrometheusMetrics) does in its
    /// OpenMetrics exposition). Defaults to `true`; the header is looked
    /// up only on requests that have headers.
    pub fn trace_exemplars(self, on: bool) -> Self {
        self.configure(|c| c.trace_exemplars = on)
    }

    /// Where latency ends. Defaults to [`Latency::ToBodyEnd`].
    pub fn latency(self, latency: Latency) -> Self {
        self.configure(|c| c.latency = latency)
    }

    /// Classifies the inner service's errors of types the crate does not
    /// know (see [`Classifier`]). Defaults to none: known types are
    /// classified by [`classify_error`](crate::classify::classify_error),
    /// others are `other`.
    pub fn classify_errors(self, classifier: Classifier) -> Self {
        self.configure(|c| c.classify = Some(classifier))
    }

    /// The shared state, made on first use; `None` when nothing records.
    pub(crate) fn state(&self) -> Option<Arc<State>> {
        if !self.recorder.is_enabled() {
            return None;
        }
        let state = self
            .state
            .get_or_init(|| Arc::new(State::new(self.recorder.clone(), &self.config)));
        Some(state.clone())
    }
}

impl<S, R> Layer<S> for VastMetricsLayer<R> {
    type Service = VastMetricsService<S, R>;

    #[inline]
    fn layer(&self, inner: S) -> Self::Service {
        VastMetricsService::new(inner, self.state())
    }
}
