//! [`MetricsServer`]: the builder, the bound listener and its accept
//! loop, the running server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::connections::{
    is_connection_error, lock, serve_connection, shed_oldest_idle, ConnState, OpenConns,
};
use super::MetricsService;
use crate::prometheus::PrometheusMetrics;

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

pub(super) fn bind_message(addr: SocketAddr, source: &io::Error) -> String {
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
pub(super) fn default_max_connections() -> usize {
    match open_file_limit() {
        Some(limit) => usize::try_from(limit / 2)
            .unwrap_or(usize::MAX)
            .clamp(64, DEFAULT_MAX_CONNECTIONS),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE`, without libc: Linux shows it in /proc.
pub(super) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

pub(super) fn parse_open_file_limit(limits: &str) -> Option<u64> {
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
