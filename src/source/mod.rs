//! Source labels: what `source_url` holds instead of a URL.
//!
//! A label is, in order of precedence: a [`SourceLabel`] put in the
//! request's extensions, the fixed name of a layer that wraps one upstream,
//! an alias given for the source's URL, or a short stable hash of the
//! normalised URL: `scheme://host[:port]/path` with the scheme and host
//! lower-cased, the default port dropped, and no userinfo, query or fragment
//! (queries carry cache-busters and user ids).
//!
//! The hash is SipHash-2-4 (the `siphasher` crate) of the normalised bytes,
//! with a 128-bit key that is all zeros unless you set one; the label is the
//! top 48 bits in 12 lower-case hex digits. It is the same on every machine,
//! process and crate version. Test vectors (unkeyed):
//!
//! | URL | normalised | label |
//! |---|---|---|
//! | `https://ads.example.com/vast?cb=1` | `https://ads.example.com/vast` | `438ca5eac38d` |
//! | `HTTP://127.0.0.1:8080` | `http://127.0.0.1:8080/` | `a0271f5ff6d3` |
//!
//! (Checked against an independent SipHash-2-4 implementation.)
//!
//! Paths are hashed as the request carries them: `http::Uri` keeps dot
//! segments (`/a/../vast`) that `reqwest::Url` resolves, so the two clients
//! agree on every URL without them.
//!
//! With a secret key (see [`SourceHasher::keyed`]) nobody can hash a list of
//! known ad-server URLs to tell which one a label stands for.
//!
//! # Idle sources expire
//!
//! A layer forgets a source (a hash label or a [`SourceLabel`]) idle for
//! longer than its idle expiry ([`DEFAULT_SOURCE_IDLE_EXPIRY`], see
//! [`VastMetricsLayer::source_idle_expiry`](crate::VastMetricsLayer::source_idle_expiry)):
//! its slot under the cap is freed, and its series are released to the
//! backend, which drops them. A source with a request in flight never
//! expires; aliases, the layer's fixed name and `other` never do. A source
//! seen again after it expired starts from zero: Prometheus sees a counter
//! reset, which `rate()` and `increase()` handle.
//!
//! # Example
//!
//! ```
//! use vast_metrics::source::{normalise, SourceHasher};
//!
//! let uri: http::Uri = "HTTPS://User:pw@Ads.Example.com:443/vast?cb=123#x".parse().unwrap();
//! assert_eq!(normalise(&uri).as_deref(), Some("https://ads.example.com/vast"));
//! let hasher = SourceHasher::default();
//! assert_eq!(hasher.label_for(&uri), hasher.label_for(&"https://ads.example.com/vast".parse().unwrap()));
//! ```

mod expiry;
mod hash;
mod resolver;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::time::Duration;

#[cfg(feature = "reqwest")]
pub(crate) use self::hash::RawHasher;
pub(crate) use self::hash::UrlHash;
pub use self::hash::{normalise, SourceHasher};
pub(crate) use self::resolver::{SourceConfig, SourceResolver};

/// Default cap on distinct source labels per layer: 256. Past it, new
/// sources are recorded as [`OTHER_SOURCE`].
pub const DEFAULT_MAX_SOURCES: usize = 256;

/// Default idle expiry of a source: 10 minutes. A source without requests
/// for that long (none in flight) is forgotten, freeing its slot under the
/// cap and its series.
pub const DEFAULT_SOURCE_IDLE_EXPIRY: Duration = Duration::from_secs(600);

/// Label of sources past the cap, and of requests without a host.
pub const OTHER_SOURCE: &str = "other";

/// A per-request source label, put in the request's extensions; wins over
/// every other way of naming the source.
///
/// ```
/// use vast_metrics::source::SourceLabel;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(SourceLabel::new("backup"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceLabel(Cow<'static, str>);

impl SourceLabel {
    /// A label for this request's source.
    pub fn new(label: impl Into<Cow<'static, str>>) -> Self {
        SourceLabel(label.into())
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An alias given for a URL that cannot label anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AliasError {
    /// The URL does not parse.
    #[error("the aliased URL does not parse")]
    InvalidUrl(#[source] http::uri::InvalidUri),
    /// The URL has no host, so no request can match it.
    #[error("the aliased URL has no host")]
    NoHost,
}
