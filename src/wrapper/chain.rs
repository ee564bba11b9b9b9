//! Following one chain, written once for [`MultiSource`](crate::MultiSource)
//! attempts and [`WrapperResolver`](super::WrapperResolver).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use super::redirect::{send, Redirects};
use super::{ChainReport, ChainResult, Hop};
use crate::classify::{classify_error, Deadline, ErrorType, Outcome};
use crate::layer::{inspect_whole, Encoding, VerdictSlot};
use crate::record::{timed, ChainSeries};
use crate::recorder::{Histogram, RecordError, Recorder};
use crate::source::{SourceConfig, SourceLabel, SourceResolver};
use crate::vast::{Inspection, VastVerdict, WrapperTarget, DEFAULT_INSPECT_LIMIT};

/// One answer, read to the end.
pub(crate) struct Fetched {
    pub(crate) outcome: Outcome,
    /// The one scan of the body (the layer's below, or the fetcher's own);
    /// `None` when it was not inspected.
    pub(crate) inspection: Option<Inspection>,
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// `Content-Encoding`, passed on with the body.
    pub(crate) encoding: Option<HeaderValue>,
}

impl Fetched {
    /// The outcome of the answer for a fetcher that follows wrappers: an
    /// answer with ads but no `<InLine>` one, and no wrapper to follow (an
    /// `<Ad>` with neither child, a wrapper without a URI), leaves the
    /// player nothing to play: no fill.
    pub(crate) fn playable(&self) -> Outcome {
        match (&self.inspection, self.outcome) {
            (Some(inspection), Outcome::Ad) => match inspection.verdict {
                VastVerdict::Ads { inline: 0, .. } if self.next_wrapper().is_none() => {
                    Outcome::NoAd
                }
                _ => Outcome::Ad,
            },
            (_, outcome) => outcome,
        }
    }

    /// Where the answer sends the player next: an answer whose ads are all
    /// wrappers.
    pub(crate) fn next_wrapper(&self) -> Option<WrapperTarget> {
        let inspection = self.inspection.as_ref()?;
        match inspection.verdict {
            VastVerdict::Ads { inline: 0, wrapper } if wrapper > 0 => inspection.wrapper.clone(),
            _ => None,
        }
    }
}

/// One VAST request through `svc`: ready, call, its redirects followed
/// (see [`send`]), the body to its end, and the verdict (the one a
/// `VastMetricsLayer` below left, so a body is parsed once, else its own).
/// The inner service's error, unchanged.
pub(crate) async fn fetch_vast<S, B>(
    svc: &mut S,
    mut req: Request<Full<Bytes>>,
    parse: Option<&Histogram>,
    redirects: Redirects<'_>,
) -> Result<Fetched, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    let slot = VerdictSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = send(svc, req, redirects).await?;
    let status = response.status();
    let decode_as = Encoding::of(response.headers());
    let mut fetched = Fetched {
        outcome: Outcome::Ad,
        inspection: None,
        status,
        body: Bytes::new(),
        encoding: response.headers().get(CONTENT_ENCODING).cloned(),
    };
    if let Some(outcome) = ErrorType::status_outcome(status) {
        fetched.outcome = outcome;
        return Ok(fetched);
    }
    fetched.body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            fetched.outcome = Outcome::Failure(ErrorType::Body);
            return Ok(fetched);
        }
    };
    let taken =
        Arc::try_unwrap(slot.0).map_or_else(|shared| shared.get().cloned(), |mut own| own.take());
    fetched.inspection = match taken {
        Some((inspection, took)) => {
            if let Some(parse) = parse {
                parse.record(took.as_secs_f64());
            }
            Some(inspection)
        }
        None => {
            let inspect = || inspect_whole(&fetched.body, decode_as, DEFAULT_INSPECT_LIMIT);
            match parse {
                Some(parse) => timed(parse, inspect),
                None => inspect(),
            }
        }
    };
    // Not inspected (an encoding the crate cannot read): the HTTP verdict.
    fetched.outcome = fetched
        .inspection
        .as_ref()
        .map_or(Outcome::Ad, |inspection| inspection.verdict.outcome());
    Ok(fetched)
}

/// The wrapper-chain families, per originating source (capped as the
/// client layer's).
pub(crate) struct WrapperRecorder {
    recorder: Arc<dyn Recorder>,
    chains: SourceResolver<ChainSeries>,
}

