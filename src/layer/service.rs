use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::in_flight::InFlight;
use super::layer::{Mode, State, VastMetricsLayer};
use crate::classify::ClassifyError;
use crate::recorder::Recorder;

/// Service made by [`VastMetricsLayer`]: records each request to the inner
/// service.
pub struct VastMetricsService<S, R: Recorder = crate::NoOpMetrics> {
    inner: S,
    pub(crate) state: Arc<State<R>>,
}

impl<S, R: Recorder> VastMetricsService<S, R> {
    /// Wraps `inner` with the configuration and handles of `layer`.
    pub fn from_layer(layer: &VastMetricsLayer<R>, inner: S) -> Self {
        VastMetricsService {
            inner,
            state: layer.state().clone(),
        }
    }

    /// A layer recording into `recorder`.
    pub fn layer(recorder: R) -> VastMetricsLayer<R> {
        VastMetricsLayer::new(recorder)
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

    /// Bytes to inspect per body, or `None` when not inspecting.
    pub(crate) fn inspect_limit(&self) -> Option<usize> {
        let config = &self.state.config;
        (R::ENABLED && config.inspect && config.mode == Mode::Client)
            .then_some(config.inspect_limit)
    }
}

impl<S: Clone, R: Recorder> Clone for VastMetricsService<S, R> {
    fn clone(&self) -> Self {
        VastMetricsService {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: fmt::Debug, R: Recorder> fmt::Debug for VastMetricsService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastMetricsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for VastMetricsService<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: ClassifyError,
    ResB: Body,
    ResB::Data: Clone,
    R: Recorder,
{
    type Response = Response<ResponseBody<ResB, R>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let in_flight = InFlight::begin(&self.state, req.uri(), Some(req.extensions()));
        ResponseFuture::new(self.inner.call(req), in_flight, self.inspect_limit())
    }
}
