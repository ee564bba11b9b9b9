//! Simulated VAST traffic: the traffic simulator behind the
//! `prometheus_integration` example.
//!
//! [`simulate_requests`] records, through the generic
//! [`MetricsCollector`] API and with the label sets of the metric contract,
//! what a multi-source VAST fetcher would record: client requests per source
//! (about 90 % succeed), multi-source fetches with fallbacks, VAST parsing and
//! tracking events. It is deterministic for a given seed, so demos,
//! dashboards and exposition checks (`promtool check metrics`) can use it.
//!
//! # Example
//!
//! ```
//! use vast_test_support::simulate::simulate_requests;
//! use vast_metrics::PrometheusMetrics;
//!
//! let metrics = PrometheusMetrics::new();
//! simulate_requests(&metrics, 100, 42);
//! assert!(metrics.encode().contains("vast_multi_source_requests_total"));
//! ```

use vast_metrics::MetricsCollector;
use vast_metrics::{MetricLabels as L, VastMetrics as M};

/// Source aliases by fallback tier: tier 0 first, then 1, then 2.
const SOURCES: [&str; 3] = ["primary", "backup", "fallback"];
const STRATEGIES: [&str; 3] = ["sequential", "parallel", "race"];
const DEPTHS: [&str; 2] = ["1", "2"];
const EVENTS: [&str; 6] = [
    "impression",
    "start",
    "firstQuartile",
    "midpoint",
    "thirdQuartile",
    "complete",
];
/// Share of source attempts that return VAST.
const SUCCESS_RATE: f64 = 0.9;
/// Share of returned VAST without an ad (no fill).
const NO_AD_RATE: f64 = 0.1;
/// Share of fetches made during an outage of the egress network, when
/// every source fails (`connect` or `timeout`).
const OUTAGE_RATE: f64 = 0.01;
/// Latency recorded for a timed-out attempt, in milliseconds.
const TIMEOUT_MS: f64 = 2_000.0;

/// Records `n` simulated multi-source VAST fetches into `metrics`.
///
/// Each fetch picks a strategy (`sequential`, `parallel`, `race`) and tries
/// the sources `primary`, `backup`, `fallback`: sequentially tier by tier
/// (entering a fallback tier counts `fallback.triggered{fallback_depth}`), or
/// all at once. Each attempt succeeds with probability 0.9 (10 % of those
/// are `no_ad`); failures are `timeout`, `connect`, `http_5xx`, `http_4xx`,
/// `invalid_xml` or `empty_body`; 1 % of fetches meet an outage where every
/// source fails (`connect` or `timeout`). Fetches that find an ad send tracking
/// events. Active-request gauges go up and back down, so they read 0
/// afterwards. The same `seed` gives the same recordings.
pub fn simulate_requests(metrics: &dyn MetricsCollector, n: usize, seed: u64) {
    let mut sim = Sim {
        m: metrics,
        rng: fastrand::Rng::with_seed(seed),
        outage: false,
    };
    for _ in 0..n {
        sim.fetch();
    }
}

/// What one source attempt returned.
#[derive(Clone, Copy)]
enum Outcome {
    /// VAST came back; `result` is `success` or `no_ad`.
    Vast { result: &'static str, ms: f64 },
    /// The attempt failed with `error_type`.
    Failed { error_type: &'static str, ms: f64 },
}

impl Outcome {
    fn ms(self) -> f64 {
        match self {
            Outcome::Vast { ms, .. } | Outcome::Failed { ms, .. } => ms,
        }
    }
}

struct Sim<'a> {
    m: &'a dyn MetricsCollector,
    rng: fastrand::Rng,
    /// Whether the current fetch happens during an outage.
    outage: bool,
}

impl Sim<'_> {
    fn fetch(&mut self) {
        let strategy = STRATEGIES[self.rng.usize(..STRATEGIES.len())];
        self.outage = self.rng.f64() < OUTAGE_RATE;
        let s = [(L::FETCH_STRATEGY, strategy)];
        self.m.increment(M::MULTI_SOURCE_REQUESTS_TOTAL, 1, &s);
        self.m.gauge(M::MULTI_SOURCE_ACTIVE_REQUESTS, 1.0, &s);

        let (best, latency_ms) = if strategy == "sequential" {
            self.sequential()
        } else {
            self.all_at_once(strategy == "race")
        };

        // Parsing and filtering of the winning document: generic API, no labels.
        if let Outcome::Vast { result, .. } = best {
            self.m
                .timing(M::MULTI_SOURCE_PARSE_DURATION, exp(&mut self.rng, 2.0), &[]);
            self.m.timing(
                M::MULTI_SOURCE_FILTER_DURATION,
                exp(&mut self.rng, 0.5),
                &[],
            );
            if result == "success" {
                self.track();
            }
        }

        match best {
            Outcome::Vast { result, .. } => {
                let labels = [(L::FETCH_STRATEGY, strategy), (L::RESULT, result)];
                self.m
                    .increment(M::MULTI_SOURCE_REQUESTS_SUCCESS, 1, &labels);
                self.m
                    .timing(M::MULTI_SOURCE_LATENCY_MS, latency_ms, &labels);
            }
            Outcome::Failed { error_type, .. } => {
                self.fetch_failed(strategy, error_type, latency_ms);
            }
        }
        self.m.gauge(M::MULTI_SOURCE_ACTIVE_REQUESTS, -1.0, &s);
    }

