//! [`MultiSource`]: VAST fetched from tiers of ad sources, with fallbacks,
//! and [`MultiSourceMetricsLayer`] for a fetcher of your own.
//!
//! A [`MultiSource`] is a tower `Service<VastRequest>` that fetches VAST
//! from a primary tier of [`Source`]s, then from fallback tiers in order,
//! until a source fills: answers VAST whose ad resolves to an `<InLine>`,
//! following HTTP redirects and wrapper chains ([`crate::wrapper`]). Each
//! attempt goes through an inner HTTP service, normally hyper-util's client
//! wrapped in [`VastMetricsLayer`](crate::VastMetricsLayer), with a
//! [`SourceLabel`](crate::source::SourceLabel) of the source's name in its
//! extensions, so the per-source client metrics come along.
//!
//! Strategies ([`Strategy`]), per tier:
//!
//! - `parallel`: every source at once; the earliest listed fill wins, as
//!   soon as every source listed before it has answered: the sources listed
//!   after it are then cut short (`cancelled`), so a slow, lower-priority
//!   source does not hold the fetch up;
//! - `sequential`: one source after the other until one fills;
//! - `race`: every source at once; the first fill wins and the others are
//!   cancelled (dropped).
//!
//! A tier without a fill moves on to the next. Every attempt has a
//! per-source timeout, the whole fetch an overall deadline. The response is
//! the winning VAST with a [`FetchReport`] in its extensions; when no
//! source fills, the error ([`MultiSourceError`]) carries the report.
//!
//! # Metrics
//!
//! Through any [`Recorder`](crate::Recorder) (Prometheus, or any
//! [`MetricsCollector`](crate::MetricsCollector) by the dotted names of
//! [`VastMetrics`](crate::VastMetrics) through
//! [`ByName`](crate::recorder::ByName)):
//!
//! | family | labels | when |
//! |---|---|---|
//! | `vast_multi_source_requests_total` | `fetch_strategy` | a fetch starts |
//! | `vast_multi_source_active_requests` | `fetch_strategy` | +1 at the start, -1 at the end (also when the fetch is dropped) |
//! | `vast_multi_source_requests_success_total` | `fetch_strategy`, `result` | a fill (`success`), or no fill with at least one valid no-ad answer (`no_ad`) |
//! | `vast_multi_source_requests_failure_total` | `fetch_strategy`, `error_type` | no VAST at all: the last attempt's error, `timeout` past the deadline, `cancelled` when dropped |
//! | `vast_multi_source_latency_seconds` | `fetch_strategy`, `result` | every fetch |
//! | `vast_multi_source_sources` (`sources.count`) | `fetch_strategy` | + the number of sources when built, - when the last clone is dropped |
//! | `vast_multi_source_fallback_triggered_total` | `fallback_depth` | once per fallback tier entered (`1`, `2`, ...) |
//! | `vast_multi_source_sources_attempted_total` | `source_url` | an attempt starts |
//! | `vast_multi_source_sources_success_total` | `source_url`, `result` | an attempt got VAST (`success` or `no_ad`) |
//! | `vast_multi_source_sources_failure_total` | `source_url`, `error_type` | an attempt failed; race losers and lower-priority parallel sources cut short are `cancelled` (left out of fill and error ratios), attempts cut by a time-out `timeout`, a 3xx not followed `redirect`; wrapper chains that do not resolve: see [`crate::wrapper`] |
//! | `vast_multi_source_fetch_duration_seconds` | `source_url`, `result` | every attempt |
//! | `vast_redirects_total` | `source_url` | every HTTP redirect an attempt follows, the tag's and its wrapper hops' (see [`crate::wrapper#redirects`]); at 0 from the source's first attempt |
//! | `vast_multi_source_parse_duration_seconds` | (none) | the VAST inspection of each 2xx body |
//! | `vast_multi_source_filter_duration_seconds` | (none) | the [filter](MultiSourceBuilder::filter), when set |
//!
//! Every attempt is recorded exactly once, so after quiescence
//! `attempted == success + failure` per source and
//! `total == success + failure` per strategy, with every active gauge at 0.
//!
//! No fill with at least one valid no-ad answer is a successful fetch of an
//! empty VAST (`result="no_ad"`), as for the client family, yet the service
//! returns [`MultiSourceError::NoFill`]: the caller has no ad to play.
//!
//! A per-source timeout or the overall deadline drops the attempt; it is a
//! `timeout` in both families, since each attempt carries a
//! [`Deadline`](crate::classify::Deadline) that tells the client layer
//! underneath why it was dropped.
//!
//! # Your own fetcher
//!
//! A fetcher of your own gets the request-level, fallback and per-source
//! families from [`MultiSourceMetricsLayer`]: put a [`FetchReport`] into the
//! extensions of each response, and the layer records from it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{service_fn, Service, ServiceExt};
//! use vast_metrics::multi_source::{FetchReport, MultiSource, Source, Strategy, VastRequest};
//! use vast_metrics::source::SourceLabel;
//! use vast_metrics::PrometheusMetrics;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = PrometheusMetrics::new();
//! // Any `Service<http::Request<Full<Bytes>>, Response = http::Response<impl Body>> + Clone`;
//! // in-memory ad servers stand in for hyper-util's client here.
//! let client = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     let vast = match req.extensions().get::<SourceLabel>().map(|l| l.as_str()) {
//!         Some("backup") => r#"<VAST version="4.2"><Ad><InLine/></Ad></VAST>"#,
//!         _ => r#"<VAST version="4.2"/>"#, // no fill
//!     };
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from(vast))))
//! });
//! let mut fetcher = MultiSource::builder(client, metrics.clone())
//!     .tier([Source::parse("primary", "http://primary.example.com/vast").unwrap()])
//!     .tier([Source::parse("backup", "http://backup.example.com/vast").unwrap()])
//!     .strategy(Strategy::Race)
//!     .source_timeout(Duration::from_millis(500))
//!     .deadline(Duration::from_secs(1))
//!     .build();
//!
//! let res = fetcher.ready().await.unwrap().call(VastRequest::new()).await.unwrap();
//! let report = res.extensions().get::<FetchReport>().unwrap();
//! assert_eq!(report.winner.as_deref(), Some("backup"));
//! assert_eq!(report.fallback_depth, 1);
//! assert!(res.body().starts_with(b"<VAST"));
//!
//! let text = metrics.encode();
//! assert!(text.contains(r#"vast_multi_source_requests_success_total{fetch_strategy="race",result="success"} 1"#));
//! assert!(text.contains(r#"vast_multi_source_fallback_triggered_total{fallback_depth="1"} 1"#));
//! assert!(text.contains(r#"vast_multi_source_active_requests{fetch_strategy="race"} 0"#));
//! # }
//! ```

