//! The `/metrics` exposition: a Tower service and a small hyper server.
//!
//! [`MetricsService`] answers `GET`/`HEAD` on `/metrics` with the Prometheus
//! text format (gzip-compressed when the scraper accepts it). It is a plain
//! `tower::Service`, so it can be mounted in axum or any Tower stack.
//! [`MetricsServer`] runs it on its own port over hyper 1 and hyper-util,
//! with a header-read timeout, a connection cap and graceful shutdown.
//!
//! # Example
//!
//! ```
//! use vast_metrics::{MetricLabels, MetricsCollector, MetricsServer, PrometheusMetrics, VastMetrics};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), vast_metrics::server::ServerError> {
//! let metrics = PrometheusMetrics::new();
//! metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &[(MetricLabels::SOURCE_URL, "primary")]);
//!
//! let server = MetricsServer::new(metrics)
//!     .bind("127.0.0.1:0".parse().unwrap())
//!     .await?
//!     .spawn();
//! println!("scrape http://{}/metrics", server.local_addr());
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Mounted in axum instead, with
//! `Router::new().route_service("/metrics", MetricsService::new(metrics))`:
//! the service meets what axum asks of one.
//!
//! ```
//! use std::convert::Infallible;
//! use vast_metrics::{MetricsService, PrometheusMetrics};
//!
//! fn mountable<S, B>(_: &S)
//! where
//!     S: tower_service::Service<http::Request<B>, Error = Infallible> + Clone + Send + Sync + 'static,
//!     S::Future: Send,
//!     S::Response: Send,
//! {
//! }
//! fn standard_body<B: http_body::Body<Data = bytes::Bytes> + Send>() {}
//!
//! mountable::<_, String>(&MetricsService::new(PrometheusMetrics::new()));
//! standard_body::<http_body_util::Full<bytes::Bytes>>();
//! ```

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::prometheus::PrometheusMetrics;

/// Content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const DEFAULT_PATH: &str = "/metrics";
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_CONNECTIONS: usize = 256;
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Tower service that serves the exposition of a [`PrometheusMetrics`].
///
/// `GET` and `HEAD` on the path answer 200; other methods there 405 with
/// `allow: GET, HEAD`; other paths 404. The body is gzip-compressed when the
/// request's `accept-encoding` accepts gzip.
#[derive(Clone, Debug)]
pub struct MetricsService {
    metrics: PrometheusMetrics,
    path: Arc<str>,
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

    fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
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

        let mut text = Vec::with_capacity(16 * 1024);
        self.metrics.encode_to(&mut text);
        let gzip = accepts_gzip(req.headers());
        let body = if gzip { gzip_bytes(&text) } else { None };
        let compressed = body.is_some();
        let body = body.unwrap_or(text);

        let mut res = Response::new(Full::default());
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        // Caches must key on the encoding whether or not this reply used gzip.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
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

/// `None` if compression failed; the caller then sends the plain text.
fn gzip_bytes(text: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    encoder.write_all(text).ok()?;
    encoder.finish().ok()
}

/// Whether `accept-encoding` (RFC 9110 §12.5.3) accepts gzip: `gzip` or
/// `x-gzip` with a non-zero q-value, or else `*` with a non-zero q-value.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut explicit: Option<bool> = None;
    let mut wildcard: Option<bool> = None;
    let values = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for item in values.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut q_positive = true;
        for param in parts {
            if let Some((key, value)) = param.split_once('=') {
                if key.trim().eq_ignore_ascii_case("q") {
                    q_positive = value.trim().parse::<f32>().is_ok_and(|q| q > 0.0);
                }
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // With duplicates, any acceptable listing wins.
            explicit = Some(explicit.unwrap_or(false) || q_positive);
        } else if coding == "*" {
            wildcard = Some(wildcard.unwrap_or(false) || q_positive);
        }
    }
    explicit.or(wildcard).unwrap_or(false)
}

/// Error starting or running a [`MetricsServer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket could not be bound.
    #[error("{}", bind_message(*.addr, .source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn bind_message(addr: SocketAddr, source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::AddrInUse => format!("address {addr} is already in use"),
        _ => format!("cannot listen on {addr}: {source}"),
    }
}

