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
use crate::recorder::RecordError;
use crate::vast::{Inspection, VastVerdict};

/// Where the layer leaves its inspection of a body, and how long it took,
/// for a fetcher above it (a [`MultiSource`](crate::MultiSource) attempt,
/// a [`WrapperResolver`](crate::wrapper::WrapperResolver)), so that a body
/// is scanned once. The fetcher then records the pod of the answer it
/// keeps, for the source it asked.
#[derive(Clone, Default)]
pub(crate) struct VerdictSlot(pub(crate) Arc<OnceLock<(Inspection, std::time::Duration)>>);

pin_project! {
    /// Response body of [`VastMetricsService`](super::VastMetricsService):
    /// the inner body, byte for byte, ending the request when it ends,
    /// fails or is dropped.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight<ClientSeries>>,
        // Boxed: the body moves with the response, and is kept small.
        inspector: Option<Box<Inspector>>,
        slot: Option<VerdictSlot>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped before its end: `cancelled` (by the guard), unless what
            // was read is already a complete VAST document: then the caller
            // had it all, and its verdict counts.
            if this.in_flight.is_some() && this.inspector.is_some() {
                finish_if_complete(this.in_flight, this.inspector, this.slot);
            }
        }
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
        inspect: Option<(usize, Encoding)>,
        slot: Option<VerdictSlot>,
    ) -> Self {
        let mut body = ResponseBody {
            inner,
            in_flight: Some(in_flight),
            inspector: inspect.map(|(limit, encoding)| Box::new(Inspector::new(limit, encoding))),
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
    inspector: &mut Option<Box<Inspector>>,
    slot: &Option<VerdictSlot>,
) {
    let Some(in_flight) = in_flight.take() else {
        return;
    };
    // The clock stops before parsing: latency is the network's. The same
    // reading starts the parse timer.
    let now = Instant::now();
    let verdict = inspector.take().and_then(|inspector| {
        if inspector.encoding == Encoding::Unsupported {
            if let Some(target) = in_flight.target() {
                target.record_error(RecordError::UnsupportedEncoding);
            }
        }
        inspector.peek()
    });
    end(in_flight, verdict, now, slot);
}

/// On a drop before the end: ends the request by its verdict when the bytes
/// read make a complete VAST document; otherwise leaves it to the guard.
fn finish_if_complete(
    in_flight: &mut Option<InFlight<ClientSeries>>,
    inspector: &mut Option<Box<Inspector>>,
    slot: &Option<VerdictSlot>,
) {
    let now = Instant::now();
    match inspector.as_deref().and_then(Inspector::peek) {
        Some(inspection) if inspection.verdict.is_vast() => {
            if let Some(in_flight) = in_flight.take() {
                end(in_flight, Some(inspection), now, slot);
            }
        }
        _ => {}
    }
}

/// Ends the request with the verdict read at `now` (`None`: not inspected,
/// or past the cap: the HTTP verdict).
fn end(
    mut in_flight: InFlight<ClientSeries>,
    inspection: Option<Inspection>,
    now: Instant,
    slot: &Option<VerdictSlot>,
) {
    let elapsed = in_flight.elapsed_at(now);
    let Some(inspection) = inspection else {
        return in_flight.finish_after(Outcome::Ad, elapsed, None);
    };
    let took = now.elapsed();
    let verdict = inspection.verdict;
    match slot {
        Some(slot) => {
            let _ = slot.0.set((inspection, took));
        }
        None => {
            if let Some(target) = in_flight.target() {
                target.answered(&inspection);
            }
        }
    }
    in_flight.finish_after(verdict.outcome(), elapsed, Some((verdict, took)))
}

/// A body's `Content-Encoding`, as far as the inspection is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
    /// Another coding (`br`, `zstd`, several): not inspected.
    Unsupported,
}

impl Encoding {
    pub(crate) fn of(headers: &http::HeaderMap) -> Self {
        let mut values = headers.get_all(http::header::CONTENT_ENCODING).iter();
        let Some(value) = values.next() else {
            return Encoding::Identity;
        };
        if values.next().is_some() {
            return Encoding::Unsupported;
        }
        let value = value.to_str().unwrap_or("").trim();
        if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Encoding::Gzip
        } else if value.eq_ignore_ascii_case("deflate") {
            Encoding::Deflate
        } else if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Encoding::Identity
        } else {
            Encoding::Unsupported
        }
    }
}

/// The body's frames, retained by reference count (`Bytes` frames are not
/// copied) up to a cap.
pub(crate) struct Inspector {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    over_limit: bool,
    encoding: Encoding,
}

impl Inspector {
    fn new(limit: usize, encoding: Encoding) -> Self {
        Inspector {
            chunks: Vec::new(),
            len: 0,
            limit,
            over_limit: false,
            encoding,
        }
    }

    fn push<D: Buf + Clone>(&mut self, data: &D) {
        if self.over_limit || self.encoding == Encoding::Unsupported {
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

    /// The inspection of what was retained; `None` past the cap.
    fn peek(&self) -> Option<Inspection> {
        if self.over_limit {
            return None;
        }
        match self.encoding {
            Encoding::Identity => Some(Inspection::of_chunks(&self.chunks)),
            Encoding::Gzip | Encoding::Deflate => {
                match decode(&self.chunks, self.encoding, self.limit) {
                    Ok(Some(decoded)) => Some(Inspection::of(&decoded)),
                    // Decoded past the cap: the HTTP verdict.
                    Ok(None) => None,
                    // What a player could not decode, it could not parse.
                    Err(_) => Some(Inspection::verdict(VastVerdict::InvalidXml)),
                }
            }
            Encoding::Unsupported => None,
        }
    }
}

/// The inspection of a whole body with its `Content-Encoding`; `None` when
/// it is not inspected (an unsupported encoding, past `limit`).
pub(crate) fn inspect_whole(body: &Bytes, encoding: Encoding, limit: usize) -> Option<Inspection> {
    let mut inspector = Inspector::new(limit, encoding);
    inspector.push(body);
    inspector.peek()
}

/// Decodes a gzip or deflate body, at most `limit` decoded bytes: `None`
/// when it decodes to more (a 10 KB gzip bomb costs the cap, not 1 GB).
fn decode(chunks: &[Bytes], encoding: Encoding, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let joined;
    let encoded: &[u8] = match chunks {
        [one] => one,
        _ => {
            joined = chunks.concat();
            &joined
        }
    };
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(encoded)),
        // HTTP's deflate is zlib-wrapped; some servers send it raw.
        Encoding::Deflate if is_zlib(encoded) => Box::new(flate2::read::ZlibDecoder::new(encoded)),
        Encoding::Deflate => Box::new(flate2::read::DeflateDecoder::new(encoded)),
        Encoding::Identity | Encoding::Unsupported => Box::new(encoded),
    };
    let mut decoded = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut decoded)?;
    Ok((decoded.len() <= limit).then_some(decoded))
}

/// A zlib header: deflate method, and a check value divisible by 31.
fn is_zlib(bytes: &[u8]) -> bool {
    matches!(bytes, [cmf, flg, ..] if cmf & 0x0F == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

impl<B: std::fmt::Debug> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}
