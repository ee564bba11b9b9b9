//! [`VastMetricsMiddleware`]: the layer's recording as a
//! [`reqwest_middleware::Middleware`] (feature `reqwest-middleware`).
//!
//! (The documentation is on the type: this module is private.)

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Extensions;
use reqwest_middleware::{Error, Middleware, Next};

use super::layer::VastMetricsLayer;
use super::reqwest::track_response;
use super::service::State;
use crate::classify::{error_type_of, Classifier, ErrorType, Outcome};

/// A [`reqwest_middleware::Middleware`] that records VAST fetches as
/// [`VastMetricsLayer`] does (feature `reqwest-middleware`: reqwest-middleware
/// 0.5, on reqwest 0.13).
///
/// For clients built with `reqwest_middleware::ClientBuilder`. Made from a
/// layer: middlewares and services made from one layer (and its clones with
/// the same configuration) share the per-source handles. It records the same `vast_client_*` and `vast_parser_*` families as
/// [`VastMetricsLayer`], with the layer's configuration: the source is a
/// [`SourceLabel`](crate::source::SourceLabel) in the request's extensions
/// (`RequestBuilder::with_extension`), else the layer's
/// [`source_name`](VastMetricsLayer::source_name), an
/// [alias](VastMetricsLayer::source_alias) or the URL's hash. A 2xx ends when
/// its body ends, with the VAST verdict; the response (status, headers,
/// `url()`, bytes) and the error reach the caller unchanged.
///
/// Errors: a `reqwest_middleware::Error::Reqwest` is classified like the
/// layer's reqwest errors (`timeout`, `connect`, ...); the `anyhow::Error`
/// of `Middleware` has its chain walked
/// ([`ErrorType::from_error`](crate::classify::ErrorType::from_error)), and
/// is `other` when nothing in it is known. A
/// [`Classifier`](crate::classify::Classifier) set with
/// [`classify_errors`](VastMetricsLayer::classify_errors) is asked first,
/// with the `reqwest_middleware::Error`, then with the error it wraps.
///
/// # Where it goes among the middlewares
///
/// Middlewares run in the order they were added with `ClientBuilder::with`,
/// the first added outermost. Around a retry middleware such as
/// `reqwest_retry::RetryTransientMiddleware`:
///
/// - added **after** the retry middleware (inside it), it sees every
///   attempt: a source answering 503 that is retried twice counts 3
///   requests, 3 `http_5xx`: the load put on the ad server;
/// - added **before** it (outside), it sees the logical request: 1 request,
///   ending as the last attempt did, with the latency of all attempts and the
///   back-off between them: what the caller waited.
///
/// Both can be used at once, with two layers recording into one recorder
/// under different source names.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use reqwest_middleware::ClientBuilder;
/// use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
/// use vast_metrics::{PrometheusMetrics, VastMetricsLayer, VastMetricsMiddleware};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // An ad server on loopback answering an InLine ad (this doctest runs
/// # // from the published crate too: no unpublished test support).
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let ad_server = listener.local_addr()?;
/// # tokio::spawn(async move {
/// #     let answer = hyper::service::service_fn(|_| async {
/// #         let vast = r#"<?xml version="1.0"?><VAST version="4.2"><Ad id="1"><InLine/></Ad></VAST>"#;
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
/// #             bytes::Bytes::from_static(vast.as_bytes()),
/// #         )))
/// #     });
/// #     while let Ok((io, _)) = listener.accept().await {
/// #         let io = hyper_util::rt::TokioIo::new(io);
/// #         tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, answer));
/// #     }
/// # });
/// let metrics = PrometheusMetrics::new();
/// let layer = VastMetricsLayer::new(metrics.clone());
/// let retry = ExponentialBackoff::builder()
///     .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
///     .build_with_max_retries(2);
/// let client = ClientBuilder::new(reqwest::Client::new())
///     // Outside the retries: one request per call.
///     .with(VastMetricsMiddleware::new(layer.clone().source_name("calls")))
///     .with(RetryTransientMiddleware::new_with_policy(retry))
///     // Inside: one request per attempt.
///     .with(VastMetricsMiddleware::new(layer.source_name("attempts")))
///     .build();
///
/// let url = format!("http://{ad_server}/inline"); // e.g. "http://127.0.0.1:8080/inline"
/// let res = client.get(&url).send().await?;
/// assert_eq!(res.url().as_str(), url);
/// let vast = res.bytes().await?; // the request ends with its body
/// assert!(vast.starts_with(b"<?xml"));
///
/// let text = metrics.encode();
/// assert!(text.contains(r#"vast_client_request_success_total{source_url="calls",result="success"} 1"#));
/// assert!(text.contains(r#"vast_client_request_success_total{source_url="attempts",result="success"} 1"#));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct VastMetricsMiddleware {
    /// `None` when the recorder records nothing: requests pass untouched.
    state: Option<Arc<State>>,
}

