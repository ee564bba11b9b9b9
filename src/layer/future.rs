use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::{Encoding, ResponseBody, VerdictSlot};
use super::in_flight::InFlight;
use super::redirect::{location, LayerHold};
use super::service::State;
use crate::classify::{error_type_of, Classifier, ErrorType, Outcome};
use crate::record::ClientSeries;

pin_project! {
    /// Response future of [`VastMetricsService`](super::VastMetricsService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight<ClientSeries>>,
        inspect_limit: Option<usize>,
        classify: Option<Classifier>,
        slot: Option<VerdictSlot>,
        redirect: Option<LayerHold>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn new(
        inner: F,
        in_flight: InFlight<ClientSeries>,
        state: &State,
        slot: Option<VerdictSlot>,
        redirect: Option<LayerHold>,
    ) -> Self {
        ResponseFuture {
            inner,
            in_flight: Some(in_flight),
            inspect_limit: state.inspect_limit,
            classify: state.classify,
            slot,
            redirect,
        }
    }

    #[inline]
    pub(crate) fn untracked(inner: F) -> Self {
        ResponseFuture {
            inner,
            in_flight: None,
            inspect_limit: None,
            classify: None,
            slot: None,
            redirect: None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
    B: Body,
    B::Data: Clone,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(match result {
            Ok(response) => Ok(on_response(
                response,
                in_flight,
                *this.inspect_limit,
                this.slot.take(),
                this.redirect.take(),
            )),
            Err(error) => {
                if let Some(mut in_flight) = in_flight {
                    in_flight.finish(Outcome::Failure(error_type_of(&error, *this.classify)));
                }
                Err(error)
            }
        })
    }
}

/// Ends a request at a failing status, or hands it to the body to end; a
/// redirect that a fetcher above follows leaves it in flight, for the
/// follow-up to take over.
#[inline]
pub(crate) fn on_response<B>(
    response: Response<B>,
    in_flight: Option<InFlight<ClientSeries>>,
    inspect_limit: Option<usize>,
    slot: Option<VerdictSlot>,
    redirect: Option<LayerHold>,
) -> Response<ResponseBody<B>>
where
    B: Body,
    B::Data: Clone,
{
    let Some(mut in_flight) = in_flight else {
        return response.map(ResponseBody::untracked);
    };
    in_flight.headers();
    if let Some(outcome) = ErrorType::status_outcome(response.status()) {
        match redirect {
            Some(redirect) if location(response.status(), response.headers()).is_some() => {
                redirect.hold(in_flight)
            }
            _ => {
                in_flight.finish(outcome);
            }
        }
        return response.map(ResponseBody::untracked);
    }
    let inspect = inspect_limit.map(|limit| (limit, Encoding::of(response.headers())));
    response.map(|body| ResponseBody::tracked(body, in_flight, inspect, slot))
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}
