use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use super::chain::{fetch_vast, follow, ChainGuard, WrapperRecorder};
use super::redirect::Redirects;
use super::{ChainReport, ChainResult, DEFAULT_MAX_DEPTH, DEFAULT_MAX_REDIRECTS};
use crate::classify::{Deadline, Outcome};
use crate::record::ChainSeries;
use crate::recorder::Recorder;
use crate::source::{SourceConfig, SourceLabel, DEFAULT_MAX_SOURCES};

/// Layer that resolves wrapper chains in front of a VAST client (see the
/// [module docs](crate::wrapper)).
#[derive(Clone)]
pub struct WrapperResolverLayer {
    recorder: Arc<dyn Recorder>,
    max_depth: usize,
    max_redirects: usize,
    state: Arc<OnceLock<Arc<WrapperRecorder>>>,
}

impl fmt::Debug for WrapperResolverLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapperResolverLayer")
            .field("max_depth", &self.max_depth)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

impl WrapperResolverLayer {
    /// A layer recording the wrapper families into `recorder`.
    pub fn new(recorder: impl Recorder) -> Self {
        WrapperResolverLayer {
            recorder: Arc::new(recorder),
            max_depth: DEFAULT_MAX_DEPTH,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            state: Arc::default(),
        }
    }

    /// Most wrapper hops followed per chain. Defaults to
    /// [`DEFAULT_MAX_DEPTH`] (5).
    pub fn max_wrapper_depth(mut self, hops: usize) -> Self {
        self.max_depth = hops;
        self.state = Arc::default();
        self
    }

    /// Most HTTP redirects followed per request (the tag, and each wrapper
    /// hop); 0 follows none (a 3xx is then the answer, its request a
    /// failure `redirect`). Defaults to [`DEFAULT_MAX_REDIRECTS`] (10).
    pub fn max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }
}

impl<S> Layer<S> for WrapperResolverLayer {
    type Service = WrapperResolver<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let recorder = self.recorder.is_enabled().then(|| {
            self.state
                .get_or_init(|| {
                    Arc::new(WrapperRecorder::new(
                        self.recorder.clone(),
                        SourceConfig::new(DEFAULT_MAX_SOURCES),
                    ))
                })
                .clone()
        });
        WrapperResolver {
            inner,
            recorder,
            max_depth: self.max_depth,
            max_redirects: self.max_redirects,
        }
    }
}

/// Service made by [`WrapperResolverLayer`]: a VAST request in (an
/// `http::Request` to a VAST tag; its [`SourceLabel`] and [`Deadline`]
/// extensions are kept for the chain), the resolved document out, with a
/// [`ChainReport`] in its extensions.
///
/// HTTP redirects of the tag and of every hop are followed (see the
/// [module docs](crate::wrapper#redirects)) and counted in
/// `vast_redirects_total` under the chain's source label.
///
/// The response is the last answer read: the InLine document when the
/// chain resolved, else the answer that ended it (with its status and
/// `Content-Encoding`; a 3xx not followed, with an empty body); an empty
/// 502 when no hop answered. The error of the inner service on the first
/// request (or one of its redirects) is returned unchanged; a hop that
/// fails ends the chain (its report says how). The inner service is cloned
/// per request.
#[derive(Clone)]
pub struct WrapperResolver<S> {
    inner: S,
    recorder: Option<Arc<WrapperRecorder>>,
    max_depth: usize,
    max_redirects: usize,
}

impl<S: fmt::Debug> fmt::Debug for WrapperResolver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapperResolver")
            .field("inner", &self.inner)
            .field("max_depth", &self.max_depth)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

impl<S> WrapperResolver<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Response future of [`WrapperResolver`].
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, E>> + Send>>;

impl<S, B> Service<Request<Full<Bytes>>> for WrapperResolver<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Body + Send,
    B::Data: Send,
{
    type Response = Response<Bytes>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        // The ready clone answers this request; a fresh clone stays.
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        let recorder = self.recorder.clone();
        let max_depth = self.max_depth;
        let max_redirects = self.max_redirects;
        Box::pin(async move {
            let origin = req.uri().clone();
            let deadline = req.extensions().get::<Deadline>().copied();
            let label = req.extensions().get::<SourceLabel>().cloned();
            let series = recorder.as_ref().map(|r| r.chain(label.as_ref(), &origin));
            let counter = series.as_ref().map(|s| s.redirects().clone());
            let redirects = Redirects {
                max: max_redirects,
                counter: counter.as_ref(),
            };
            let start = Instant::now();
            let first = fetch_vast(&mut svc, req, None, redirects).await?;
            let Some(target) = first.next_wrapper() else {
                let report = ChainReport {
                    result: ChainResult::of_answer(first.playable()),
                    hops: Vec::new(),
                    elapsed: start.elapsed(),
                };
                answered(series.as_deref(), &first);
                return Ok(respond(Some(first), report));
            };
            let mut guard = ChainGuard::new(series.clone(), start, deadline);
            let (result, last) =
                follow(&mut svc, &origin, target, max_depth, redirects, &mut guard).await;
            let report = guard.finish(result);
            if let (ChainResult::Success, Some(last)) = (result, &last) {
                answered(series.as_deref(), last);
            }
            Ok(respond(last.or(Some(first)), report))
        })
    }
}

/// The pod of the answer that ends a chain with an ad counts for the
/// chain's source.
fn answered(series: Option<&ChainSeries>, answer: &super::Fetched) {
    if let (Some(series), Outcome::Ad, Some(inspection)) =
        (series, answer.playable(), &answer.inspection)
    {
        series.answered(inspection);
    }
}

/// The response of a resolved chain: the last answer read and the report.
fn respond(last: Option<super::Fetched>, report: ChainReport) -> Response<Bytes> {
    let mut response = match last {
        Some(fetched) => {
            let mut response = Response::new(fetched.body);
            *response.status_mut() = fetched.status;
            if let Some(encoding) = fetched.encoding {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_ENCODING, encoding);
            }
            response
        }
        None => {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    };
    response.extensions_mut().insert(report);
    response
}
