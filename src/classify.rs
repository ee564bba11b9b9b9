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
//! ```

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

/// The `error_type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// A timeout: tower's `Elapsed`, reqwest's timeout, an I/O time-out.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The server answered 4xx.
    Http4xx,
    /// The server answered 5xx (or another non-2xx status that is not 4xx).
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
}

impl ErrorType {
    /// Every value, in label order.
    pub const ALL: [ErrorType; 9] = [
        ErrorType::Timeout,
        ErrorType::Connect,
        ErrorType::Http4xx,
        ErrorType::Http5xx,
        ErrorType::InvalidXml,
        ErrorType::EmptyBody,
        ErrorType::Body,
        ErrorType::Cancelled,
        ErrorType::Other,
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
        }
    }

    /// The failure a status stands for: `None` for 2xx. 1xx and 3xx that
    /// reach the caller are counted with 5xx: the fetch gave no VAST and the
    /// source is at fault.
    pub fn from_status(status: http::StatusCode) -> Option<ErrorType> {
        if status.is_success() {
            None
        } else if status.is_client_error() {
            Some(ErrorType::Http4xx)
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

/// Errors the layer can classify into an [`ErrorType`] without changing
/// them: the error type of the wrapped service must implement it.
///
/// Implemented for tower's `BoxError`, `std::io::Error`, `hyper::Error`,
/// hyper-util's client error, `reqwest::Error` (feature `reqwest`) and
/// `Infallible`. For an error type of your own, one line does:
///
/// ```
/// # #[derive(Debug)] struct MyError;
/// # impl std::fmt::Display for MyError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("my error") } }
/// # impl std::error::Error for MyError {}
/// use vast_metrics::classify::{ClassifyError, ErrorType};
///
/// impl ClassifyError for MyError {
///     fn error_type(&self) -> ErrorType {
///         ErrorType::from_error(self)
///     }
/// }
/// ```
pub trait ClassifyError {
    /// The `error_type` of this error.
    fn error_type(&self) -> ErrorType;
}

impl ClassifyError for Box<dyn StdError + Send + Sync> {
    fn error_type(&self) -> ErrorType {
        ErrorType::from_error(&**self)
    }
}

impl ClassifyError for std::convert::Infallible {
    fn error_type(&self) -> ErrorType {
        match *self {}
    }
}

macro_rules! classify_std_error {
    ($($ty:ty),* $(,)?) => {$(
        impl ClassifyError for $ty {
            fn error_type(&self) -> ErrorType {
                ErrorType::from_error(self)
            }
        }
    )*};
}

classify_std_error!(
    io::Error,
    hyper::Error,
    hyper_util::client::legacy::Error,
    tower::timeout::error::Elapsed,
);

#[cfg(feature = "reqwest")]
classify_std_error!(reqwest::Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_walked() {
        let timeout: Box<dyn StdError + Send + Sync> =
            Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(timeout.error_type(), ErrorType::Timeout);
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "no");
        assert_eq!(refused.error_type(), ErrorType::Connect);
        let wrapped = io::Error::other(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert_eq!(wrapped.error_type(), ErrorType::Timeout);
        assert_eq!(io::Error::other("x").error_type(), ErrorType::Other);
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
                "other"
            ]
        );
        let results: Vec<_> = FetchResult::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            results,
            ["success", "no_ad", "invalid_xml", "timeout", "error"]
        );
    }
}
