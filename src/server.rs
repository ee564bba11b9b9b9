//! The `/metrics` exposition: a Tower service and a small hyper server.
//!
//! [`MetricsService`] answers `GET`/`HEAD` on `/metrics` with the Prometheus
//! text format (gzip-compressed when the scraper accepts it). It is a plain
//! `tower::Service`, so it can be mounted in axum or any Tower stack.
//! [`MetricsServer`] runs it on its own port over hyper 1 and hyper-util,
//! with a header-read timeout, caps on open connections and on requests
//! answered at once, and graceful shutdown.
//!
//! Idle and slow clients cannot delay a scrape: accepting never waits,
//! idle connections and ones still sending headers hold no request slot,
//! they are closed by the header-read timeout, and past the connection cap
//! the oldest of them is closed to make room for a new connection.
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

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::prometheus::PrometheusMetrics;

/// Content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const DEFAULT_PATH: &str = "/metrics";
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of the default connection cap; see
/// [`MetricsServer::max_connections`].
const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default cap where the open-file limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 1024;
const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Pending connections the kernel queues (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 1024;
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

/// `None` if compression failed; the caller then sends the plain text.
fn gzip_bytes(text: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    encoder.write_all(text).ok()?;
    encoder.finish().ok()
}

/// Whether `accept` prefers OpenMetrics 1.0 text: an
/// `application/openmetrics-text` range (version 1.0.0 or unversioned)
/// with a non-zero q-value at least that of any `text/plain` range.
/// Otherwise the text format 0.0.4 is the answer.
fn accepts_openmetrics(headers: &HeaderMap) -> bool {
    let mut openmetrics = 0.0f32;
    let mut plain = 0.0f32;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            let mut q = 1.0f32;
            let mut version = None;
            for param in params {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim()),
                    _ => {}
                }
            }
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                if version.is_none_or(|v| v == "1.0.0") {
                    openmetrics = openmetrics.max(q);
                }
            } else if media.eq_ignore_ascii_case("text/plain") {
                plain = plain.max(q);
            }
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
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
    /// `None`: derived from the open-file limit at bind time.
    max_connections: Option<usize>,
    max_concurrent_requests: usize,
    shutdown_timeout: Duration,
}

impl MetricsServer {
    /// A server for `metrics` with the defaults below.
    pub fn new(metrics: PrometheusMetrics) -> Self {
        Self {
            service: MetricsService::new(metrics),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: None,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How long a client has to send request headers, counted from when
    /// the server starts waiting for them: when the connection opens, and
    /// after each answer on a keep-alive connection. So it is also the
    /// idle timeout: a connection that sends no complete request for this
    /// long is closed, whether it sends nothing or drips header bytes.
    /// Defaults to 5 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Most connections open at once. Accepting never waits for a slot:
    /// when a new connection would pass the cap, the oldest connection
    /// with no request being answered (idle, or still sending headers) is
    /// closed to make room; if every connection is being answered, the
    /// new one is closed instead. The cap keeps the server within its
    /// file-descriptor limit; it does not delay scrapes.
    ///
    /// Defaults to half the process's open-file soft limit (read from
    /// `/proc/self/limits` when the server is bound), between 64 and
    /// 4,096; 1,024 where that limit cannot be read. Zero is taken as one.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max.max(1));
        self
    }

    /// Most requests answered at once, over all connections. A complete
    /// request past the cap waits for a slot; idle connections and ones
    /// still sending headers take none. Defaults to 64. Zero is taken as
    /// one.
    pub fn max_concurrent_requests(mut self, max: usize) -> Self {
        self.max_concurrent_requests = max.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long shutdown waits for requests being answered to complete
    /// before closing their connections. Defaults to 5 s.
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
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_err)?;
        // As std's `TcpListener::bind` does on Unix.
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(bind_err)?;
        socket.bind(addr).map_err(bind_err)?;
        // std's backlog of 128 overflows under a burst of connects, and a
        // scraper's dropped SYN is retried only after a second.
        let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(BoundServer {
            listener,
            local_addr,
            config: self,
        })
    }
}