    fn fetch_failed(&mut self, strategy: &'static str, error_type: &'static str, ms: f64) {
        let failure = [(L::FETCH_STRATEGY, strategy), (L::ERROR_TYPE, error_type)];
        self.m
            .increment(M::MULTI_SOURCE_REQUESTS_FAILURE, 1, &failure);
        let timed = [
            (L::FETCH_STRATEGY, strategy),
            (L::RESULT, result_of_error(error_type)),
        ];
        self.m.timing(M::MULTI_SOURCE_LATENCY_MS, ms, &timed);
    }

    /// Tier by tier until one returns VAST; latencies add up.
    fn sequential(&mut self) -> (Outcome, f64) {
        let mut outcome = self.attempt(SOURCES[0]);
        let mut total_ms = outcome.ms();
        for (depth, source) in DEPTHS.iter().zip(&SOURCES[1..]) {
            if matches!(outcome, Outcome::Vast { .. }) {
                break;
            }
            let depth = [(L::FALLBACK_DEPTH, *depth)];
            self.m
                .increment(M::MULTI_SOURCE_FALLBACK_TRIGGERED, 1, &depth);
            outcome = self.attempt(source);
            total_ms += outcome.ms();
        }
        (outcome, total_ms)
    }

    /// Every source at once: `race` ends with the fastest VAST, `parallel`
    /// waits for all and keeps the first ad by tier.
    fn all_at_once(&mut self, race: bool) -> (Outcome, f64) {
        let outcomes = SOURCES.map(|source| self.attempt(source));
        let slowest = outcomes.iter().map(|o| o.ms()).fold(0.0, f64::max);
        let vast = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Vast { .. }))
            .copied();
        let best = if race {
            vast.min_by(|a, b| a.ms().total_cmp(&b.ms()))
        } else {
            let mut vast: Vec<_> = vast.collect();
            vast.sort_by_key(|o| {
                !matches!(
                    o,
                    Outcome::Vast {
                        result: "success",
                        ..
                    }
                )
            });
            vast.first().copied()
        };
        match best {
            Some(best) if race => (best, best.ms()),
            Some(best) => (best, slowest),
            // All failed: report the primary's error.
            None => (outcomes[0], slowest),
        }
    }

    /// One request to one source, recorded as the client and as a
    /// multi-source attempt, with parsing when a body came back.
    fn attempt(&mut self, source: &'static str) -> Outcome {
        let src = [(L::SOURCE_URL, source)];
        self.m.increment(M::CLIENT_REQUEST_TOTAL, 1, &src);
        self.m.increment(M::MULTI_SOURCE_SOURCES_ATTEMPTED, 1, &src);
        self.m.gauge(M::CLIENT_ACTIVE_REQUESTS, 1.0, &src);

        let outcome = self.roll();
        match outcome {
            Outcome::Vast { result, ms } => {
                let labels = [(L::SOURCE_URL, source), (L::RESULT, result)];
                self.m.increment(M::CLIENT_REQUEST_SUCCESS, 1, &labels);
                self.m
                    .increment(M::MULTI_SOURCE_SOURCES_SUCCESS, 1, &labels);
                self.m.timing(M::CLIENT_REQUEST_DURATION_MS, ms, &labels);
                self.m.timing(M::MULTI_SOURCE_FETCH_DURATION, ms, &labels);
                self.m.increment(M::PARSER_XML_PARSED, 1, &src);
                self.m
                    .timing(M::PARSER_PARSE_DURATION, exp(&mut self.rng, 1.5), &src);
            }
            Outcome::Failed { error_type, ms } => {
                let failure = [(L::SOURCE_URL, source), (L::ERROR_TYPE, error_type)];
                self.m.increment(M::CLIENT_REQUEST_FAILURE, 1, &failure);
                self.m
                    .increment(M::MULTI_SOURCE_SOURCES_FAILURE, 1, &failure);
                let timed = [
                    (L::SOURCE_URL, source),
                    (L::RESULT, result_of_error(error_type)),
                ];
                self.m.timing(M::CLIENT_REQUEST_DURATION_MS, ms, &timed);
                self.m.timing(M::MULTI_SOURCE_FETCH_DURATION, ms, &timed);
                if error_type == "invalid_xml" {
                    self.m.increment(M::PARSER_XML_FAILED, 1, &failure);
                    self.m
                        .timing(M::PARSER_PARSE_DURATION, exp(&mut self.rng, 1.5), &src);
                }
            }
        }
        self.m.gauge(M::CLIENT_ACTIVE_REQUESTS, -1.0, &src);
        outcome
    }

    fn roll(&mut self) -> Outcome {
        if self.outage {
            return if self.rng.f64() < 0.5 {
                Outcome::Failed {
                    error_type: "timeout",
                    ms: TIMEOUT_MS,
                }
            } else {
                Outcome::Failed {
                    error_type: "connect",
                    ms: exp(&mut self.rng, 5.0),
                }
            };
        }
        let ms = 20.0 + exp(&mut self.rng, 60.0);
        if self.rng.f64() < SUCCESS_RATE {
            let result = if self.rng.f64() < NO_AD_RATE {
                "no_ad"
            } else {
                "success"
            };
            return Outcome::Vast { result, ms };
        }
        // Failure mix: timeouts and connect errors dominate, as in the field.
        let (error_type, ms) = match self.rng.usize(..10) {
            0..=2 => ("timeout", TIMEOUT_MS),
            3..=4 => ("connect", exp(&mut self.rng, 5.0)),
            5..=6 => ("http_5xx", ms),
            7 => ("http_4xx", ms),
            8 => ("invalid_xml", ms),
            _ => ("empty_body", ms),
        };
        Outcome::Failed { error_type, ms }
    }

    /// Tracking events of a shown ad; about 3 % fail.
    fn track(&mut self) {
        let watched = 1 + self.rng.usize(..EVENTS.len());
        for event in &EVENTS[..watched] {
            let e = [(L::EVENT_TYPE, *event)];
            let ms = 5.0 + exp(&mut self.rng, 25.0);
            if self.rng.f64() < 0.97 {
                self.m.increment(M::TRACKING_EVENT_SENT, 1, &e);
            } else {
                let error_type = if self.rng.f64() < 0.5 {
                    "timeout"
                } else {
                    "http_5xx"
                };
                let failed = [(L::EVENT_TYPE, *event), (L::ERROR_TYPE, error_type)];
                self.m.increment(M::TRACKING_EVENT_FAILED, 1, &failed);
            }
            self.m.timing(M::TRACKING_REQUEST_DURATION, ms, &e);
        }
    }
}

