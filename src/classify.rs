//! The outcome of one fetch and its label values.
//!
//! [`Outcome`] is what the layer records when a fetch ends: the `result`
//! label for successes, the `error_type` label for failures.
//!
//! # Example
//!
//! ```
//! use vast_metrics::classify::{ErrorType, FetchResult, Outcome};
//!
//! assert_eq!(Outcome::NoAd.result(), FetchResult::NoAd);
//! assert_eq!(Outcome::Failure(ErrorType::Http5xx).result().as_str(), "error");
//! assert_eq!(ErrorType::from_status(http::StatusCode::NOT_FOUND), Some(ErrorType::Http4xx));
//! assert_eq!(ErrorType::from_status(http::StatusCode::FOUND), Some(ErrorType::Redirect));
//! ```

use std::any::Any;
use std::error::Error as StdError;
use std::io;

/// The `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchResult {
    /// VAST with at least one `<Ad>` (or a 2xx answer when the body is not
    /// inspected).
    Success,
    /// Valid VAST without an `<Ad>`: no fill.
    NoAd,
    /// The body was not well-formed XML, or its root was not `<VAST>`.
    InvalidXml,
    /// The fetch timed out.
    Timeout,
    /// Any other failure.
    Error,
}

impl FetchResult {
    /// Every value, in label order.
    pub const ALL: [FetchResult; 5] = [
        FetchResult::Success,
        FetchResult::NoAd,
        FetchResult::InvalidXml,
        FetchResult::Timeout,
        FetchResult::Error,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FetchResult::Success => "success",
            FetchResult::NoAd => "no_ad",
            FetchResult::InvalidXml => "invalid_xml",
            FetchResult::Timeout => "timeout",
            FetchResult::Error => "error",
        }
    }
}

/// The `error_type` label. Non-exhaustive: the contract may gain values
/// (as `redirect` was).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// A timeout: tower's `Elapsed`, reqwest's timeout, an I/O time-out.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The server answered 4xx.
    Http4xx,
    /// The server answered 5xx (or 1xx: a status that is neither an
    /// answer, a client error nor a redirect).
    Http5xx,
    /// A 2xx body that is not well-formed XML or not VAST.
    InvalidXml,
    /// A 2xx answer with an empty body.
    EmptyBody,
    /// The body failed while streaming.
    Body,
    /// The caller dropped the request or its body before the end.
    Cancelled,
    /// Anything else.
    Other,
    /// Refused inside the caller's own stack before it was sent (tower's
    /// `load_shed` `Overloaded`): not the ad server's error.
    Rejected,
    /// A 3xx that was not followed: no redirect-following fetcher above
    /// the layer, no `Location`, the redirect limit or a loop. A fact of
    /// the configuration, not an outage.
    Redirect,
}

