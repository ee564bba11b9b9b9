use quanta::Instant;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::in_flight::InFlight;
use crate::classify::{ErrorType, Outcome};
use crate::record::ClientSeries;
use crate::vast::{inspect_chunks, VastVerdict};

/// Where the layer leaves its verdict on a body, and how long it took, for
/// a fetcher above it (a [`MultiSource`](crate::MultiSource) attempt), so
/// that a body is inspected once.
#[derive(Clone, Default)]
pub(crate) struct VerdictSlot(pub(crate) Arc<OnceLock<(VastVerdict, std::time::Duration)>>);

pin_project! {
    /// Response body of [`VastMetricsService`](super::VastMetricsService):
    /// the inner body, byte for byte, ending the request when it ends,
    /// fails or is dropped.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight<ClientSeries>>,
        inspector: Option<Inspector>,
        slot: Option<VerdictSlot>,
    }
}

impl<B: Body> ResponseBody<B>
where
    B::Data: Clone,
{
    #[inline]
    pub(crate) fn untracked(inner: B) -> Self {
        ResponseBody {
            inner,
            in_flight: None,
            inspector: None,
            slot: None,
        }
    }

    pub(crate) fn tracked(
        inner: B,
        in_flight: InFlight<ClientSeries>,
        inspect_limit: Option<usize>,
        slot: Option<VerdictSlot>,
    ) -> Self {
        let mut body = ResponseBody {
            inner,
            in_flight: Some(in_flight),
            inspector: inspect_limit.map(Inspector::new),
            slot,
        };
        // A body that is over before it starts may never be polled.
        if body.inner.is_end_stream() {
            finish(&mut body.in_flight, &mut body.inspector, &body.slot);
        }
        body
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for ResponseBody<B>
where
    B::Data: Clone,
{
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.in_flight.is_some() {
            match &frame {
                Some(Ok(frame)) => {
                    if let (Some(inspector), Some(data)) =
                        (this.inspector.as_mut(), frame.data_ref())
                    {
                        inspector.push(data);
                    }
                    if this.inner.is_end_stream() {
                        finish(this.in_flight, this.inspector, this.slot);
                    }
                }
                Some(Err(_)) => {
                    if let Some(mut in_flight) = this.in_flight.take() {
                        in_flight.finish(Outcome::Failure(ErrorType::Body));
                    }
                }
                None => finish(this.in_flight, this.inspector, this.slot),
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Ends the request at the end of its body, with the inspection's verdict.
fn finish(
    in_flight: &mut Option<InFlight<ClientSeries>>,
    inspector: &mut Option<Inspector>,
    slot: &Option<VerdictSlot>,
) {
    let Some(mut in_flight) = in_flight.take() else {
        return;
    };
    // The clock stops before parsing: latency is the network's. The same
    // reading starts the parse timer.
    let now = Instant::now();
    let elapsed = in_flight.elapsed_at(now);
    match inspector.take().and_then(|i| i.inspect(now)) {
        Some((verdict, took)) => {
            if let Some(slot) = slot {
                let _ = slot.0.set((verdict, took));
            }
            in_flight.finish_after(verdict.outcome(), elapsed, Some((verdict, took)))
        }
        None => in_flight.finish_after(Outcome::Ad, elapsed, None),
    }
}

/// The body's frames, retained by reference count (`Bytes` frames are not
/// copied) up to a cap.
pub(crate) struct Inspector {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    over_limit: bool,
}

impl Inspector {
    fn new(limit: usize) -> Self {
        Inspector {
            chunks: Vec::new(),
            len: 0,
            limit,
            over_limit: false,
        }
    }

    fn push<D: Buf + Clone>(&mut self, data: &D) {
        if self.over_limit {
            return;
        }
        self.len += data.remaining();
        if self.len > self.limit {
            self.over_limit = true;
            self.chunks = Vec::new();
        } else if data.has_remaining() {
            // For `Bytes` (hyper, reqwest) a reference count, not a copy.
            let mut data = data.clone();
            self.chunks.push(data.copy_to_bytes(data.remaining()));
        }
    }

    /// The verdict and how long it took; `None` past the cap.
    fn inspect(self, start: Instant) -> Option<(VastVerdict, std::time::Duration)> {
        if self.over_limit {
            return None;
        }
        let verdict = inspect_chunks(&self.chunks);
        Some((verdict, start.elapsed()))
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}
