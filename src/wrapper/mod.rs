//! Wrapper chains: a source fills only when its VAST resolves to an
//! `<InLine>` ad.
//!
//! Most programmatic answers are `<Wrapper>`s: "ask this other server"
//! (`<VASTAdTagURI>`), often several hops deep. [`MultiSource`](crate::MultiSource)
//! follows them for every attempt, and [`WrapperResolver`] does the same in
//! front of any client for a fetcher of your own. From an answer whose ads
//! are all wrappers, the first wrapper `<Ad>`'s `VASTAdTagURI` (trimmed,
//! CDATA or not) is fetched through the same inner client, hop after hop,
//! until:
//!
//! | end of the chain | `result` | IAB code in `vast_errors_total` |
//! |---|---|---|
//! | an answer with an `<InLine>` ad | `success` | |
//! | valid VAST without an ad | `no_ad` | 303 |
//! | a hop that timed out (the attempt's time budget, or the client's time-out) | `timeout` | 301 |
//! | a hop that failed otherwise (status, connect, body, a URI that does not parse) | `error` | 301 |
//! | a hop whose answer is not well-formed or not VAST | `invalid_xml` | (100/101/102 on the hop's own request) |
//! | the maximum depth ([`DEFAULT_MAX_DEPTH`] = 5 hops), or a wrapper after one that says `followAdditionalWrappers="false"` | `depth_exceeded` | 302 |
//! | a URI already fetched in this chain | `loop` | 900 |
//!
//! Loops and over-deep chains stop before the request that would repeat
//! or exceed. The per-source timeout and the overall deadline of a
//! multi-source attempt count the whole chain. `fallbackOnNoAd` is read and
//! reported ([`Hop::fallback_on_no_ad`]); the crate follows the first
//! wrapper ad only, so a chain that ends without an ad ends the source's
//! attempt whatever it says, and the fetcher moves on to the next source.
//!
//! Per chain, labelled by the originating source:
//! `vast_wrapper_chains_total{source_url,result}`,
//! `vast_wrapper_chain_hops{source_url}` (hops followed: 1 for a wrapper
//! whose target was inline) and
//! `vast_wrapper_chain_duration_seconds{source_url,result}` (from the first
//! request to the last answer). Each hop's request is also a client-family
//! request of the layer below, labelled by its own hashed URL (capped), so
//! the per-host view of wrapper targets stays. A chain cut short by design
//! (a race loser, a dropped fetch) before its deadline is not counted.
//! Nothing exported or reported carries a hop's URL.
//!
//! # Redirects
//!
//! Where the crate fetches (a [`MultiSource`](crate::MultiSource) attempt,
//! [`WrapperResolver`]), every request, the tag's and each hop's, follows
//! HTTP redirects as a player's HTTP stack does: a 301, 302, 303, 307 or
//! 308 with a `Location` (relative ones resolved against the request URL),
//! at most [`DEFAULT_MAX_REDIRECTS`] (10) per request (`max_redirects`
//! on either builder; 0 follows none), always as a GET with an empty body,
//! with the first request's headers (credentials only to its own origin)
//! and extensions ([`SourceLabel`](crate::source::SourceLabel),
//! [`Deadline`](crate::classify::Deadline)). A redirect back to a URL
//! already requested stops before the repeat. The time budget of the
//! attempt covers its redirects. A redirect is no hop: the chain and its
//! depth see only the final answer.
//!
//! Each redirect followed counts in `vast_redirects_total{source_url}` of
//! the originating source (the attempt's source, or the chain's label). The
//! client layer below counts one request per logical fetch, under the
//! label of the first request, ending as the final answer did. A 3xx not
//! followed (no `Location`, the limit, a loop, a scheme other than http(s))
//! ends the request as `error_type="redirect"`: a wrapper hop then ends
//! its chain as `error`, a tag its attempt.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use vast_metrics::wrapper::{ChainReport, ChainResult, WrapperResolverLayer};
//! use vast_metrics::PrometheusMetrics;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = PrometheusMetrics::new();
//! // In-memory ad servers; in production, a client wrapped in VastMetricsLayer.
//! let client = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     let vast = match req.uri().host() {
//!         Some("ssp.example") => r#"<VAST version="4.2"><Ad><Wrapper><VASTAdTagURI><![CDATA[ http://dsp.example/vast ]]></VASTAdTagURI></Wrapper></Ad></VAST>"#,
//!         _ => r#"<VAST version="4.2"><Ad><InLine><AdTitle>ad</AdTitle></InLine></Ad></VAST>"#,
//!     };
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from(vast))))
//! });
//! let mut resolver = WrapperResolverLayer::new(metrics.clone()).layer(client);
//! let req = http::Request::get("http://ssp.example/tag?cb=1").body(Full::default()).unwrap();
//! let res = resolver.ready().await.unwrap().call(req).await.unwrap();
//! let report = res.extensions().get::<ChainReport>().unwrap();
//! assert_eq!(report.result, ChainResult::Success);
//! assert_eq!(report.hops.len(), 1);
//! assert!(res.body().windows(6).any(|w| w == b"InLine"));
//! assert!(metrics.encode().contains(r#"result="success"} 1"#));
//! # }
//! ```

