//! [`MultiSourceMetricsLayer`]: the multi-source family for a fetcher of
//! your own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::record::MultiSourceRecorder;
use super::report::FetchReport;
use super::Strategy;
use crate::classify::{classify_error, ErrorType, Outcome};
use crate::layer::InFlight;
use crate::record::OutcomeSeries;
use crate::recorder::Recorder;

/// Layer that records the multi-source family for a VAST fetcher of your
/// own, from the [`FetchReport`] it puts in each response's extensions.
///
/// Per request: `requests_total` and `active_requests` at the call, then,
/// when the response arrives, the request-level result from
/// [`FetchReport::outcome`], `fallback_triggered_total` for every fallback
/// tier up to [`FetchReport::fallback_depth`], and the per-source families
/// for each [`Attempt`](super::Attempt). A response without a report counts
/// by its status (2xx: `success`); an error by its
/// [`classify_error`](crate::classify::classify_error); a dropped future as `cancelled`. Answer a
/// no-fill with a response (say 204) carrying its report, so the attempts
/// are recorded.
///
/// The `fetch_strategy` label is the layer's [strategy](Self::strategy):
/// the label of the request counters is chosen when the request starts,
/// before any report exists.
///
/// Do not wrap [`MultiSource`](super::MultiSource) in it: that service
/// records the family itself.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
/// use vast_metrics::classify::Outcome;
/// use vast_metrics::multi_source::{Attempt, FetchReport, MultiSourceMetricsLayer, Strategy};
/// use vast_metrics::PrometheusMetrics;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = PrometheusMetrics::new();
/// let my_fetcher = service_fn(|_slot: &'static str| async {
///     // ... fetch from your sources your way, then say what happened:
///     let mut report = FetchReport::new(Strategy::Sequential);
///     report.attempts.push(Attempt::new("primary", 0, Outcome::NoAd, Duration::from_millis(30)));
///     report.attempts.push(Attempt::new("backup", 1, Outcome::Ad, Duration::from_millis(20)));
///     report.fallback_depth = 1;
///     report.winner = Some("backup".into());
///     let mut res = http::Response::new(Bytes::from_static(b"<VAST version=\"4.2\"><Ad/></VAST>"));
///     res.extensions_mut().insert(report);
///     Ok::<_, std::io::Error>(res)
/// });
/// let mut svc = ServiceBuilder::new()
///     .layer(MultiSourceMetricsLayer::new(metrics.clone()).strategy(Strategy::Sequential))
///     .service(my_fetcher);
/// svc.ready().await.unwrap().call("preroll").await.unwrap();
///
/// let text = metrics.encode();
/// assert!(text.contains(r#"vast_multi_source_requests_success_total{fetch_strategy="sequential",result="success"} 1"#));
/// assert!(text.contains(r#"vast_multi_source_fallback_triggered_total{fallback_depth="1"} 1"#));
/// assert!(text.contains(r#"vast_multi_source_sources_success_total{source_url="primary",result="no_ad"} 1"#));
/// # }
/// ```
#[derive(Clone)]
pub struct MultiSourceMetricsLayer {
    recorder: Arc<dyn Recorder>,
    strategy: Strategy,
    state: Arc<OnceLock<Arc<MultiSourceRecorder>>>,
}

impl fmt::Debug for MultiSourceMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSourceMetricsLayer")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl MultiSourceMetricsLayer {
    /// A layer recording into `recorder`.
    pub fn new(recorder: impl Recorder) -> Self {
        MultiSourceMetricsLayer {
            recorder: Arc::new(recorder),
            strategy: Strategy::default(),
            state: Arc::default(),
        }
    }

    /// The `fetch_strategy` label of the wrapped fetcher. Defaults to
    /// [`Strategy::Parallel`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}

impl<S> Layer<S> for MultiSourceMetricsLayer {
    type Service = MultiSourceMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let recorder = self
            .state
            .get_or_init(|| Arc::new(MultiSourceRecorder::reported(self.recorder.clone())))
            .clone();
        MultiSourceMetricsService {
            inner,
            recorder,
            strategy: self.strategy,
        }
    }
}

/// Service made by [`MultiSourceMetricsLayer`].
#[derive(Clone)]
pub struct MultiSourceMetricsService<S> {
    inner: S,
    recorder: Arc<MultiSourceRecorder>,
    strategy: Strategy,
}

impl<S: fmt::Debug> fmt::Debug for MultiSourceMetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSourceMetricsService")
            .field("inner", &self.inner)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl<S> MultiSourceMetricsService<S> {
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

impl<S, Req, B> Service<Req> for MultiSourceMetricsService<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fetch = self.recorder.fetch(self.strategy);
        MetricsFuture {
            inner: self.inner.call(req),
            fetch: Some(fetch),
            recorder: self.recorder.clone(),
        }
    }
}

pin_project! {
    /// Response future of [`MultiSourceMetricsService`]; dropped before the
    /// response, the fetch counts as `cancelled`.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        fetch: Option<InFlight<OutcomeSeries>>,
        recorder: Arc<MultiSourceRecorder>,
    }
}

impl<F> fmt::Debug for MetricsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(mut fetch) = this.fetch.take() {
            let outcome = match &result {
                Ok(response) => match response.extensions().get::<FetchReport>() {
                    Some(report) => {
                        this.recorder.report(report);
                        report.outcome()
                    }
                    None => ErrorType::status_outcome(response.status()).unwrap_or(Outcome::Ad),
                },
                Err(error) => Outcome::Failure(classify_error(error)),
            };
            fetch.finish(outcome);
        }
        Poll::Ready(result)
    }
}
