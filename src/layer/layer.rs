use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use http::{Extensions, Uri};
use tower_layer::Layer;

use crate::recorder::Recorder;
use crate::source::{
    label_of_hash, Lookup, SourceHasher, SourceLabel, SourceTable, DEFAULT_MAX_SOURCES,
    OTHER_SOURCE,
};
use crate::tracking::{TrackingEvent, MAX_EVENT_TYPES};
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

/// What the layer records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// VAST fetches: the client and parser families, per source.
    #[default]
    Client,
    /// Tracking pixels: the tracking family, per event type.
    Tracking,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) latency: Latency,
    pub(crate) inspect: bool,
    pub(crate) inspect_limit: usize,
    max_sources: usize,
    hasher: SourceHasher,
    fixed_name: Option<Cow<'static, str>>,
    default_event: Cow<'static, str>,
    aliases: Vec<(Uri, Cow<'static, str>)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Client,
            latency: Latency::ToBodyEnd,
            inspect: true,
            inspect_limit: DEFAULT_INSPECT_LIMIT,
            max_sources: DEFAULT_MAX_SOURCES,
            hasher: SourceHasher::default(),
            fixed_name: None,
            default_event: Cow::Borrowed("unknown"),
            aliases: Vec::new(),
        }
    }
}

/// What every service of one layer shares: the configuration and the
/// per-source handles.
pub(crate) struct State<R: Recorder> {
    pub(crate) recorder: R,
    pub(crate) config: Config,
    fixed: Option<R::Source>,
    sources: SourceTable<R::Source>,
    other: OnceLock<R::Source>,
    events: SourceTable<R::Event>,
    other_event: OnceLock<R::Event>,
}

impl<R: Recorder> State<R> {
    fn new(recorder: R, config: Config) -> Self {
        let fixed = config
            .fixed_name
            .as_deref()
            .map(|name| recorder.source(name));
        let sources = SourceTable::new(config.max_sources);
        for (uri, alias) in &config.aliases {
            if let Some(hash) = config.hasher.hash_uri(uri) {
                sources.preset(hash, recorder.source(alias));
            }
        }
        State {
            fixed,
            sources,
            other: OnceLock::new(),
            events: SourceTable::new(MAX_EVENT_TYPES),
            other_event: OnceLock::new(),
            recorder,
            config,
        }
    }

    /// The handles of a request's source; no allocation once it is known.
    pub(crate) fn source(&self, url: &dyn UrlHash, extensions: Option<&Extensions>) -> R::Source {
        let lookup = if let Some(label) = extensions.and_then(|e| e.get::<SourceLabel>()) {
            self.sources
                .by_name(label.as_str(), || self.recorder.source(label.as_str()))
        } else if let Some(fixed) = &self.fixed {
            return fixed.clone();
        } else if let Some(hash) = url.hash_with(&self.config.hasher) {
            self.sources
                .by_hash(hash, || self.recorder.source(&label_of_hash(hash)))
        } else {
            return self.other_source();
        };
        match lookup {
            Lookup::Found(source) | Lookup::Added(source) => source,
            Lookup::Overflow => {
                self.recorder.label_overflow();
                self.other_source()
            }
        }
    }

    fn other_source(&self) -> R::Source {
        self.other
            .get_or_init(|| self.recorder.source(OTHER_SOURCE))
            .clone()
    }

    /// The handles of a tracking request's event type.
    pub(crate) fn event(&self, extensions: Option<&Extensions>) -> R::Event {
        let name = extensions
            .and_then(|e| e.get::<TrackingEvent>())
            .map_or(self.config.default_event.as_ref(), TrackingEvent::as_str);
        match self.events.by_name(name, || self.recorder.event(name)) {
            Lookup::Found(event) | Lookup::Added(event) => event,
            Lookup::Overflow => {
                self.recorder.label_overflow();
                self.other_event
                    .get_or_init(|| self.recorder.event(OTHER_SOURCE))
                    .clone()
            }
        }
    }
}

/// A request URL that can be hashed into a source label.
pub(crate) trait UrlHash {
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64>;
}

impl UrlHash for Uri {
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64> {
        hasher.hash_uri(self)
    }
}

/// Layer that records VAST fetches (see the [module docs](crate::layer)).
///
/// Clones share the per-source handles and the source cap.
pub struct VastMetricsLayer<R: Recorder = crate::NoOpMetrics> {
    state: Arc<State<R>>,
}

