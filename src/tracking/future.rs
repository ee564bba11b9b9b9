use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use crate::classify::{error_type_of, Classifier, ErrorType, Outcome};
use crate::layer::InFlight;
use crate::record::EventSeries;

/// A response whose status ends a tracking request.
pub trait TrackingResponse {
    /// The response status.
    fn status(&self) -> http::StatusCode;
}

impl<B> TrackingResponse for http::Response<B> {
    fn status(&self) -> http::StatusCode {
        self.status()
    }
}

#[cfg(feature = "reqwest")]
impl TrackingResponse for reqwest::Response {
    fn status(&self) -> http::StatusCode {
        self.status()
    }
}

pin_project! {
    /// Response future of [`TrackingMetricsService`](super::TrackingMetricsService):
    /// ends the request at the response headers.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight<EventSeries>>,
        classify: Option<Classifier>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        in_flight: Option<InFlight<EventSeries>>,
        classify: Option<Classifier>,
    ) -> Self {
        ResponseFuture {
            inner,
            in_flight,
            classify,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    T: TrackingResponse,
    E: 'static,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(mut in_flight) = this.in_flight.take() {
            in_flight.headers();
            let outcome = match &result {
                // A 3xx took the hit too: the redirect (to a partner's
                // pixel, often) is the player's to follow, not a failure.
                Ok(response) if response.status().is_redirection() => Outcome::Ad,
                Ok(response) => match ErrorType::from_status(response.status()) {
                    Some(error) => Outcome::Failure(error),
                    None => Outcome::Ad,
                },
                Err(error) => Outcome::Failure(error_type_of(error, *this.classify)),
            };
            in_flight.finish(outcome);
        }
        Poll::Ready(result)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}
