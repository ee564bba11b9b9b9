//! One source attempt: ready, call, read the body to the end, take the
//! verdict.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use super::record::MultiSourceRecorder;
use crate::classify::{classify_error, ErrorType, Outcome};
use crate::layer::{inspect_whole, Encoding, InFlight, VerdictSlot};
use crate::record::{timed, OutcomeSeries};
use crate::vast::{VastVerdict, DEFAULT_INSPECT_LIMIT};

/// Keeps or rejects a fetched VAST document.
pub(crate) type Filter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The VAST of a fill, and its `Content-Encoding` (passed on unchanged).
pub(crate) type Filled = (Bytes, Option<HeaderValue>);

/// How an attempt ended, and the VAST of a fill.
pub(crate) struct AttemptResult {
    pub(crate) outcome: Outcome,
    pub(crate) body: Option<Filled>,
    pub(crate) elapsed: Duration,
}

/// Runs one attempt within `timeout`, recording it through `attempt`.
pub(crate) async fn run<S, B>(
    svc: S,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    mut attempt: InFlight<OutcomeSeries>,
    recorder: Arc<MultiSourceRecorder>,
    filter: Option<Filter>,
) -> AttemptResult
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    let (outcome, body) =
        match tokio::time::timeout(timeout, fetch(svc, req, &recorder, filter)).await {
            Ok(done) => done,
            Err(_elapsed) => (Outcome::Failure(ErrorType::Timeout), None),
        };
    let elapsed = attempt.finish(outcome);
    AttemptResult {
        outcome,
        body,
        elapsed,
    }
}

async fn fetch<S, B>(
    mut svc: S,
    mut req: Request<Full<Bytes>>,
    recorder: &MultiSourceRecorder,
    filter: Option<Filter>,
) -> (Outcome, Option<Filled>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    // A `VastMetricsLayer` below leaves its verdict here: one parse a body.
    let slot = VerdictSlot::default();
    req.extensions_mut().insert(slot.clone());
    if let Err(error) = poll_fn(|cx| svc.poll_ready(cx)).await {
        return (Outcome::Failure(classify_error(&error)), None);
    }
    let response = match svc.call(req).await {
        Ok(response) => response,
        Err(error) => return (Outcome::Failure(classify_error(&error)), None),
    };
    if let Some(outcome) = ErrorType::status_outcome(response.status()) {
        return (outcome, None);
    }
    let encoding = response.headers().get(CONTENT_ENCODING).cloned();
    let inspect_as = Encoding::of(response.headers());
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return (Outcome::Failure(ErrorType::Body), None),
    };
    let verdict = match slot.0.get() {
        Some(&(verdict, took)) => {
            recorder.parse().record(took.as_secs_f64());
            verdict
        }
        None => timed(recorder.parse(), || {
            inspect_whole(&body, inspect_as, DEFAULT_INSPECT_LIMIT).unwrap_or(VastVerdict::Ads {
                inline: 0,
                wrapper: 0,
            })
        }),
    };
    let mut outcome = verdict.outcome();
    if let (VastVerdict::Ads { .. }, Some(filter)) = (verdict, filter) {
        if !timed(recorder.filter(), || filter(&body)) {
            outcome = Outcome::NoAd;
        }
    }
    let body = outcome.is_fill().then_some((body, encoding));
    (outcome, body)
}