impl ErrorType {
    /// Every value, in label order.
    pub const ALL: [ErrorType; 11] = [
        ErrorType::Timeout,
        ErrorType::Connect,
        ErrorType::Http4xx,
        ErrorType::Http5xx,
        ErrorType::InvalidXml,
        ErrorType::EmptyBody,
        ErrorType::Body,
        ErrorType::Cancelled,
        ErrorType::Other,
        ErrorType::Rejected,
        ErrorType::Redirect,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::Connect => "connect",
            ErrorType::Http4xx => "http_4xx",
            ErrorType::Http5xx => "http_5xx",
            ErrorType::InvalidXml => "invalid_xml",
            ErrorType::EmptyBody => "empty_body",
            ErrorType::Body => "body",
            ErrorType::Cancelled => "cancelled",
            ErrorType::Other => "other",
            ErrorType::Rejected => "rejected",
            ErrorType::Redirect => "redirect",
        }
    }

    /// What a status alone says about a VAST fetch: a failure for a status
    /// that is not 2xx, `NoAd` for `204 No Content` (a no-fill, as ad
    /// servers with OpenRTB habits answer), `None` when the body decides.
    pub fn status_outcome(status: http::StatusCode) -> Option<Outcome> {
        match ErrorType::from_status(status) {
            Some(error) => Some(Outcome::Failure(error)),
            None if status == http::StatusCode::NO_CONTENT => Some(Outcome::NoAd),
            None => None,
        }
    }

    /// The failure a status stands for: `None` for 2xx. A 3xx that
    /// reaches the caller was not followed: `redirect`. 1xx is counted with
    /// 5xx: the fetch gave no VAST and the source is at fault.
    pub fn from_status(status: http::StatusCode) -> Option<ErrorType> {
        if status.is_success() {
            None
        } else if status.is_client_error() {
            Some(ErrorType::Http4xx)
        } else if status.is_redirection() {
            Some(ErrorType::Redirect)
        } else {
            Some(ErrorType::Http5xx)
        }
    }

    /// Classifies an error by walking its source chain: timeouts first
    /// (tower, reqwest, hyper, I/O), then connect errors.
    pub fn from_error(error: &(dyn StdError + 'static)) -> ErrorType {
        let mut connect = false;
        let mut next = Some(error);
        while let Some(err) = next {
            if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>()
            {
                return ErrorType::Timeout;
            }
            if err.is::<tower::load_shed::error::Overloaded>() {
                return ErrorType::Rejected;
            }
            #[cfg(feature = "hyper-util-client")]
            if let Some(e) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
                connect |= e.is_connect();
            }
            if let Some(e) = err.downcast_ref::<hyper::Error>() {
                if e.is_timeout() {
                    return ErrorType::Timeout;
                }
            }
            #[cfg(feature = "reqwest")]
            if let Some(e) = err.downcast_ref::<reqwest::Error>() {
                if e.is_timeout() {
                    return ErrorType::Timeout;
                }
                connect |= e.is_connect();
            }
            next = err.source();
            if let Some(e) = err.downcast_ref::<io::Error>() {
                match e.kind() {
                    io::ErrorKind::TimedOut => return ErrorType::Timeout,
                    io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable => connect = true,
                    _ => {}
                }
                // An io::Error's `source()` skips the error it wraps.
                if let Some(inner) = e.get_ref() {
                    next = Some(inner as &(dyn StdError + 'static));
                }
            }
        }
        if connect {
            ErrorType::Connect
        } else {
            ErrorType::Other
        }
    }
}

/// A request's deadline, in its extensions: when the request (or its body)
/// is dropped at or after it, the layer counts a `timeout` instead of
/// `cancelled`. [`MultiSource`](crate::multi_source::MultiSource) sets it on
/// every attempt; set it yourself when a time-out outside the layer (a
/// `tower::timeout` stacked above it, a `tokio::time::timeout` around the
/// call) is what drops requests.
///
/// ```
/// use std::time::{Duration, Instant};
/// use vast_metrics::classify::Deadline;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Deadline(Instant::now() + Duration::from_millis(500)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub std::time::Instant);

impl Deadline {
    /// The error of a request dropped now, before it ended: `timeout` at or
    /// past its deadline, `cancelled` before it or without one. The one
    /// place this rule lives.
    pub fn dropped(deadline: Option<Deadline>) -> ErrorType {
        match deadline {
            Some(Deadline(at)) if std::time::Instant::now() >= at => ErrorType::Timeout,
            _ => ErrorType::Cancelled,
        }
    }
}

/// The `code` label of `vast_errors_total`: the IAB VAST error codes the
/// crate records, a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VastErrorCode {
    /// 100: the body is not well-formed XML.
    XmlParse,
    /// 101: well-formed XML, but not VAST.
    NotVast,
    /// 102: a VAST version the crate does not know.
    VersionNotSupported,
    /// 301: a wrapper's `VASTAdTagURI` timed out or was unavailable.
    WrapperTimeout,
    /// 302: the wrapper limit was reached.
    WrapperLimit,
    /// 303: no ad after one or more wrappers.
    NoAdAfterWrapper,
    /// 900: undefined.
    Undefined,
}

impl VastErrorCode {
    /// Every value, in label order.
    pub const ALL: [VastErrorCode; 7] = [
        VastErrorCode::XmlParse,
        VastErrorCode::NotVast,
        VastErrorCode::VersionNotSupported,
        VastErrorCode::WrapperTimeout,
        VastErrorCode::WrapperLimit,
        VastErrorCode::NoAdAfterWrapper,
        VastErrorCode::Undefined,
    ];

    /// The IAB number.
    pub const fn code(self) -> u16 {
        match self {
            VastErrorCode::XmlParse => 100,
            VastErrorCode::NotVast => 101,
            VastErrorCode::VersionNotSupported => 102,
            VastErrorCode::WrapperTimeout => 301,
            VastErrorCode::WrapperLimit => 302,
            VastErrorCode::NoAdAfterWrapper => 303,
            VastErrorCode::Undefined => 900,
        }
    }

    /// The label value: the number as text.
    pub const fn as_str(self) -> &'static str {
        match self {
            VastErrorCode::XmlParse => "100",
            VastErrorCode::NotVast => "101",
            VastErrorCode::VersionNotSupported => "102",
            VastErrorCode::WrapperTimeout => "301",
            VastErrorCode::WrapperLimit => "302",
            VastErrorCode::NoAdAfterWrapper => "303",
            VastErrorCode::Undefined => "900",
        }
    }

    /// The code of an IAB number the crate records.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// How one fetch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A VAST document with at least one ad (or an uninspected 2xx).
    Ad,
    /// Valid VAST without an ad.
    NoAd,
    /// A failure, by type.
    Failure(ErrorType),
}