mod chain;
mod redirect;
mod service;

use std::time::Duration;

pub(crate) use self::chain::{fetch_vast, follow, ChainGuard, Fetched, WrapperRecorder};
pub(crate) use self::redirect::Redirects;
pub use self::service::{ResponseFuture, WrapperResolver, WrapperResolverLayer};

use crate::classify::{ErrorType, Outcome, VastErrorCode};

/// Default maximum of wrapper hops followed per chain: 5, as common
/// players (IMA, Roku: 4 to 5).
pub const DEFAULT_MAX_DEPTH: usize = 5;

/// Default maximum of HTTP redirects followed per request (the tag, and
/// each wrapper hop): 10, as reqwest's default policy.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// How a wrapper chain ended: the `result` label of the wrapper families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainResult {
    /// Resolved to an `<InLine>` ad.
    Success,
    /// Valid VAST without an ad at the end (IAB 303).
    NoAd,
    /// A hop timed out (IAB 301).
    Timeout,
    /// Too many hops, or a wrapper not allowed to follow (IAB 302).
    DepthExceeded,
    /// A URI already fetched in this chain (IAB 900).
    Loop,
    /// A hop's answer was not well-formed or not VAST.
    InvalidXml,
    /// A hop failed otherwise (IAB 301).
    Error,
}

impl ChainResult {
    /// Every value, in label order.
    pub const ALL: [ChainResult; 7] = [
        ChainResult::Success,
        ChainResult::NoAd,
        ChainResult::Timeout,
        ChainResult::DepthExceeded,
        ChainResult::Loop,
        ChainResult::InvalidXml,
        ChainResult::Error,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChainResult::Success => "success",
            ChainResult::NoAd => "no_ad",
            ChainResult::Timeout => "timeout",
            ChainResult::DepthExceeded => "depth_exceeded",
            ChainResult::Loop => "loop",
            ChainResult::InvalidXml => "invalid_xml",
            ChainResult::Error => "error",
        }
    }

    /// How a chain ends on an answer that sends nowhere else: an ad
    /// resolves it, a no-ad empties it, a failure breaks it.
    pub(crate) const fn of_answer(outcome: Outcome) -> ChainResult {
        match outcome {
            Outcome::Ad => ChainResult::Success,
            Outcome::NoAd => ChainResult::NoAd,
            Outcome::Failure(ErrorType::InvalidXml) => ChainResult::InvalidXml,
            Outcome::Failure(ErrorType::Timeout) => ChainResult::Timeout,
            Outcome::Failure(_) => ChainResult::Error,
        }
    }

    /// The IAB code counted for the chain, if any.
    pub const fn code(self) -> Option<VastErrorCode> {
        match self {
            ChainResult::NoAd => Some(VastErrorCode::NoAdAfterWrapper),
            ChainResult::Timeout | ChainResult::Error => Some(VastErrorCode::WrapperTimeout),
            ChainResult::DepthExceeded => Some(VastErrorCode::WrapperLimit),
            ChainResult::Loop => Some(VastErrorCode::Undefined),
            ChainResult::Success | ChainResult::InvalidXml => None,
        }
    }
}

/// One hop of a chain: the request to a wrapper's `VASTAdTagURI`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hop {
    /// 1 for the first wrapper's target, 2 for the next, ...
    pub depth: usize,
    /// How the hop's request ended (`Ad` also for an answer of wrappers).
    pub outcome: Outcome,
    /// From the hop's request to the end of its answer.
    pub elapsed: Duration,
    /// `followAdditionalWrappers` of the wrapper that led here.
    pub follow_additional_wrappers: bool,
    /// `fallbackOnNoAd` of the wrapper that led here, if set.
    pub fallback_on_no_ad: Option<bool>,
}

/// What one wrapper chain did: in the extensions of
/// [`WrapperResolver`]'s responses, and per attempt in
/// [`FetchReport`](crate::multi_source::FetchReport).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainReport {
    /// How the chain ended; `Success` or the verdict of a first answer
    /// that was no wrapper (then `hops` is empty).
    pub result: ChainResult,
    /// The hops, in order.
    pub hops: Vec<Hop>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}