/// Builder of a `/metrics` HTTP/1 server for a [`PrometheusMetrics`].
#[derive(Clone, Debug)]
pub struct MetricsServer {
    service: MetricsService,
    header_read_timeout: Duration,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl MetricsServer {
    /// A server for `metrics` with the defaults below.
    pub fn new(metrics: PrometheusMetrics) -> Self {
        Self {
            service: MetricsService::new(metrics),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How long a client has to send request headers, also the idle time
    /// allowed between keep-alive requests. Defaults to 5 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Most connections served at once; further clients wait in the
    /// listen backlog. Defaults to 256. Zero is taken as one.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long shutdown waits for open connections to finish before
    /// closing them. Defaults to 5 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The path the exposition is served on. Defaults to `/metrics`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.service = self.service.path(path);
        self
    }

    /// Binds the listening socket. Port 0 picks a free port; see
    /// [`BoundServer::local_addr`].
    pub async fn bind(self, addr: SocketAddr) -> Result<BoundServer, ServerError> {
        let bind_err = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(BoundServer {
            listener,
            local_addr,
            config: self,
        })
    }
}

/// A [`MetricsServer`] with its socket bound, not yet serving.
#[derive(Debug)]
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: MetricsServer,
}

impl BoundServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `signal` completes, then stops accepting, lets open
    /// connections finish for up to the shutdown timeout, and closes the rest.
    pub async fn serve_with_shutdown(
        self,
        signal: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let BoundServer {
            listener, config, ..
        } = self;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            // Refuse huge headers (431) instead of buffering ~400 KB each.
            .max_buf_size(64 * 1024);
        let service = config.service;
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let graceful = GracefulShutdown::new();
        // Owns the connection tasks, so none outlives the server.
        let mut conns = JoinSet::new();
        let mut signal = std::pin::pin!(signal);

        loop {
            // Wait for a free slot before accepting, so the cap holds.
            let permit = tokio::select! {
                biased;
                () = &mut signal => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed; nothing left to serve with
                },
            };
            let stream = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Per-connection failures are the client's; others
                        // (EMFILE) pass with time, so back off and go on.
                        if !is_connection_error(&e) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let conn = http.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req| {
                    ready(Ok::<_, Infallible>(service.respond(&req)))
                }),
            );
            let conn = graceful.watch(conn);
            while conns.try_join_next().is_some() {}
            conns.spawn(async move {
                // A client that hangs up or times out is not the server's error.
                let _ = conn.await;
                drop(permit);
            });
        }

        drop(listener);
        let _ = tokio::time::timeout(config.shutdown_timeout, graceful.shutdown()).await;
        // Connections still open after the grace period are cut.
        conns.shutdown().await;
        Ok(())
    }

    /// Serves on a new task until [`RunningServer::shutdown`] is called or
    /// the [`RunningServer`] is dropped.
    pub fn spawn(self) -> RunningServer {
        let local_addr = self.local_addr;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_with_shutdown(async move {
            // A dropped sender also means stop.
            let _ = rx.await;
        }));
        RunningServer {
            local_addr,
            shutdown: tx,
            task,
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A server running on its own task. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open connections finish for up to the shutdown
    /// timeout, and returns once the server task has ended.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: the server is gone either way.
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn accept_encoding_is_parsed() {
        assert!(accepts("gzip"));
        assert!(accepts("deflate, GZIP;q=0.5"));
        assert!(accepts("x-gzip"));
        assert!(accepts("br;q=1.0, *;q=0.1"));
        assert!(accepts("gzip ; q=1"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0.000"));
        assert!(!accepts("gzip;q=0, *"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzipx"));
        assert!(!accepts("*;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn bind_message_names_addr_in_use() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = ServerError::Bind {
            addr,
            source: io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(e.to_string(), "address 127.0.0.1:9 is already in use");
    }

    #[test]
    fn path_gets_a_leading_slash() {
        let s = MetricsService::new(PrometheusMetrics::new()).path("m");
        assert_eq!(&*s.path, "/m");
    }
}
