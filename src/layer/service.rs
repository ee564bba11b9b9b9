use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::{ResponseBody, VerdictSlot};
use super::future::ResponseFuture;
use super::in_flight::InFlight;
use super::layer::{Config, Latency};
use super::redirect::Redirecting;
use crate::classify::{Classifier, Deadline};
use crate::record::ClientSeries;
use crate::recorder::{RecordError, Recorder, Recording};
use crate::source::{SourceLabel, SourceResolver, UrlHash};
use crate::trace;

/// What every service of one layer shares: the recorder, the per-source
/// handles, and what the configuration says about each request.
pub(crate) struct State {
    recorder: Arc<dyn Recorder>,
    sources: SourceResolver<ClientSeries>,
    latency: Latency,
    pub(crate) inspect_limit: Option<usize>,
    pub(crate) classify: Option<Classifier>,
    trace_exemplars: bool,
}

impl State {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, config: &Config) -> Self {
        let mut sources = SourceResolver::new(config.sources.clone());
        // Expiring a source frees its slot under the cap: only worth it
        // (and only bounded) when the backend drops the released series.
        if recorder.drops_released() {
            sources = sources.expiring(ClientSeries::release);
        }
        State {
            recorder,
            sources,
            latency: config.latency,
            inspect_limit: config.inspect.then_some(config.inspect_limit),
            classify: config.classify,
            trace_exemplars: config.trace_exemplars,
        }
    }

    /// Starts a request: resolves its source (no allocation once known).
    #[inline]
    pub(crate) fn begin(
        &self,
        url: &dyn UrlHash,
        extensions: Option<&Extensions>,
        headers: &HeaderMap,
    ) -> InFlight<ClientSeries> {
        // One clock read: the request's start, and its source's last use.
        let start = quanta::Instant::now();
        let source = self.sources.resolve(
            extensions.and_then(|e| e.get::<SourceLabel>()),
            url,
            start,
            |label| ClientSeries::new(self.recorder.clone(), label),
            || self.recorder.record_error(RecordError::SourceLabelOverflow),
        );
        let deadline = extensions.and_then(|e| e.get::<Deadline>()).copied();
        let trace = self
            .trace_exemplars
            .then(|| trace::from_headers(headers))
            .flatten();
        InFlight::begin_at(source, start, self.latency, deadline).traced(trace)
    }
}

/// Service made by [`VastMetricsLayer`](super::VastMetricsLayer): records
/// each request to the inner service. With
/// [`NoOpMetrics`](crate::NoOpMetrics) it is the inner service's twin:
/// same response, error and future types, no work.
pub struct VastMetricsService<S, R = crate::PrometheusMetrics> {
    inner: S,
    /// `None` when the recorder records nothing: requests pass untouched.
    pub(crate) state: Option<Arc<State>>,
    backend: PhantomData<fn() -> R>,
}

impl<S, R> VastMetricsService<S, R> {
    pub(crate) fn new(inner: S, state: Option<Arc<State>>) -> Self {
        VastMetricsService {
            inner,
            state,
            backend: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R> Clone for VastMetricsService<S, R> {
    fn clone(&self) -> Self {
        VastMetricsService {
            inner: self.inner.clone(),
            state: self.state.clone(),
            backend: PhantomData,
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for VastMetricsService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastMetricsService")
            .field("inner", &self.inner)
            .field("recording", &self.state.is_some())
            .finish()
    }
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for VastMetricsService<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
    ResB: Body,
    ResB::Data: Clone,
    R: Recording,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(state) = &self.state else {
            return ResponseFuture::untracked(self.inner.call(req));
        };
        // Most requests carry no extensions: skip the lookups.
        let extensions = Some(req.extensions()).filter(|e| !e.is_empty());
        // The follow-up of a redirect this layer saw continues its request.
        let redirect = extensions
            .and_then(|e| e.get::<Redirecting>())
            .map(|marker| marker.at(state));
        let in_flight = match redirect.as_ref().and_then(|r| r.take()) {
            Some(in_flight) => in_flight,
            None => state.begin(req.uri(), extensions, req.headers()),
        };
        let slot = extensions.and_then(|e| e.get::<VerdictSlot>()).cloned();
        ResponseFuture::new(self.inner.call(req), in_flight, state, slot, redirect)
    }
}

/// With [`NoOpMetrics`](crate::NoOpMetrics): the inner service, untouched.
impl<S, Req> Service<Req> for VastMetricsService<S, crate::NoOpMetrics>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline(always)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        self.inner.call(req)
    }
}
