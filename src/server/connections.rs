//! Connections of the `/metrics` server: their state, shedding the
//! oldest idle one past the cap, a request's slot held until its body is
//! handed over.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::MetricsService;

#[derive(Debug, Default)]
pub(super) struct ConnState {
    /// Requests being answered or waiting for a request slot.
    pub(super) in_flight: AtomicUsize,
    /// Requests received so far (complete heads).
    pub(super) received: AtomicU64,
    /// Asks the connection to close (shed, or server shutdown).
    pub(super) close: Notify,
}

/// Open connections by accept order, oldest first.
pub(super) type OpenConns = Arc<Mutex<BTreeMap<u64, Arc<ConnState>>>>;

pub(super) fn lock(open: &OpenConns) -> MutexGuard<'_, BTreeMap<u64, Arc<ConnState>>> {
    // The map stays consistent even if a holder panicked.
    open.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks the oldest connection with no request in flight to close; false
/// if every connection is answering a request.
pub(super) fn shed_oldest_idle(open: &mut BTreeMap<u64, Arc<ConnState>>) -> bool {
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
pub(super) struct RequestGuard {
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
pub(super) struct GuardedBody {
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

pub(super) fn serve_connection(
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

pub(super) fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