/// The `result` label of a failed attempt's duration.
fn result_of_error(error_type: &str) -> &'static str {
    match error_type {
        "timeout" => "timeout",
        "invalid_xml" => "invalid_xml",
        _ => "error",
    }
}

/// Exponentially distributed with the given mean.
fn exp(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vast_metrics::PrometheusMetrics;

    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {series}"))
            .parse()
            .unwrap()
    }

    fn sum(text: &str, prefix: &str) -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    #[test]
    fn records_consistent_counts_and_no_errors() {
        let m = PrometheusMetrics::new();
        simulate_requests(&m, 2_000, 7);
        let text = m.encode();
        for source in SOURCES {
            let total = sample(
                &text,
                &format!(r#"vast_client_request_total{{source_url="{source}"}}"#),
            );
            let ok = sum(
                &text,
                &format!(r#"vast_client_request_success_total{{source_url="{source}","#),
            );
            let failed = sum(
                &text,
                &format!(r#"vast_client_request_failure_total{{source_url="{source}","#),
            );
            assert!(total > 0.0);
            assert_eq!(total, ok + failed, "{source}");
            assert_eq!(
                sample(
                    &text,
                    &format!(r#"vast_client_active_requests{{source_url="{source}"}}"#)
                ),
                0.0
            );
        }
        let total = sum(&text, "vast_multi_source_requests_total{");
        assert_eq!(total, 2_000.0);
        let ok = sum(&text, "vast_multi_source_requests_success_total{");
        let failed = sum(&text, "vast_multi_source_requests_failure_total{");
        assert_eq!(total, ok + failed);
        assert!(failed > 0.0, "outages make whole fetches fail");
        // Per attempt about 90 % return VAST.
        let attempts = sum(&text, "vast_client_request_total{");
        let rate = sum(&text, "vast_client_request_success_total{") / attempts;
        assert!((0.87..0.93).contains(&rate), "{rate}");
        assert!(sum(&text, "vast_multi_source_fallback_triggered_total{") > 0.0);
        assert!(sum(&text, "vast_tracking_event_sent_total{") > 0.0);
        assert_eq!(sum(&text, "vast_metrics_errors_total{"), 0.0);
    }

    #[test]
    fn deterministic_per_seed() {
        let (a, b, c) = (
            PrometheusMetrics::new(),
            PrometheusMetrics::new(),
            PrometheusMetrics::new(),
        );
        simulate_requests(&a, 50, 1);
        simulate_requests(&b, 50, 1);
        simulate_requests(&c, 50, 2);
        let sorted = |m: &PrometheusMetrics| {
            let mut lines: Vec<_> = m.encode().lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&a), sorted(&b));
        assert_ne!(sorted(&a), sorted(&c));
    }
}
