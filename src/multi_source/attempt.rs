//! One source attempt: ready, call, read the body to the end, inspect.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use super::record::{timed, AttemptGuard};
use crate::classify::{ClassifyError, ErrorType, Outcome};
use crate::collector::MetricsCollector;
use crate::names::VastMetrics;
use crate::vast::{inspect, VastVerdict};

/// Keeps or rejects a fetched VAST document.
pub(crate) type Filter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// How an attempt ended, and the VAST of a fill.
pub(crate) struct AttemptResult {
    pub(crate) outcome: Outcome,
    pub(crate) body: Option<Bytes>,
    pub(crate) elapsed: Duration,
}

/// Runs one attempt within `timeout`, recording it through `guard`.
pub(crate) async fn run<S, B, M>(
    svc: S,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    mut guard: AttemptGuard<M>,
    metrics: M,
    filter: Option<Filter>,
) -> AttemptResult
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: ClassifyError,
    B: Body,
    M: MetricsCollector,
{
    let (outcome, body) =
        match tokio::time::timeout(timeout, fetch(svc, req, &metrics, filter)).await {
            Ok(done) => done,
            Err(_elapsed) => (Outcome::Failure(ErrorType::Timeout), None),
        };
    let elapsed = guard.finish(outcome);
    AttemptResult {
        outcome,
        body,
        elapsed,
    }
}

async fn fetch<S, B, M>(
    mut svc: S,
    req: Request<Full<Bytes>>,
    metrics: &M,
    filter: Option<Filter>,
) -> (Outcome, Option<Bytes>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: ClassifyError,
    B: Body,
    M: MetricsCollector,
{
    if let Err(error) = poll_fn(|cx| svc.poll_ready(cx)).await {
        return (Outcome::Failure(error.error_type()), None);
    }
    let response = match svc.call(req).await {
        Ok(response) => response,
        Err(error) => return (Outcome::Failure(error.error_type()), None),
    };
    if let Some(error) = ErrorType::from_status(response.status()) {
        return (Outcome::Failure(error), None);
    }
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return (Outcome::Failure(ErrorType::Body), None),
    };
    let verdict = timed(metrics, VastMetrics::MULTI_SOURCE_PARSE_DURATION, || {
        inspect(&body)
    });
    let mut outcome = verdict.outcome();
    if let (VastVerdict::Ads { .. }, Some(filter)) = (verdict, filter) {
        if !timed(metrics, VastMetrics::MULTI_SOURCE_FILTER_DURATION, || {
            filter(&body)
        }) {
            outcome = Outcome::NoAd;
        }
    }
    let body = outcome.is_fill().then_some(body);
    (outcome, body)
}