mod attempt;
mod layer;
mod record;
mod report;
mod service;

use std::borrow::Cow;
use std::fmt;

use http::Uri;

pub use self::layer::{MetricsFuture, MultiSourceMetricsLayer, MultiSourceMetricsService};
pub use self::report::{Attempt, FetchReport, MultiSourceError};
pub use self::service::{MultiSource, MultiSourceBuilder, ResponseFuture};

/// How the sources of one tier are tried: the `fetch_strategy` label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every source of the tier at once; the earliest listed fill wins once
    /// every source listed before it has answered (the rest are cut short).
    #[default]
    Parallel,
    /// One source after the other until one fills.
    Sequential,
    /// Every source of the tier at once; the first fill wins and the others
    /// are cancelled.
    Race,
}

impl Strategy {
    /// Every value.
    pub const ALL: [Strategy; 3] = [Strategy::Parallel, Strategy::Sequential, Strategy::Race];

    /// The label value: `parallel`, `sequential` or `race`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Parallel => "parallel",
            Strategy::Sequential => "sequential",
            Strategy::Race => "race",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ad source: a name (its `source_url` label) and the URL of its VAST
/// tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    name: Cow<'static, str>,
    uri: Uri,
}

impl Source {
    /// A source named `name` (its label: an alias, never the URL) at `uri`.
    pub fn new(name: impl Into<Cow<'static, str>>, uri: Uri) -> Self {
        Source {
            name: name.into(),
            uri,
        }
    }

    /// A source named `name` at the URL `url`, parsed.
    pub fn parse(
        name: impl Into<Cow<'static, str>>,
        url: &str,
    ) -> Result<Self, http::uri::InvalidUri> {
        Ok(Source::new(name, url.parse()?))
    }

    /// The name: the `source_url` label of its attempts.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of its VAST tag.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// One multi-source VAST fetch: what [`MultiSource`] takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VastRequest {
    strategy: Option<Strategy>,
    query: Option<String>,
    headers: http::HeaderMap,
    break_duration: Option<std::time::Duration>,
}

impl VastRequest {
    /// A fetch with the service's strategy and the sources' URLs as given.
    pub fn new() -> Self {
        VastRequest::default()
    }

    /// Uses `strategy` for this fetch. Defaults to the service's strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Appends `query` (`key=value&...`, without `?`) to every source's URL
    /// for this fetch: cache-busters, VAST macros. Defaults to none. The
    /// query never reaches a label.
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Adds a header to every source's request of this fetch: a W3C
    /// `traceparent` (its trace then marks the fetch's and each source's
    /// duration as an exemplar), a user agent. Defaults to none.
    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The headers sent with every source's request.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// The ad break this fetch is to fill, in time: counted in
    /// `vast_multi_source_break_requested_seconds_total{fetch_strategy}`
    /// when the fetch ends, against the seconds of linear ads in the
    /// answer it returns
    /// (`vast_multi_source_break_filled_seconds_total`): fill by time.
    /// Defaults to none (the fetch is not counted in either).
    pub fn break_duration(mut self, duration: std::time::Duration) -> Self {
        self.break_duration = Some(duration);
        self
    }

    /// The ad break to fill, if one was given.
    pub fn requested_break(&self) -> Option<std::time::Duration> {
        self.break_duration
    }

    /// The strategy override, if any.
    pub fn strategy_override(&self) -> Option<Strategy> {
        self.strategy
    }

    /// The query appended to the sources' URLs, if any.
    pub fn query_str(&self) -> Option<&str> {
        self.query.as_deref()
    }
}
