//! One source attempt: ready, call (following redirects), read the body to
//! the end, take the verdict, follow the wrapper chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::record::MultiSourceRecorder;
use crate::classify::{classify_error, Deadline, ErrorType, Outcome};
use crate::layer::InFlight;
use crate::record::{timed, OutcomeSeries};
use crate::source::SourceLabel;
use crate::wrapper::{fetch_vast, follow, ChainGuard, ChainReport, ChainResult, Redirects};

/// Keeps or rejects a fetched VAST document.
pub(crate) type Filter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The VAST of a fill, its `Content-Encoding` (passed on unchanged), and
/// its seconds of linear ads.
pub(crate) type Filled = (Bytes, Option<HeaderValue>, Duration);

/// How an attempt ended, and the VAST of a fill.
pub(crate) struct AttemptResult {
    pub(crate) outcome: Outcome,
    pub(crate) body: Option<Filled>,
    pub(crate) elapsed: Duration,
    pub(crate) chain: Option<ChainReport>,
}

/// A chain being followed, then its report.
#[derive(Default)]
pub(crate) struct ChainState {
    running: Option<ChainGuard>,
    report: Option<ChainReport>,
}

/// What one attempt does, beyond its request.
pub(crate) struct Plan {
    pub(crate) timeout: Duration,
    pub(crate) max_depth: usize,
    pub(crate) max_redirects: usize,
    pub(crate) filter: Option<Filter>,
}

/// Runs one attempt within its time-out (redirects and wrapper hops
/// included), recording it through `attempt`.
pub(crate) async fn run<S, B>(
    svc: S,
    req: Request<Full<Bytes>>,
    plan: Plan,
    mut attempt: InFlight<OutcomeSeries>,
    recorder: Arc<MultiSourceRecorder>,
) -> AttemptResult
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    let mut chain = ChainState::default();
    // Redirects count for the source, under its name.
    let redirects = Redirects {
        max: plan.max_redirects,
        counter: attempt.target().map(OutcomeSeries::redirects),
    };
    let fetching = fetch(svc, req, &plan, redirects, &recorder, &mut chain);
    let fetched = tokio::time::timeout(plan.timeout, fetching).await;
    let (outcome, body) = fetched.unwrap_or((Outcome::Failure(ErrorType::Timeout), None));
    if let Some(mut guard) = chain.running.take() {
        // The time-out cut the chain short.
        chain.report = Some(guard.finish(ChainResult::Timeout));
    }
    let elapsed = attempt.finish(outcome);
    AttemptResult {
        outcome,
        body,
        elapsed,
        chain: chain.report,
    }
}

async fn fetch<S, B>(
    mut svc: S,
    req: Request<Full<Bytes>>,
    plan: &Plan,
    redirects: Redirects<'_>,
    recorder: &MultiSourceRecorder,
    chain: &mut ChainState,
) -> (Outcome, Option<Filled>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    let origin = req.uri().clone();
    let source = req.extensions().get::<SourceLabel>().cloned();
    let deadline = req.extensions().get::<Deadline>().copied();
    let start = Instant::now();
    let first = match fetch_vast(&mut svc, req, Some(recorder.parse()), redirects).await {
        Ok(first) => first,
        Err(error) => return (Outcome::Failure(classify_error(&error)), None),
    };
    let (outcome, last) = match first.next_wrapper() {
        None => (first.playable(), first),
        Some(target) => {
            let series = source
                .as_ref()
                .map(|s| recorder.wrappers().by_name(s.as_str()));
            let guard = chain
                .running
                .insert(ChainGuard::new(series, start, deadline));
            let (result, last) =
                follow(&mut svc, &origin, target, plan.max_depth, redirects, guard).await;
            let hop_error = guard.hops.last().map(|hop| hop.outcome);
            if let Some(mut guard) = chain.running.take() {
                chain.report = Some(guard.finish(result));
            }
            let outcome = match result {
                ChainResult::Success => Outcome::Ad,
                ChainResult::NoAd | ChainResult::DepthExceeded | ChainResult::Loop => Outcome::NoAd,
                ChainResult::InvalidXml => Outcome::Failure(ErrorType::InvalidXml),
                ChainResult::Timeout => Outcome::Failure(ErrorType::Timeout),
                _ => match hop_error {
                    Some(Outcome::Failure(error)) => Outcome::Failure(error),
                    _ => Outcome::Failure(ErrorType::Other),
                },
            };
            (outcome, last.unwrap_or(first))
        }
    };
    // The pod of the answer that ends the chain counts for this source.
    if let (Outcome::Ad, Some(source), Some(inspection)) = (outcome, &source, &last.inspection) {
        recorder
            .wrappers()
            .by_name(source.as_str())
            .answered(inspection);
    }
    let mut outcome = outcome;
    if let (Outcome::Ad, Some(filter)) = (outcome, &plan.filter) {
        if !timed(recorder.filter(), || filter(&last.body)) {
            outcome = Outcome::NoAd;
        }
    }
    let linear = last
        .inspection
        .as_ref()
        .map_or(Duration::ZERO, |i| i.linear);
    let body = outcome
        .is_fill()
        .then_some((last.body, last.encoding, linear));
    (outcome, body)
}