impl<R: Recorder> Clone for VastMetricsLayer<R> {
    fn clone(&self) -> Self {
        VastMetricsLayer {
            state: self.state.clone(),
        }
    }
}

impl<R: Recorder + fmt::Debug> fmt::Debug for VastMetricsLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastMetricsLayer")
            .field("recorder", &self.state.recorder)
            .field("config", &self.state.config)
            .finish()
    }
}

impl Default for VastMetricsLayer<crate::NoOpMetrics> {
    fn default() -> Self {
        Self::new(crate::NoOpMetrics)
    }
}

impl<R: Recorder> VastMetricsLayer<R> {
    /// A layer that records into `recorder`: [`PrometheusMetrics`](crate::PrometheusMetrics),
    /// [`NoOpMetrics`](crate::NoOpMetrics), or any
    /// [`MetricsCollector`](crate::MetricsCollector) through
    /// [`ByName`](crate::recorder::ByName).
    pub fn new(recorder: R) -> Self {
        if R::ENABLED {
            // The first read calibrates the clock (once per process, up to
            // 200 ms): do it here, not on the first request.
            let _ = quanta::Instant::now();
        }
        VastMetricsLayer {
            state: Arc::new(State::new(recorder, Config::default())),
        }
    }

    fn configure(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.state.config.clone();
        change(&mut config);
        VastMetricsLayer {
            state: Arc::new(State::new(self.state.recorder.clone(), config)),
        }
    }

    /// Labels every request of this layer `name`: for a layer that wraps one
    /// upstream. Defaults to none (labels come from the URL).
    pub fn source_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        self.configure(|c| c.fixed_name = Some(name))
    }

    /// Labels requests to `url` (normalised: query, fragment and userinfo do
    /// not matter) `alias` instead of a hash. Aliases do not count against
    /// the cap. Defaults to none. An URL that does not parse is ignored.
    pub fn source_alias(self, url: &str, alias: impl Into<Cow<'static, str>>) -> Self {
        let alias = alias.into();
        match url.parse::<Uri>() {
            Ok(uri) => self.configure(|c| c.aliases.push((uri, alias))),
            Err(_) => self,
        }
    }

    /// Keys the source hash with a secret, so labels cannot be matched with
    /// hashes of known URLs. Defaults to the all-zero key.
    pub fn hash_key(self, key: [u8; 16]) -> Self {
        self.configure(|c| c.hasher = SourceHasher::keyed(key))
    }

    /// Caps distinct source labels; past it, sources are labelled `other`
    /// and counted in `vast_metrics_errors_total{reason="source_label_overflow"}`.
    /// Defaults to [`DEFAULT_MAX_SOURCES`].
    pub fn max_sources(self, max: usize) -> Self {
        self.configure(|c| c.max_sources = max)
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

    /// Where latency ends. Defaults to [`Latency::ToBodyEnd`].
    pub fn latency(self, latency: Latency) -> Self {
        self.configure(|c| c.latency = latency)
    }

    /// Records tracking pixels instead of VAST fetches: the tracking family,
    /// per [`TrackingEvent`] in the request's extensions (else the
    /// [default event](Self::default_event)), ended at the response headers,
    /// with no body inspection. Defaults to off.
    pub fn tracking(self) -> Self {
        self.configure(|c| c.mode = Mode::Tracking)
    }

    /// Event type of tracking requests without a [`TrackingEvent`] (reqwest
    /// requests carry no extensions). Defaults to `unknown`.
    pub fn default_event(self, event: TrackingEvent) -> Self {
        self.configure(|c| c.default_event = Cow::Owned(event.as_str().to_owned()))
    }
}

impl<S, R: Recorder> Layer<S> for VastMetricsLayer<R> {
    /// A [`VastMetricsService`](super::VastMetricsService); with [`NoOpMetrics`](crate::NoOpMetrics),
    /// `S` itself.
    type Service = R::Layered<S>;

    #[inline]
    fn layer(&self, inner: S) -> Self::Service {
        R::layered(self, inner)
    }
}

impl<R: Recorder> VastMetricsLayer<R> {
    pub(crate) fn state(&self) -> &Arc<State<R>> {
        &self.state
    }
}
