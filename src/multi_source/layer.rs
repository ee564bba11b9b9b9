//! [`MultiSourceMetricsLayer`]: the multi-source family for a fetcher of
//! your own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::record::{attempt_finished, attempt_started, fallback_entered, FetchGuard};
use super::report::FetchReport;
use super::Strategy;
use crate::classify::{ClassifyError, ErrorType, Outcome};
use crate::collector::MetricsCollector;

/// Layer that records the multi-source family for a VAST fetcher of your
/// own, from the [`FetchReport`] it puts in each response's extensions.
///
/// Per request: `requests_total` and `active_requests` at the call, then,
/// when the response arrives, the request-level result from
/// [`FetchReport::outcome`], `fallback_triggered_total` for every fallback
/// tier up to [`FetchReport::fallback_depth`], and the per-source families
/// for each [`Attempt`](super::Attempt). A response without a report counts
/// by its status (2xx: `success`); an error by its
/// [`ClassifyError::error_type`]; a dropped future as `cancelled`. Answer a
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
#[derive(Clone, Debug)]
pub struct MultiSourceMetricsLayer<M> {
    metrics: M,
    strategy: Strategy,
}

impl<M: MetricsCollector + Clone> MultiSourceMetricsLayer<M> {
    /// A layer recording into `metrics`.
    pub fn new(metrics: M) -> Self {
        MultiSourceMetricsLayer {
            metrics,
            strategy: Strategy::default(),
        }
    }

    /// The `fetch_strategy` label of the wrapped fetcher. Defaults to
    /// [`Strategy::Parallel`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}

impl<S, M: MetricsCollector + Clone> Layer<S> for MultiSourceMetricsLayer<M> {
    type Service = MultiSourceMetrics<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        MultiSourceMetrics {
            inner,
            metrics: self.metrics.clone(),
            strategy: self.strategy,
        }
    }
}

/// Service made by [`MultiSourceMetricsLayer`].
#[derive(Clone)]
pub struct MultiSourceMetrics<S, M> {
    inner: S,
    metrics: M,
    strategy: Strategy,
}

impl<S: fmt::Debug, M> fmt::Debug for MultiSourceMetrics<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSourceMetrics")
            .field("inner", &self.inner)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl<S, M> MultiSourceMetrics<S, M> {
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

impl<S, M, Req, B> Service<Req> for MultiSourceMetrics<S, M>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: ClassifyError,
    M: MetricsCollector + Clone,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let guard = FetchGuard::start(self.metrics.clone(), self.strategy);
        MetricsFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    /// Response future of [`MultiSourceMetrics`]; dropped before the
    /// response, the fetch counts as `cancelled`.
    pub struct MetricsFuture<F, M: MetricsCollector> {
        #[pin]
        inner: F,
        guard: Option<FetchGuard<M>>,
        metrics: M,
    }
}

impl<F, M: MetricsCollector> fmt::Debug for MetricsFuture<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsFuture").finish_non_exhaustive()
    }
}

impl<F, M, B, E> Future for MetricsFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: ClassifyError,
    M: MetricsCollector,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(mut guard) = this.guard.take() {
            let outcome = match &result {
                Ok(response) => match response.extensions().get::<FetchReport>() {
                    Some(report) => {
                        record_report(this.metrics, report);
                        report.outcome()
                    }
                    None => match ErrorType::from_status(response.status()) {
                        Some(error) => Outcome::Failure(error),
                        None => Outcome::Ad,
                    },
                },
                Err(error) => Outcome::Failure(error.error_type()),
            };
            guard.finish(outcome);
        }
        Poll::Ready(result)
    }
}

/// The fallback and per-source families of a finished fetch.
fn record_report<M: MetricsCollector>(metrics: &M, report: &FetchReport) {
    for depth in 1..=report.fallback_depth {
        fallback_entered(metrics, depth);
    }
    for attempt in &report.attempts {
        attempt_started(metrics, &attempt.source);
        attempt_finished(metrics, &attempt.source, attempt.outcome, attempt.elapsed);
    }
}
