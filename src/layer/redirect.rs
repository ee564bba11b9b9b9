//! Redirects followed above the layer: one client request per logical
//! fetch, as over a client that follows them itself (reqwest).
//!
//! The crate's fetchers ([`MultiSource`](crate::MultiSource),
//! [`WrapperResolver`](crate::wrapper::WrapperResolver)) put a
//! [`Redirecting`] into the extensions of each request they may redirect,
//! and of its follow-ups. A layer that sees a 3xx it would follow leaves its
//! request in flight there instead of ending it; the follow-up through the
//! same layer takes it over. So the request counts once, its latency spans
//! the redirects and its outcome is the final answer's. A request the
//! fetcher does not follow is ended by it as `redirect`; one left behind
//! (the fetch timed out or was dropped between two requests) ends when the
//! marker drops, as any dropped request does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::header::LOCATION;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::in_flight::InFlight;
use super::service::State;
use crate::classify::Outcome;
use crate::record::ClientSeries;

/// The `Location` of an answer that sends the client on: 301, 302, 303,
/// 307 or 308 with a `Location`. The one rule of the layer and the
/// fetchers.
pub(crate) fn location(status: StatusCode, headers: &HeaderMap) -> Option<&HeaderValue> {
    match status.as_u16() {
        301 | 302 | 303 | 307 | 308 => headers.get(LOCATION),
        _ => None,
    }
}

/// Marks the requests of one fetch that follows redirects, and holds the
/// layers' requests between a redirect and its follow-up.
#[derive(Clone, Default)]
pub(crate) struct Redirecting(Arc<Held>);

#[derive(Default)]
struct Held {
    /// Requests held: read before locking, so that the fetch's first
    /// request (nothing held) takes no lock.
    count: AtomicUsize,
    /// By layer (its state's address): stacked layers keep their own.
    requests: Mutex<Vec<(usize, InFlight<ClientSeries>)>>,
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, Vec<(usize, InFlight<ClientSeries>)>> {
        // A panic elsewhere must not stop the recording.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Redirecting {
    /// This marker as seen by the layer of `state`.
    pub(crate) fn at(&self, state: &State) -> LayerHold {
        LayerHold {
            marker: self.clone(),
            layer: std::ptr::from_ref(state) as usize,
        }
    }

    /// Ends every request held with `outcome`: the fetcher stops here.
    pub(crate) fn end(&self, outcome: Outcome) {
        if self.0.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let held = {
            let mut requests = self.0.lock();
            self.0.count.store(0, Ordering::Release);
            std::mem::take(&mut *requests)
        };
        for (_, mut request) in held {
            request.finish(outcome);
        }
    }
}

/// A [`Redirecting`] marker and the layer that sees it.
pub(crate) struct LayerHold {
    marker: Redirecting,
    layer: usize,
}

impl LayerHold {
    /// The request this layer left in flight at the last redirect, if any.
    pub(crate) fn take(&self) -> Option<InFlight<ClientSeries>> {
        let held = &self.marker.0;
        if held.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut requests = held.lock();
        let index = requests
            .iter()
            .position(|(layer, _)| *layer == self.layer)?;
        held.count.fetch_sub(1, Ordering::AcqRel);
        Some(requests.swap_remove(index).1)
    }

    /// Leaves `request` in flight for the follow-up of a redirect.
    pub(crate) fn hold(&self, request: InFlight<ClientSeries>) {
        let held = &self.marker.0;
        let mut requests = held.lock();
        requests.push((self.layer, request));
        held.count.fetch_add(1, Ordering::AcqRel);
    }
}
