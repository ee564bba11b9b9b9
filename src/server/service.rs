//! [`MetricsService`]: the exposition as a Tower service.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::negotiate::{accepts_gzip, accepts_openmetrics, gzip_bytes};
use super::CONTENT_TYPE;
use crate::prometheus::PrometheusMetrics;

const DEFAULT_PATH: &str = "/metrics";

/// Tower service that serves the exposition of a [`PrometheusMetrics`].
///
/// `GET` and `HEAD` on the path answer 200; other methods there 405 with
/// `allow: GET, HEAD`; other paths 404. The body is gzip-compressed when the
/// request's `accept-encoding` accepts gzip.
#[derive(Clone, Debug)]
pub struct MetricsService {
    metrics: PrometheusMetrics,
    pub(super) path: Arc<str>,
}

impl MetricsService {
    /// A service serving `metrics` on `/metrics`.
    pub fn new(metrics: PrometheusMetrics) -> Self {
        Self {
            metrics,
            path: Arc::from(DEFAULT_PATH),
        }
    }

    /// The path the exposition is served on. Defaults to `/metrics`.
    /// A missing leading `/` is added.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        self.path = Arc::from(path);
        self
    }

    pub(super) fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.uri().path() != &*self.path {
            return status(StatusCode::NOT_FOUND);
        }
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut res = status(StatusCode::METHOD_NOT_ALLOWED);
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return res;
            }
        };

        let openmetrics = accepts_openmetrics(req.headers());
        let (text, content_type) = if openmetrics {
            let text = self.metrics.encode_openmetrics().into_bytes();
            (text, crate::prometheus::OPENMETRICS_CONTENT_TYPE)
        } else {
            let mut text = Vec::with_capacity(16 * 1024);
            self.metrics.encode_to(&mut text);
            (text, CONTENT_TYPE)
        };
        let gzip = accepts_gzip(req.headers());
        let body = if gzip { gzip_bytes(&text) } else { None };
        let compressed = body.is_some();
        let body = body.unwrap_or(text);

        let mut res = Response::new(Full::default());
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Caches must key on what was negotiated, whatever this reply used.
        headers.insert(
            header::VARY,
            HeaderValue::from_static("accept, accept-encoding"),
        );
        if compressed {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // HEAD announces the length a GET would have; hyper would say 0.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if !head {
            *res.body_mut() = Full::new(Bytes::from(body));
        }
        res
    }
}

impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&req)))
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::default());
    *res.status_mut() = code;
    res
}
