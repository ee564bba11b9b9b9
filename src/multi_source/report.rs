//! [`FetchReport`]: what one multi-source fetch did, and
//! [`MultiSourceError`].

use std::borrow::Cow;
use std::time::Duration;

use super::Strategy;
use crate::classify::{ErrorType, Outcome};
use crate::wrapper::ChainReport;

/// One source attempt of a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The source's label (its name).
    pub source: Cow<'static, str>,
    /// Its tier: 0 for the primary tier, 1 for the first fallback, ...
    pub tier: usize,
    /// How it ended: `Ad` (a fill), `NoAd`, or a failure (`cancelled` for
    /// race losers, `timeout` for attempts cut by a time-out).
    pub outcome: Outcome,
    /// From its start to its end.
    pub elapsed: Duration,
    /// The wrapper chain the source's answer started, if it was a wrapper.
    pub chain: Option<ChainReport>,
}

impl Attempt {
    /// An attempt of `source` in `tier`.
    pub fn new(
        source: impl Into<Cow<'static, str>>,
        tier: usize,
        outcome: Outcome,
        elapsed: Duration,
    ) -> Self {
        Attempt {
            source: source.into(),
            tier,
            outcome,
            elapsed,
            chain: None,
        }
    }

    /// The same attempt, with the wrapper chain its answer started.
    pub fn with_chain(mut self, chain: ChainReport) -> Self {
        self.chain = Some(chain);
        self
    }
}

/// What one multi-source fetch did: in the extensions of the response of
/// [`MultiSource`](super::MultiSource), and in its errors.
///
/// A fetcher of your own builds one and puts it in its responses'
/// extensions for [`MultiSourceMetricsLayer`](super::MultiSourceMetricsLayer):
///
/// ```
/// use std::time::Duration;
/// use vast_metrics::classify::{ErrorType, Outcome};
/// use vast_metrics::multi_source::{Attempt, FetchReport, Strategy};
///
/// let mut report = FetchReport::new(Strategy::Sequential);
/// report.attempts.push(Attempt::new("primary", 0, Outcome::Failure(ErrorType::Http5xx), Duration::from_millis(40)));
/// report.attempts.push(Attempt::new("backup", 1, Outcome::Ad, Duration::from_millis(25)));
/// report.fallback_depth = 1;
/// report.winner = Some("backup".into());
/// assert_eq!(report.outcome(), Outcome::Ad);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchReport {
    /// The strategy of the fetch.
    pub strategy: Strategy,
    /// The label of the source whose VAST won; `None` without a fill.
    pub winner: Option<Cow<'static, str>>,
    /// The deepest tier entered: 0 when the primary tier filled, the
    /// winner's tier when there is one, the last tier tried when not.
    pub fallback_depth: usize,
    /// Every attempt, in the order they ended.
    pub attempts: Vec<Attempt>,
    /// Whether the overall deadline cut the fetch short.
    pub deadline_exceeded: bool,
    /// From the start of the fetch to its end.
    pub elapsed: Duration,
    /// The ad break the fetch was to fill
    /// ([`VastRequest::break_duration`](super::VastRequest::break_duration)).
    pub break_requested: Option<Duration>,
    /// Seconds of linear ads in the winner's answer (the sum of its
    /// `<Duration>`s); zero without a winner.
    pub ad_duration: Duration,
}

impl FetchReport {
    /// An empty report of a fetch with `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        FetchReport {
            strategy,
            winner: None,
            fallback_depth: 0,
            attempts: Vec::new(),
            deadline_exceeded: false,
            elapsed: Duration::ZERO,
            break_requested: None,
            ad_duration: Duration::ZERO,
        }
    }

    /// The outcome of the whole fetch: `Ad` with a winner; else a
    /// `timeout` failure when the deadline passed; else `NoAd` when a
    /// source answered valid VAST without an ad; else the failure of the
    /// last attempt that ended on its own (`other` when none did).
    pub fn outcome(&self) -> Outcome {
        if self.winner.is_some() {
            return Outcome::Ad;
        }
        if self.deadline_exceeded {
            return Outcome::Failure(ErrorType::Timeout);
        }
        if self.attempts.iter().any(|a| a.outcome == Outcome::NoAd) {
            return Outcome::NoAd;
        }
        let error = self
            .attempts
            .iter()
            .rev()
            .find_map(|a| match a.outcome {
                Outcome::Failure(e) if e != ErrorType::Cancelled => Some(e),
                _ => None,
            })
            .unwrap_or(ErrorType::Other);
        Outcome::Failure(error)
    }

    /// The attempts of one source, by label.
    pub fn attempts_of<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a Attempt> + 'a {
        self.attempts.iter().filter(move |a| a.source == source)
    }
}

/// Why a multi-source fetch gave no ad. Each variant carries the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MultiSourceError {
    /// Every tier was tried and no source filled.
    #[error("no source filled ({} attempts)", report.attempts.len())]
    NoFill {
        /// What the fetch did.
        report: Box<FetchReport>,
    },
    /// The overall deadline passed before a source filled.
    #[error("deadline exceeded after {:?} ({} attempts)", report.elapsed, report.attempts.len())]
    DeadlineExceeded {
        /// What the fetch did.
        report: Box<FetchReport>,
    },
}

impl MultiSourceError {
    /// What the fetch did.
    pub fn report(&self) -> &FetchReport {
        match self {
            MultiSourceError::NoFill { report } | MultiSourceError::DeadlineExceeded { report } => {
                report
            }
        }
    }

    /// The report, owned.
    pub fn into_report(self) -> FetchReport {
        match self {
            MultiSourceError::NoFill { report } | MultiSourceError::DeadlineExceeded { report } => {
                *report
            }
        }
    }
}

impl MultiSourceError {
    /// `timeout` past the deadline; otherwise the report's failure (`other`
    /// when a source answered without an ad).
    pub fn error_type(&self) -> ErrorType {
        match self.report().outcome() {
            Outcome::Failure(e) => e,
            Outcome::Ad | Outcome::NoAd => ErrorType::Other,
        }
    }
}