/// Half the open-file soft limit, so that the server's connections leave
/// descriptors for the rest of the process.
fn default_max_connections() -> usize {
    match open_file_limit() {
        Some(limit) => usize::try_from(limit / 2)
            .unwrap_or(usize::MAX)
            .clamp(64, DEFAULT_MAX_CONNECTIONS),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE`, without libc: Linux shows it in /proc.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files"; "unlimited" is no limit.
    match line.split_whitespace().nth(3)? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

/// A [`MetricsServer`] with its socket bound, not yet serving.
#[derive(Debug)]
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: MetricsServer,
}

/// One open connection, as the accept loop sees it.
#[derive(Debug, Default)]
struct ConnState {
    /// Requests being answered or waiting for a request slot.
    in_flight: AtomicUsize,
    /// Requests received so far (complete heads).
    received: AtomicU64,
    /// Asks the connection to close (shed, or server shutdown).
    close: Notify,
}

/// Open connections by accept order, oldest first.
type OpenConns = Arc<Mutex<BTreeMap<u64, Arc<ConnState>>>>;

fn lock(open: &OpenConns) -> MutexGuard<'_, BTreeMap<u64, Arc<ConnState>>> {
    // The map stays consistent even if a holder panicked.
    open.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks the oldest connection with no request in flight to close; false
/// if every connection is answering a request.
fn shed_oldest_idle(open: &mut BTreeMap<u64, Arc<ConnState>>) -> bool {
    let victim = open
        .iter()
        .find(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
        .map(|(&id, _)| id);
    match victim.and_then(|id| open.remove(&id)) {
        Some(conn) => {
            conn.close.notify_one();
            true
        }
        None => false,
    }
}

/// Held by a request from its arrival until its response body is handed
/// to hyper (dropped), then frees its request slot.
#[derive(Debug)]
struct RequestGuard {
    conn: Arc<ConnState>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The exposition body, holding the request's slot while hyper reads it.
#[derive(Debug)]
struct GuardedBody {
    body: Full<Bytes>,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl BoundServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `signal` completes, then shuts down gracefully: the
    /// listening socket is closed at once (new connections are refused),
    /// idle connections and ones that have not sent a complete request are
    /// closed at once, and requests already received are answered in full,
    /// each connection closing after its answer. Connections still
    /// answering after the shutdown timeout are cut.
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
        let max_connections = config
            .max_connections
            .unwrap_or_else(default_max_connections);
        let service = config.service;
        let permits = Arc::new(Semaphore::new(config.max_concurrent_requests));
        let open = OpenConns::default();
        // Owns the connection tasks, so none outlives the server.
        let mut conns = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        let mut next_id = 0u64;

        loop {
            let stream = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(_) => {
                        // Out of descriptors (EMFILE) or memory: free one by
                        // closing an idle connection, else wait for one.
                        let shed = shed_oldest_idle(&mut lock(&open));
                        let pause = if shed { 1 } else { 100 };
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        continue;
                    }
                },
            };
            let state = Arc::new(ConnState::default());
            {
                let mut open = lock(&open);
                if open.len() >= max_connections && !shed_oldest_idle(&mut open) {
                    // Every connection is answering a request: drop this one.
                    continue;
                }
                next_id += 1;
                open.insert(next_id, state.clone());
            }
            while conns.try_join_next().is_some() {}
            conns.spawn(serve_connection(
                &http,
                stream,
                service.clone(),
                permits.clone(),
                (next_id, state),
                open.clone(),
            ));
        }

        drop(listener);
        for conn in lock(&open).values() {
            conn.close.notify_one();
        }
        let drained = async { while conns.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(config.shutdown_timeout, drained).await;
        // Connections still answering after the grace period are cut.
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

/// Serves one connection until it ends or is asked to close.
fn serve_connection(
    http: &hyper::server::conn::http1::Builder,
    stream: TcpStream,
    service: MetricsService,
    permits: Arc<Semaphore>,
    (id, state): (u64, Arc<ConnState>),
    open: OpenConns,
) -> impl Future<Output = ()> + Send + 'static {
    let _ = stream.set_nodelay(true);
    let conn_state = state.clone();
    let conn = http.serve_connection(
        TokioIo::new(stream),
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            // Counted before waiting for a slot: a received request is
            // never shed.
            conn_state.received.fetch_add(1, Ordering::AcqRel);
            conn_state.in_flight.fetch_add(1, Ordering::AcqRel);
            let conn = conn_state.clone();
            let service = service.clone();
            let permits = permits.clone();
            async move {
                // The semaphore is never closed.
                let permit = permits.acquire_owned().await.ok();
                let guard = RequestGuard {
                    conn,
                    _permit: permit,
                };
                let res = service.respond(&req).map(|body| GuardedBody {
                    body,
                    _guard: guard,
                });
                Ok::<_, Infallible>(res)
            }
        }),
    );
    async move {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            // A client that hangs up or times out is not the server's error.
            _ = conn.as_mut() => {}
            () = state.close.notified() => {
                // Without a request received nothing is owed: drop the
                // connection. Otherwise finish the answer under way, if
                // any, and close (at once when keep-alive idle).
                if state.received.load(Ordering::Acquire) > 0 {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
        lock(&open).remove(&id);
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

    /// Shuts down gracefully and returns once the server task has ended:
    /// new connections are refused, idle connections and ones that have
    /// not sent a complete request are closed at once, and requests
    /// already received are answered in full for up to the shutdown
    /// timeout, after which their connections are cut. See
    /// [`BoundServer::serve_with_shutdown`].
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
    fn accept_is_negotiated() {
        let prefers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            accepts_openmetrics(&headers)
        };
        // What Prometheus 2.x sends.
        assert!(prefers("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
        assert!(prefers("application/openmetrics-text"));
        assert!(!prefers("text/plain;version=0.0.4"));
        assert!(!prefers("application/openmetrics-text;version=0.0.1"));
        assert!(!prefers("application/openmetrics-text;q=0"));
        assert!(!prefers("text/plain, application/openmetrics-text;q=0.5"));
        assert!(!prefers("*/*"));
        assert!(!accepts_openmetrics(&HeaderMap::new()));
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
    fn open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), Some(u64::MAX));
        assert_eq!(
            parse_open_file_limit("Max processes 10 10 processes\n"),
            None
        );
    }

    #[test]
    fn shedding_picks_the_oldest_connection_without_a_request() {
        let mut open = BTreeMap::new();
        for id in 1..=3 {
            open.insert(id, Arc::new(ConnState::default()));
        }
        open[&1].in_flight.store(1, Ordering::Relaxed);
        assert!(shed_oldest_idle(&mut open));
        assert_eq!(open.keys().copied().collect::<Vec<_>>(), [1, 3]);
        open[&3].in_flight.store(1, Ordering::Relaxed);
        assert!(!shed_oldest_idle(&mut open), "all answering: none shed");
        assert_eq!(open.len(), 2);
    }

    #[test]
    fn path_gets_a_leading_slash() {
        let s = MetricsService::new(PrometheusMetrics::new()).path("m");
        assert_eq!(&*s.path, "/m");
    }
}
