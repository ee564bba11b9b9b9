//! [`MultiSource`], its builder and its response future.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::task::{Id, JoinError, JoinSet};
use tower_service::Service;

use super::attempt::{self, AttemptResult, Filled, Filter, Plan};
use super::record::MultiSourceRecorder;
use super::report::{Attempt, FetchReport, MultiSourceError};
use super::{Source, Strategy, VastRequest};
use crate::classify::{Deadline, ErrorType, Outcome};
use crate::layer::InFlight;
use crate::record::OutcomeSeries;
use crate::recorder::Recorder;
use crate::source::SourceLabel;
use crate::wrapper::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_REDIRECTS};

const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// Builder of [`MultiSource`]; see [`MultiSource::builder`].
pub struct MultiSourceBuilder<S> {
    inner: S,
    recorder: Arc<dyn Recorder>,
    tiers: Vec<Vec<Source>>,
    strategy: Strategy,
    source_timeout: Duration,
    deadline: Duration,
    filter: Option<Filter>,
    max_depth: usize,
    max_redirects: usize,
}

impl<S> fmt::Debug for MultiSourceBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSourceBuilder")
            .field("tiers", &self.tiers)
            .field("strategy", &self.strategy)
            .field("source_timeout", &self.source_timeout)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<S> MultiSourceBuilder<S> {
    /// Adds a tier of sources, in priority order: the first call gives the
    /// primary tier, the next ones the fallback tiers in order. A tier
    /// without sources is skipped. Defaults to no tiers (every fetch is
    /// then [`NoFill`](MultiSourceError::NoFill)).
    pub fn tier(mut self, sources: impl IntoIterator<Item = Source>) -> Self {
        let tier: Vec<Source> = sources.into_iter().collect();
        if !tier.is_empty() {
            self.tiers.push(tier);
        }
        self
    }

    /// The strategy of fetches that do not name one. Defaults to
    /// [`Strategy::Parallel`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Time allowed to one attempt, from readiness to the end of the body.
    /// Defaults to 1 second.
    pub fn source_timeout(mut self, timeout: Duration) -> Self {
        self.source_timeout = timeout;
        self
    }

    /// Time allowed to a whole fetch, all tiers included. Defaults to 3
    /// seconds.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Keeps only the ads `keep` accepts (it sees the whole VAST document);
    /// a rejected document counts as `no_ad`. Its time is recorded in
    /// `vast_multi_source_filter_duration_seconds`. Defaults to none: every
    /// ad is kept.
    pub fn filter(mut self, keep: impl Fn(&[u8]) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(keep));
        self
    }

    /// Most wrapper hops followed per attempt (see [`crate::wrapper`]).
    /// Defaults to [`DEFAULT_MAX_DEPTH`] (5).
    pub fn max_wrapper_depth(mut self, hops: usize) -> Self {
        self.max_depth = hops;
        self
    }

    /// Most HTTP redirects followed per request of an attempt (the tag,
    /// and each wrapper hop); 0 follows none (a 3xx then fails the attempt
    /// as `redirect`). Redirects count against the attempt's time-out.
    /// Defaults to [`DEFAULT_MAX_REDIRECTS`] (10).
    pub fn max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// Builds the service and adds its number of sources to
    /// `vast_multi_source_sources{fetch_strategy}` (taken off again when the
    /// last clone is dropped).
    pub fn build(self) -> MultiSource<S> {
        let source_count = self.tiers.iter().map(Vec::len).sum();
        let config = Config {
            recorder: Arc::new(MultiSourceRecorder::new(self.recorder)),
            tiers: self.tiers,
            strategy: self.strategy,
            source_timeout: self.source_timeout,
            deadline: self.deadline,
            filter: self.filter,
            max_depth: self.max_depth,
            max_redirects: self.max_redirects,
            source_count,
        };
        config.count_sources(1.0);
        MultiSource {
            inner: self.inner,
            config: Arc::new(config),
        }
    }
}

/// What every clone of one [`MultiSource`] shares.
struct Config {
    recorder: Arc<MultiSourceRecorder>,
    tiers: Vec<Vec<Source>>,
    strategy: Strategy,
    source_timeout: Duration,
    deadline: Duration,
    filter: Option<Filter>,
    max_depth: usize,
    max_redirects: usize,
    source_count: usize,
}

impl Config {
    fn count_sources(&self, sign: f64) {
        if self.source_count > 0 {
            self.recorder
                .sources_count(self.strategy, sign * self.source_count as f64);
        }
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        self.count_sources(-1.0);
    }
}

