//! `VastMetricsService` over `reqwest::Client`.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use reqwest::ResponseBuilderExt;
use tower_service::Service;

use super::future::on_response;
use super::in_flight::InFlight;
use super::service::VastMetricsService;
use crate::classify::{error_type_of, Classifier, Outcome};
use crate::record::ClientSeries;
use crate::source::{RawHasher, SourceHasher, UrlHash};

impl UrlHash for reqwest::Url {
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64> {
        Some(hasher.hash_parts(self.scheme(), self.host_str()?, self.port(), self.path()))
    }

    fn raw_key(&self, raw: &RawHasher) -> u64 {
        // `Url` keeps its serialisation: these are slices of it.
        raw.hash(self.scheme(), self.authority(), self.path())
    }
}

impl<S, R> Service<reqwest::Request> for VastMetricsService<S, R>
where
    S: Service<reqwest::Request, Response = reqwest::Response>,
    S::Error: 'static,
    R: crate::recorder::Recording,
{
    type Response = reqwest::Response;
    type Error = S::Error;
    type Future = ReqwestResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx)
    }

    fn call(&mut self, req: reqwest::Request) -> Self::Future {
        // reqwest keeps a request's extensions to itself: the source comes
        // from the layer's name, an alias or the URL.
        let Some(state) = self.state.clone() else {
            return ReqwestResponseFuture {
                inner: self.get_mut().call(req),
                in_flight: None,
                inspect_limit: None,
                classify: None,
            };
        };
        let in_flight = state.begin(req.url(), None, req.headers());
        ReqwestResponseFuture {
            inner: self.get_mut().call(req),
            in_flight: Some(in_flight),
            inspect_limit: state.inspect_limit,
            classify: state.classify,
        }
    }
}

pin_project! {
    /// Response future of [`VastMetricsService`] over `reqwest::Client`.
    pub struct ReqwestResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight<ClientSeries>>,
        inspect_limit: Option<usize>,
        classify: Option<Classifier>,
    }
}

impl<F, E> Future for ReqwestResponseFuture<F>
where
    F: Future<Output = Result<reqwest::Response, E>>,
    E: 'static,
{
    type Output = Result<reqwest::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(match result {
            Ok(response) => Ok(track_response(response, in_flight, *this.inspect_limit)),
            Err(error) => {
                if let Some(mut in_flight) = in_flight {
                    in_flight.finish(Outcome::Failure(error_type_of(&error, *this.classify)));
                }
                Err(error)
            }
        })
    }
}

/// Ends `response`'s request at a failing status, or hands it to the body
/// to end (see [`on_response`]): the status, headers, URL, extensions and
/// bytes are those of `response`.
pub(crate) fn track_response(
    response: reqwest::Response,
    in_flight: Option<InFlight<ClientSeries>>,
    inspect_limit: Option<usize>,
) -> reqwest::Response {
    if in_flight.is_none() {
        return response;
    }
    // Round-trip through http::Response to wrap the body; the URL does not
    // survive that trip by itself: reqwest keeps it in an extension of its
    // own, set by `ResponseBuilderExt::url`.
    let url = response.url().clone();
    let response: http::Response<reqwest::Body> = response.into();
    let (mut parts, body) =
        on_response(response, in_flight, inspect_limit, None, None).into_parts();
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    reqwest::Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}