impl WrapperRecorder {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, sources: SourceConfig) -> Self {
        WrapperRecorder {
            recorder,
            chains: SourceResolver::new(sources),
        }
    }

    /// The series of chains of the source named `name`.
    pub(crate) fn by_name(&self, name: &str) -> Arc<ChainSeries> {
        self.chains.by_name(
            name,
            |label| ChainSeries::new(self.recorder.clone(), label),
            || self.recorder.record_error(RecordError::SourceLabelOverflow),
        )
    }

    /// The series of a chain from a request to `uri`, or with a label.
    pub(crate) fn chain(&self, label: Option<&SourceLabel>, uri: &Uri) -> Arc<ChainSeries> {
        self.chains.resolve(
            label,
            uri,
            quanta::Instant::now(),
            |label| ChainSeries::new(self.recorder.clone(), label),
            || self.recorder.record_error(RecordError::SourceLabelOverflow),
        )
    }
}

/// One chain in progress: ends exactly once. Dropped at or past its
/// deadline (the attempt's time budget ran out mid-chain) it is a
/// `timeout`; dropped before (cut short by design), it is not counted.
pub(crate) struct ChainGuard {
    series: Option<Arc<ChainSeries>>,
    start: Instant,
    deadline: Option<Deadline>,
    pub(crate) hops: Vec<Hop>,
    done: bool,
}

impl ChainGuard {
    /// A chain whose first request started at `start`.
    pub(crate) fn new(
        series: Option<Arc<ChainSeries>>,
        start: Instant,
        deadline: Option<Deadline>,
    ) -> Self {
        ChainGuard {
            series,
            start,
            deadline,
            hops: Vec::new(),
            done: false,
        }
    }

    /// Ends the chain: records it and gives its report.
    pub(crate) fn finish(&mut self, result: ChainResult) -> ChainReport {
        self.done = true;
        let elapsed = self.start.elapsed();
        if let Some(series) = self.series.take() {
            series.finish(result, self.hops.len(), elapsed);
        }
        ChainReport {
            result,
            hops: std::mem::take(&mut self.hops),
            elapsed,
        }
    }
}

impl Drop for ChainGuard {
    fn drop(&mut self) {
        if !self.done && Deadline::dropped(self.deadline) == ErrorType::Timeout {
            self.finish(ChainResult::Timeout);
        }
    }
}

/// Follows a chain from `first`, the target of the answer to `origin`,
/// through `svc`: the result, and the last answer read (the InLine
/// document on success). Hops go into `guard`.
pub(crate) async fn follow<S, B>(
    svc: &mut S,
    origin: &Uri,
    first: WrapperTarget,
    max_depth: usize,
    redirects: Redirects<'_>,
    guard: &mut ChainGuard,
) -> (ChainResult, Option<Fetched>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
    B: Body,
{
    let mut seen = vec![origin.to_string()];
    let mut target = first;
    // The last answer read, a wrapper until the chain ends.
    let mut last = None;
    loop {
        let depth = guard.hops.len() + 1;
        if depth > max_depth {
            return (ChainResult::DepthExceeded, last);
        }
        if seen.contains(&target.uri) {
            return (ChainResult::Loop, last);
        }
        let hop_start = Instant::now();
        let hop = |outcome| Hop {
            depth,
            outcome,
            elapsed: hop_start.elapsed(),
            follow_additional_wrappers: target.follow_additional_wrappers,
            fallback_on_no_ad: target.fallback_on_no_ad,
        };
        let uri = match target.uri.parse::<Uri>() {
            Ok(uri) if uri.host().is_some() => uri,
            _ => {
                guard.hops.push(hop(Outcome::Failure(ErrorType::Other)));
                return (ChainResult::Error, last);
            }
        };
        let mut req = Request::get(uri)
            .body(Full::default())
            .expect("a parsed URI");
        if let Some(deadline) = guard.deadline {
            req.extensions_mut().insert(deadline);
        }
        let fetched = match fetch_vast(svc, req, None, redirects).await {
            Ok(fetched) => fetched,
            Err(error) => {
                let failed = Outcome::Failure(classify_error(&error));
                guard.hops.push(hop(failed));
                return (ChainResult::of_answer(failed), last);
            }
        };
        guard.hops.push(hop(fetched.outcome));
        seen.push(std::mem::take(&mut target.uri));
        let result = match fetched.next_wrapper() {
            Some(_) if !target.follow_additional_wrappers => ChainResult::DepthExceeded,
            Some(next) => {
                target = next;
                last = Some(fetched);
                continue;
            }
            None => ChainResult::of_answer(fetched.playable()),
        };
        return (result, Some(fetched));
    }
}
