//! `VastMetricsService` over `reqwest::Client`.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use reqwest::ResponseBuilderExt;
use tower_service::Service;

use super::future::on_response;
use super::in_flight::InFlight;
use super::layer::UrlHash;
use super::service::VastMetricsService;
use crate::classify::{ClassifyError, Outcome};
use crate::recorder::Recorder;
use crate::source::SourceHasher;

impl UrlHash for reqwest::Url {
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64> {
        Some(hasher.hash_parts(self.scheme(), self.host_str()?, self.port(), self.path()))
    }
}

impl<S, R> Service<reqwest::Request> for VastMetricsService<S, R>
where
    S: Service<reqwest::Request, Response = reqwest::Response>,
    S::Error: ClassifyError,
    R: Recorder,
{
    type Response = reqwest::Response;
    type Error = S::Error;
    type Future = ReqwestResponseFuture<S::Future, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx)
    }

    fn call(&mut self, req: reqwest::Request) -> Self::Future {
        // reqwest keeps a request's extensions to itself: the source comes
        // from the layer's name, an alias or the URL.
        let in_flight = InFlight::begin(&self.state, req.url(), None);
        let inspect_limit = self.inspect_limit();
        ReqwestResponseFuture {
            inner: self.get_mut().call(req),
            in_flight,
            inspect_limit,
        }
    }
}

pin_project! {
    /// Response future of [`VastMetricsService`] over `reqwest::Client`.
    pub struct ReqwestResponseFuture<F, R: Recorder> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight<R>>,
        inspect_limit: Option<usize>,
    }
}

impl<F, R, E> Future for ReqwestResponseFuture<F, R>
where
    F: Future<Output = Result<reqwest::Response, E>>,
    E: ClassifyError,
    R: Recorder,
{
    type Output = Result<reqwest::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(match result {
            Ok(response) if in_flight.is_none() => Ok(response),
            Ok(response) => {
                // Round-trip through http::Response to wrap the body; the URL
                // does not survive that trip by itself.
                let url = response.url().clone();
                let response: http::Response<reqwest::Body> = response.into();
                let (parts, body) =
                    on_response(response, in_flight, *this.inspect_limit).into_parts();
                let mut with_url = http::Response::builder()
                    .url(url)
                    .body(reqwest::Body::wrap(body))
                    .expect("no fallible parts set");
                let extensions = std::mem::take(with_url.extensions_mut());
                let mut rebuilt = http::Response::from_parts(parts, with_url.into_body());
                rebuilt.extensions_mut().extend(extensions);
                Ok(reqwest::Response::from(rebuilt))
            }
            Err(error) => {
                if let Some(mut in_flight) = in_flight {
                    in_flight.finish(Outcome::Failure(error.error_type()));
                }
                Err(error)
            }
        })
    }
}