impl VastMetricsMiddleware {
    /// The middleware recording as `layer` is configured to.
    pub fn new<R>(layer: VastMetricsLayer<R>) -> Self {
        VastMetricsMiddleware {
            state: layer.state(),
        }
    }
}

impl<R> From<VastMetricsLayer<R>> for VastMetricsMiddleware {
    fn from(layer: VastMetricsLayer<R>) -> Self {
        Self::new(layer)
    }
}

impl fmt::Debug for VastMetricsMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastMetricsMiddleware")
            .field("recording", &self.state.is_some())
            .finish()
    }
}

/// What `async_trait` would write for `Middleware::handle`.
type HandleFuture<'t> =
    Pin<Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 't>>;

impl Middleware for VastMetricsMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: reqwest::Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        Self: 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
    {
        let Some(state) = &self.state else {
            return next.run(req, extensions);
        };
        // Dropped with the future (a caller's time-out): `cancelled`, or
        // `timeout` past a `Deadline` in the extensions.
        let mut in_flight = state.begin(req.url(), Some(extensions), req.headers());
        let inspect_limit = state.inspect_limit;
        let classify = state.classify;
        Box::pin(async move {
            match next.run(req, extensions).await {
                Ok(response) => Ok(track_response(response, Some(in_flight), inspect_limit)),
                Err(error) => {
                    in_flight.finish(Outcome::Failure(error_type(&error, classify)));
                    Err(error)
                }
            }
        })
    }
}

/// The `error_type` of a middleware stack's error: `custom` first (with
/// the whole error, then with the error it wraps), then what is known of
/// the wrapped error.
fn error_type(error: &Error, custom: Option<Classifier>) -> ErrorType {
    if let Some(error_type) = custom.and_then(|classify| classify(error)) {
        return error_type;
    }
    match error {
        Error::Reqwest(error) => error_type_of(error, custom),
        Error::Middleware(error) => {
            custom
                .and_then(|classify| classify(error))
                .unwrap_or_else(|| {
                    let error: &(dyn StdError + 'static) = &**error;
                    ErrorType::from_error(error)
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Mine;

    impl fmt::Display for Mine {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("mine")
        }
    }

    impl StdError for Mine {}

    #[test]
    fn middleware_errors_have_their_chain_walked() {
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let error = Error::Middleware(anyhow::Error::new(timed_out).context("fetching VAST"));
        assert_eq!(error_type(&error, None), ErrorType::Timeout);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "no");
        assert_eq!(
            error_type(&Error::middleware(refused), None),
            ErrorType::Connect
        );
        let elapsed = tower::timeout::error::Elapsed::new();
        assert_eq!(
            error_type(&Error::middleware(elapsed), None),
            ErrorType::Timeout
        );
        assert_eq!(
            error_type(&Error::Middleware(anyhow::anyhow!("a message")), None),
            ErrorType::Other
        );
        assert_eq!(error_type(&Error::middleware(Mine), None), ErrorType::Other);
    }

    #[test]
    fn a_classifier_is_asked_first() {
        let custom: Classifier = |error| match error.downcast_ref::<anyhow::Error>() {
            Some(error) if error.is::<Mine>() => Some(ErrorType::Rejected),
            _ => None,
        };
        let error = Error::middleware(Mine);
        assert_eq!(error_type(&error, Some(custom)), ErrorType::Rejected);
        let by_whole: Classifier = |error| {
            error
                .downcast_ref::<Error>()
                .filter(|e| e.is_middleware())
                .map(|_| ErrorType::Body)
        };
        assert_eq!(error_type(&error, Some(by_whole)), ErrorType::Body);
        let other = Error::Middleware(anyhow::anyhow!("x"));
        assert_eq!(error_type(&other, Some(custom)), ErrorType::Other);
    }
}