impl Outcome {
    /// The `result` label of the duration histogram.
    pub const fn result(self) -> FetchResult {
        match self {
            Outcome::Ad => FetchResult::Success,
            Outcome::NoAd => FetchResult::NoAd,
            Outcome::Failure(ErrorType::InvalidXml) => FetchResult::InvalidXml,
            Outcome::Failure(ErrorType::Timeout) => FetchResult::Timeout,
            Outcome::Failure(_) => FetchResult::Error,
        }
    }

    /// Whether the fetch counts in `*_success_total`.
    pub const fn is_success(self) -> bool {
        matches!(self, Outcome::Ad | Outcome::NoAd)
    }

    /// Whether the fetch gave an ad: a fill.
    pub const fn is_fill(self) -> bool {
        matches!(self, Outcome::Ad)
    }
}

/// A classifier of your own for the inner service's errors: given the
/// error (as `&dyn Any`, downcast it to your type), its `error_type`, or
/// `None` to fall back to [`classify_error`]. Set it with
/// [`VastMetricsLayer::classify_errors`](crate::VastMetricsLayer::classify_errors).
///
/// ```
/// use std::any::Any;
/// use vast_metrics::classify::{Classifier, ErrorType};
///
/// #[derive(Debug)]
/// enum MyError { Refused, Slow }
///
/// let classify: Classifier = |error: &dyn Any| match error.downcast_ref::<MyError>()? {
///     MyError::Refused => Some(ErrorType::Connect),
///     MyError::Slow => Some(ErrorType::Timeout),
/// };
/// assert_eq!(classify(&MyError::Slow), Some(ErrorType::Timeout));
/// ```
pub type Classifier = fn(&(dyn Any + 'static)) -> Option<ErrorType>;

/// The `error_type` of an inner service's error, whatever its type: the
/// error types of tower (`BoxError`, `Elapsed`), tokio, hyper, hyper-util,
/// reqwest (feature `reqwest`), `std::io::Error` and
/// [`MultiSourceError`](crate::multi_source::MultiSourceError) are known
/// and their source chains walked ([`ErrorType::from_error`]); any other
/// type is `other` (give the layer a [`Classifier`] for yours).
pub fn classify_error(error: &(dyn Any + 'static)) -> ErrorType {
    macro_rules! known {
        ($($ty:ty),* $(,)?) => {$(
            if let Some(e) = error.downcast_ref::<$ty>() {
                return ErrorType::from_error(e);
            }
        )*};
    }
    if let Some(e) = error.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return ErrorType::from_error(&**e);
    }
    if let Some(e) = error.downcast_ref::<Box<dyn StdError>>() {
        return ErrorType::from_error(&**e);
    }
    if let Some(e) = error.downcast_ref::<crate::multi_source::MultiSourceError>() {
        return e.error_type();
    }
    #[cfg(feature = "hyper-util-client")]
    known!(hyper_util::client::legacy::Error);
    known!(
        io::Error,
        hyper::Error,
        tower::timeout::error::Elapsed,
        tower::load_shed::error::Overloaded,
        tokio::time::error::Elapsed,
    );
    #[cfg(feature = "reqwest")]
    known!(reqwest::Error);
    ErrorType::Other
}

/// The `error_type` of `error`: `custom` first, then [`classify_error`].
#[inline]
pub(crate) fn error_type_of(error: &(dyn Any + 'static), custom: Option<Classifier>) -> ErrorType {
    custom
        .and_then(|classify| classify(error))
        .unwrap_or_else(|| classify_error(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_walked() {
        let timeout: Box<dyn StdError + Send + Sync> =
            Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(classify_error(&timeout), ErrorType::Timeout);
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "no");
        assert_eq!(classify_error(&refused), ErrorType::Connect);
        let wrapped = io::Error::other(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert_eq!(classify_error(&wrapped), ErrorType::Timeout);
        assert_eq!(classify_error(&io::Error::other("x")), ErrorType::Other);
        // Unknown types are `other` unless a classifier knows them.
        assert_eq!(classify_error(&"a string error"), ErrorType::Other);
        let custom: Classifier = |e| e.downcast_ref::<&str>().map(|_| ErrorType::Connect);
        assert_eq!(
            error_type_of(&"a string error", Some(custom)),
            ErrorType::Connect
        );
        assert_eq!(error_type_of(&refused, Some(custom)), ErrorType::Connect);
    }

    #[test]
    fn labels_are_the_contract() {
        let errors: Vec<_> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            errors,
            [
                "timeout",
                "connect",
                "http_4xx",
                "http_5xx",
                "invalid_xml",
                "empty_body",
                "body",
                "cancelled",
                "other",
                "rejected",
                "redirect"
            ]
        );
        let results: Vec<_> = FetchResult::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            results,
            ["success", "no_ad", "invalid_xml", "timeout", "error"]
        );
    }
}
