use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::TrackingConfig;
use super::TrackingEvent;
use crate::classify::{Classifier, Deadline};
use crate::layer::{InFlight, Latency};
use crate::record::EventSeries;
use crate::recorder::{RecordError, Recorder};
use crate::source::{SourceConfig, SourceResolver};

/// What every service of one tracking layer shares.
pub(crate) struct TrackingState {
    recorder: Arc<dyn Recorder>,
    events: SourceResolver<EventSeries>,
    default_event: Cow<'static, str>,
    pub(crate) classify: Option<Classifier>,
}

impl TrackingState {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, config: &TrackingConfig) -> Self {
        TrackingState {
            recorder,
            events: SourceResolver::new(SourceConfig::new(config.max_event_types)),
            default_event: config.default_event.clone(),
            classify: config.classify,
        }
    }

    pub(crate) fn begin(
        &self,
        extensions: Option<&Extensions>,
        headers: &http::HeaderMap,
    ) -> InFlight<EventSeries> {
        let event = extensions
            .and_then(|e| e.get::<TrackingEvent>())
            .map_or(&*self.default_event, TrackingEvent::as_str);
        let series = self.events.by_name(
            event,
            |event| EventSeries::new(self.recorder.clone(), event),
            || self.recorder.record_error(RecordError::SourceLabelOverflow),
        );
        let deadline = extensions.and_then(|e| e.get::<Deadline>()).copied();
        InFlight::begin(series, Latency::ToHeaders, deadline)
            .traced(crate::trace::from_headers(headers))
    }
}

/// Service made by [`TrackingMetricsLayer`](super::TrackingMetricsLayer).
pub struct TrackingMetricsService<S> {
    inner: S,
    state: Option<Arc<TrackingState>>,
}

impl<S> TrackingMetricsService<S> {
    pub(crate) fn new(inner: S, state: Option<Arc<TrackingState>>) -> Self {
        TrackingMetricsService { inner, state }
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

impl<S: Clone> Clone for TrackingMetricsService<S> {
    fn clone(&self) -> Self {
        TrackingMetricsService {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for TrackingMetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingMetricsService")
            .field("inner", &self.inner)
            .field("recording", &self.state.is_some())
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for TrackingMetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(state) = &self.state else {
            return ResponseFuture::new(self.inner.call(req), None, None);
        };
        let in_flight = state.begin(Some(req.extensions()), req.headers());
        ResponseFuture::new(self.inner.call(req), Some(in_flight), state.classify)
    }
}

#[cfg(feature = "reqwest")]
impl<S> Service<reqwest::Request> for TrackingMetricsService<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response>,
    S::Error: 'static,
{
    type Response = reqwest::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: reqwest::Request) -> Self::Future {
        // reqwest keeps extensions to itself: the default event.
        let Some(state) = &self.state else {
            return ResponseFuture::new(self.inner.call(req), None, None);
        };
        let in_flight = state.begin(None, req.headers());
        ResponseFuture::new(self.inner.call(req), Some(in_flight), state.classify)
    }
}