/// Tower service that fetches VAST from tiers of sources (see the
/// [module docs](crate::multi_source)).
///
/// Clones share the configuration; each fetch runs its attempts as tokio
/// tasks, so it needs a tokio runtime.
pub struct MultiSource<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: Clone> Clone for MultiSource<S> {
    fn clone(&self) -> Self {
        MultiSource {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S> fmt::Debug for MultiSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSource")
            .field("tiers", &self.config.tiers)
            .field("strategy", &self.config.strategy)
            .field("source_timeout", &self.config.source_timeout)
            .field("deadline", &self.config.deadline)
            .finish_non_exhaustive()
    }
}

impl<S> MultiSource<S> {
    /// A builder of a service whose attempts go through `inner` (cloned per
    /// attempt) and whose metrics go to `recorder`.
    pub fn builder(inner: S, recorder: impl Recorder) -> MultiSourceBuilder<S> {
        MultiSourceBuilder {
            inner,
            recorder: Arc::new(recorder),
            tiers: Vec::new(),
            strategy: Strategy::default(),
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            filter: None,
            max_depth: DEFAULT_MAX_DEPTH,
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }

    /// The tiers: the primary one first.
    pub fn tiers(&self) -> &[Vec<Source>] {
        &self.config.tiers
    }

    /// The strategy of fetches that do not name one.
    pub fn strategy(&self) -> Strategy {
        self.config.strategy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<VastRequest> for MultiSource<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: 'static,
    B: Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<Bytes>;
    type Error = MultiSourceError;
    type Future = ResponseFuture;

    /// Always ready: each attempt waits for the readiness of its own clone
    /// of the inner service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: VastRequest) -> Self::Future {
        let strategy = req.strategy_override().unwrap_or(self.config.strategy);
        let trace = crate::trace::from_headers(req.headers());
        let fetch = self.config.recorder.fetch(strategy).traced(trace);
        let mut report = FetchReport::new(strategy);
        report.break_requested = req.requested_break();
        let run = Run {
            inner: self.inner.clone(),
            config: self.config.clone(),
            query: req.query_str().map(str::to_owned),
            headers: req.headers,
            trace,
            report,
            set: JoinSet::new(),
            pending: HashMap::new(),
            ends_at: Instant::now() + self.config.deadline,
        };
        ResponseFuture {
            inner: Box::pin(run.fetch(fetch)),
        }
    }
}

pin_project! {
    /// Response future of [`MultiSource`]. Dropping it cancels the fetch:
    /// its attempts are aborted and recorded as `cancelled`.
    pub struct ResponseFuture {
        #[pin]
        inner: Pin<Box<dyn Future<Output = Result<Response<Bytes>, MultiSourceError>> + Send>>,
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Bytes>, MultiSourceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// Where an attempt in flight belongs.
struct Pending {
    source: Cow<'static, str>,
    tier: usize,
    index: usize,
    start: Instant,
}

/// One fetch in progress.
struct Run<S> {
    inner: S,
    config: Arc<Config>,
    query: Option<String>,
    /// Sent with every source's request.
    headers: http::HeaderMap,
    trace: Option<crate::trace::TraceContext>,
    report: FetchReport,
    set: JoinSet<AttemptResult>,
    pending: HashMap<Id, Pending>,
    /// The overall deadline.
    ends_at: Instant,
}

/// The winning source and its VAST.
type Win = (Cow<'static, str>, Filled);

impl<S, B> Run<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: 'static,
    B: Body + Send + 'static,
    B::Data: Send,
{
    async fn fetch(
        mut self,
        mut fetch: InFlight<OutcomeSeries>,
    ) -> Result<Response<Bytes>, MultiSourceError> {
        let start = Instant::now();
        let deadline = self.config.deadline;
        let won = tokio::time::timeout(deadline, self.tiers()).await;
        // Race losers, lower-priority parallel attempts, attempts cut by the
        // deadline: cancelled, and awaited so the report has them all.
        self.set.abort_all();
        while let Some(done) = self.set.join_next_with_id().await {
            self.ended(done);
        }
        let mut report = self.report;
        report.elapsed = start.elapsed();
        let body = match won {
            Ok(Some((source, (body, encoding, linear)))) => {
                report.winner = Some(source);
                report.ad_duration = linear;
                Some((body, encoding))
            }
            Ok(None) => None,
            Err(_elapsed) => {
                report.deadline_exceeded = true;
                None
            }
        };
        fetch.finish(report.outcome());
        self.config.recorder.fill_by_time(&report);
        match body {
            Some((body, encoding)) => {
                let mut response = Response::new(body);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/xml"),
                );
                // The body as the source sent it: say how it is encoded.
                if let Some(encoding) = encoding {
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_ENCODING, encoding);
                }
                response.extensions_mut().insert(report);
                Ok(response)
            }
            None if report.deadline_exceeded => Err(MultiSourceError::DeadlineExceeded {
                report: Box::new(report),
            }),
            None => Err(MultiSourceError::NoFill {
                report: Box::new(report),
            }),
        }
    }

    /// Tries the tiers in order; the winner, if any.
    async fn tiers(&mut self) -> Option<Win> {
        let config = self.config.clone();
        for (tier, sources) in config.tiers.iter().enumerate() {
            if tier > 0 {
                config.recorder.fallback(tier);
            }
            self.report.fallback_depth = tier;
            if let Some(win) = self.tier(tier, sources).await {
                return Some(win);
            }
        }
        None
    }

    /// The one tier engine. A strategy is two parameters: how many attempts
    /// run at once (sequential: one; parallel and race: all), and which
    /// fill wins (race: the first to arrive; the others: the earliest
    /// listed, as soon as every source listed before it has answered, so a
    /// parallel tier can end before its slower, lower-priority sources do).
    async fn tier(&mut self, tier: usize, sources: &[Source]) -> Option<Win> {
        let (at_once, first_to_arrive) = match self.report.strategy {
            Strategy::Sequential => (1, false),
            Strategy::Parallel => (sources.len(), false),
            Strategy::Race => (sources.len(), true),
        };
        let mut started = 0;
        let mut running = 0;
        let mut answered = vec![false; sources.len()];
        let mut best: Option<(usize, Win)> = None;
        loop {
            while running < at_once && started < sources.len() {
                self.spawn(tier, started, &sources[started]);
                started += 1;
                running += 1;
            }
            let Some((index, win)) = self.next().await else {
                break;
            };
            running -= 1;
            answered[index] = true;
            if let Some(win) = win {
                if first_to_arrive {
                    return Some(win);
                }
                if best.as_ref().is_none_or(|(b, _)| index < *b) {
                    best = Some((index, win));
                }
            }
            if let Some((b, _)) = &best {
                if answered[..*b].iter().all(|&a| a) {
                    break;
                }
            }
        }
        best.map(|(_, win)| win)
    }

    /// Starts one attempt as a task; it is counted as attempted now.
    fn spawn(&mut self, tier: usize, index: usize, source: &Source) {
        let config = &self.config;
        let mut req = Request::new(Full::default());
        *req.uri_mut() = with_query(source.uri(), self.query.as_deref());
        req.headers_mut().clone_from(&self.headers);
        req.extensions_mut()
            .insert(SourceLabel::new(source.name.clone()));
        // A drop at either time-out is a `timeout`, here and in the client
        // layer below; earlier drops (race losers) are `cancelled`.
        let attempt_ends = Deadline((Instant::now() + config.source_timeout).min(self.ends_at));
        req.extensions_mut().insert(attempt_ends);
        let attempt = config
            .recorder
            .attempt(source.name(), Some(attempt_ends))
            .traced(self.trace);
        let plan = Plan {
            timeout: config.source_timeout,
            max_depth: config.max_depth,
            max_redirects: config.max_redirects,
            filter: config.filter.clone(),
        };
        let task = attempt::run(
            self.inner.clone(),
            req,
            plan,
            attempt,
            config.recorder.clone(),
        );
        let handle = self.set.spawn(task);
        self.pending.insert(
            handle.id(),
            Pending {
                source: source.name.clone(),
                tier,
                index,
                start: Instant::now(),
            },
        );
    }

    /// Waits for the next attempt to end: its index in its tier, and the
    /// win if it filled. `None` when no attempt is in flight.
    async fn next(&mut self) -> Option<(usize, Option<Win>)> {
        loop {
            let done = self.set.join_next_with_id().await?;
            if let Some(ended) = self.ended(done) {
                return Some(ended);
            }
        }
    }

    /// Adds an ended attempt to the report.
    fn ended(
        &mut self,
        done: Result<(Id, AttemptResult), JoinError>,
    ) -> Option<(usize, Option<Win>)> {
        let (id, outcome, elapsed, body, chain) = match done {
            Ok((id, result)) => (
                id,
                result.outcome,
                Some(result.elapsed),
                result.body,
                result.chain,
            ),
            Err(error) => {
                // The attempt's own guard recorded the same: see `InFlight`.
                let outcome = if error.is_panic() {
                    ErrorType::Other
                } else {
                    Deadline::dropped(Some(Deadline(self.ends_at)))
                };
                (error.id(), Outcome::Failure(outcome), None, None, None)
            }
        };
        let pending = self.pending.remove(&id)?;
        let mut attempt = Attempt::new(
            pending.source.clone(),
            pending.tier,
            outcome,
            elapsed.unwrap_or_else(|| pending.start.elapsed()),
        );
        attempt.chain = chain;
        self.report.attempts.push(attempt);
        let win = body.map(|body| (pending.source, body));
        Some((pending.index, win))
    }
}

/// `uri` with `query` appended to its own.
fn with_query(uri: &Uri, query: Option<&str>) -> Uri {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return uri.clone();
    };
    let path_and_query = match uri.query() {
        Some(own) => format!("{}?{own}&{query}", uri.path()),
        None => format!("{}?{query}", uri.path()),
    };
    let mut parts = uri.clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return uri.clone(),
    }
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended() {
        let uri: Uri = "http://a.example/vast?id=1".parse().unwrap();
        assert_eq!(
            with_query(&uri, Some("cb=2")).to_string(),
            "http://a.example/vast?id=1&cb=2"
        );
        let uri: Uri = "http://a.example/vast".parse().unwrap();
        assert_eq!(
            with_query(&uri, Some("cb=2")).to_string(),
            "http://a.example/vast?cb=2"
        );
        assert_eq!(with_query(&uri, None), uri);
        assert_eq!(with_query(&uri, Some("bad query")), uri);
    }
}
