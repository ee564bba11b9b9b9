use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::in_flight::InFlight;
use crate::classify::{ClassifyError, Outcome};
use crate::recorder::Recorder;

pin_project! {
    /// Response future of [`VastMetricsService`](super::VastMetricsService).
    pub struct ResponseFuture<F, R: Recorder> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight<R>>,
        inspect_limit: Option<usize>,
    }
}

impl<F, R: Recorder> ResponseFuture<F, R> {
    pub(crate) fn new(
        inner: F,
        in_flight: Option<InFlight<R>>,
        inspect_limit: Option<usize>,
    ) -> Self {
        ResponseFuture {
            inner,
            in_flight,
            inspect_limit,
        }
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: ClassifyError,
    B: Body,
    B::Data: Clone,
    R: Recorder,
{
    type Output = Result<Response<ResponseBody<B, R>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(match result {
            Ok(response) => Ok(on_response(response, in_flight, *this.inspect_limit)),
            Err(error) => {
                if let Some(mut in_flight) = in_flight {
                    in_flight.finish(Outcome::Failure(error.error_type()));
                }
                Err(error)
            }
        })
    }
}

/// Ends a request at its headers, or hands it to the body to end.
#[inline]
pub(crate) fn on_response<B, R>(
    response: Response<B>,
    in_flight: Option<InFlight<R>>,
    inspect_limit: Option<usize>,
) -> Response<ResponseBody<B, R>>
where
    B: Body,
    B::Data: Clone,
    R: Recorder,
{
    let Some(mut in_flight) = in_flight else {
        return response.map(ResponseBody::untracked);
    };
    in_flight.headers();
    if let Some(error) = crate::classify::ErrorType::from_status(response.status()) {
        in_flight.finish(Outcome::Failure(error));
        return response.map(ResponseBody::untracked);
    }
    if in_flight.ends_at_headers() {
        in_flight.finish(Outcome::Ad);
        return response.map(ResponseBody::untracked);
    }
    response.map(|body| ResponseBody::tracked(body, in_flight, inspect_limit))
}

impl<F, R: Recorder> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}
