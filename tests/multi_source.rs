//! MultiSource against real hyper ad servers on loopback (fixed delays and
//! answers), through hyper-util's client wrapped in VastMetricsLayer.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{assert_client_invariants, label_values, parse, sum, Sample};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::layer::VastMetricsService;
use vast_metrics::multi_source::{
    Attempt, FetchReport, MultiSource, MultiSourceError, MultiSourceMetricsLayer, Source, Strategy,
    VastRequest,
};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

type HttpClient = VastMetricsService<common::HttpClient>;

fn client(metrics: &PrometheusMetrics) -> HttpClient {
    common::layered(VastMetricsLayer::new(metrics.clone()))
}

fn src(server: &AdServer, name: &'static str, path: &str) -> Source {
    Source::parse(name, &server.url(path)).unwrap()
}

async fn fetch(
    svc: &mut MultiSource<HttpClient>,
    req: VastRequest,
) -> Result<http::Response<Bytes>, MultiSourceError> {
    svc.ready().await.unwrap().call(req).await
}

fn report_of(res: &http::Response<Bytes>) -> &FetchReport {
    res.extensions().get::<FetchReport>().expect("a report")
}

fn outcome_of(report: &FetchReport, source: &str) -> Outcome {
    let mut attempts = report.attempts_of(source);
    let attempt = attempts
        .next()
        .unwrap_or_else(|| panic!("{source} attempted"));
    assert!(attempts.next().is_none(), "{source} attempted once");
    attempt.outcome
}

/// Per source and per strategy: totals add up and nothing is left active.
fn assert_multi_source_invariants(s: &[Sample]) {
    for strategy in label_values(s, "vast_multi_source_requests_total", "fetch_strategy") {
        let l = [("fetch_strategy", strategy.as_str())];
        let total = sum(s, "vast_multi_source_requests_total", &l);
        let success = sum(s, "vast_multi_source_requests_success_total", &l);
        let failure = sum(s, "vast_multi_source_requests_failure_total", &l);
        assert_eq!(
            total,
            success + failure,
            "{strategy}: total != success + failure"
        );
        assert_eq!(
            sum(s, "vast_multi_source_active_requests", &l),
            0.0,
            "{strategy}"
        );
        assert_eq!(sum(s, "vast_multi_source_latency_seconds_count", &l), total);
    }
    for source in label_values(s, "vast_multi_source_sources_attempted_total", "source_url") {
        let l = [("source_url", source.as_str())];
        let attempted = sum(s, "vast_multi_source_sources_attempted_total", &l);
        let success = sum(s, "vast_multi_source_sources_success_total", &l);
        let failure = sum(s, "vast_multi_source_sources_failure_total", &l);
        assert_eq!(
            attempted,
            success + failure,
            "{source}: attempted != success + failure"
        );
        assert_eq!(
            sum(s, "vast_multi_source_fetch_duration_seconds_count", &l),
            attempted
        );
    }
}

fn assert_quiescent(metrics: &PrometheusMetrics) -> Vec<Sample> {
    let s = parse(&metrics.encode());
    assert_client_invariants(&s);
    assert_multi_source_invariants(&s);
    s
}

/// Waits (bounded) until every active gauge is back to 0.
async fn settle(metrics: &PrometheusMetrics) {
    for _ in 0..200 {
        let s = parse(&metrics.encode());
        if sum(&s, "vast_client_active_requests", &[]) == 0.0
            && sum(&s, "vast_multi_source_active_requests", &[]) == 0.0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("active gauges did not return to 0");
}

#[tokio::test]
async fn race_returns_the_fastest_fill_and_cancels_the_losers() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "slow", "/slow/300"),
            src(&server, "fast", "/slow/20"),
        ])
        .strategy(Strategy::Race)
        .build();
    let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
    let report = report_of(&res);
    assert_eq!(report.winner.as_deref(), Some("fast"));
    assert_eq!(report.strategy, Strategy::Race);
    assert_eq!(report.fallback_depth, 0);
    assert_eq!(outcome_of(report, "fast"), Outcome::Ad);
    assert_eq!(
        outcome_of(report, "slow"),
        Outcome::Failure(ErrorType::Cancelled)
    );
    assert!(res.body().starts_with(b"<?xml"));

    // The loser was awaited before the answer: nothing left in flight.
    let s = assert_quiescent(&metrics);
    let slow = ("source_url", "slow");
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[slow, ("error_type", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[slow, ("error_type", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_success_total",
            &[("source_url", "fast"), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_success_total",
            &[("fetch_strategy", "race"), ("result", "success")]
        ),
        1.0
    );
}

#[tokio::test]
async fn sequential_stops_at_the_first_fill() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "broken", "/status/500"),
            src(&server, "second", "/inline"),
            src(&server, "third", "/inline"),
        ])
        .strategy(Strategy::Sequential)
        .build();
    let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
    let report = report_of(&res);
    assert_eq!(report.winner.as_deref(), Some("second"));
    assert_eq!(report.attempts.len(), 2);
    assert_eq!(
        outcome_of(report, "broken"),
        Outcome::Failure(ErrorType::Http5xx)
    );
    assert_eq!(report.attempts_of("third").count(), 0);
    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_attempted_total",
            &[("source_url", "third")]
        ),
        0.0
    );
    assert_eq!(
        sum(&s, "vast_client_request_total", &[("source_url", "third")]),
        0.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[("source_url", "broken"), ("error_type", "http_5xx")]
        ),
        1.0
    );
}

#[tokio::test]
async fn parallel_prefers_priority_over_speed() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "first", "/slow/100"),
            src(&server, "second", "/slow/10"),
        ])
        .strategy(Strategy::Parallel)
        .build();
    let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
    let report = report_of(&res);
    assert_eq!(report.winner.as_deref(), Some("first"));
    // Both answered; the faster one ended first.
    assert_eq!(report.attempts[0].source, "second");
    assert_eq!(outcome_of(report, "second"), Outcome::Ad);
    assert_eq!(outcome_of(report, "first"), Outcome::Ad);
    assert_quiescent(&metrics);
}

#[tokio::test]
async fn a_tier_without_a_fill_falls_back_and_depths_are_counted() {
    let server = AdServer::start().await.unwrap();
    for strategy in Strategy::ALL {
        let metrics = PrometheusMetrics::new();
        let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
            .tier([
                src(&server, "p1", "/status/500"),
                src(&server, "p2", "/no-ad"),
            ])
            .tier([src(&server, "f1", "/inline")])
            .strategy(strategy)
            .build();
        let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
        let report = report_of(&res);
        assert_eq!(report.winner.as_deref(), Some("f1"), "{strategy}");
        assert_eq!(report.fallback_depth, 1, "{strategy}");
        assert_eq!(outcome_of(report, "p2"), Outcome::NoAd);
        assert_eq!(
            report
                .attempts
                .iter()
                .find(|a| a.source == "f1")
                .unwrap()
                .tier,
            1
        );
        let s = assert_quiescent(&metrics);
        assert_eq!(
            sum(
                &s,
                "vast_multi_source_fallback_triggered_total",
                &[("fallback_depth", "1")]
            ),
            1.0,
            "{strategy}"
        );
        assert_eq!(
            sum(&s, "vast_multi_source_fallback_triggered_total", &[]),
            1.0
        );
    }

    // Two fallback tiers deep.
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([src(&server, "p", "/status/503")])
        .tier([src(&server, "f1", "/invalid-xml")])
        .tier([src(&server, "f2", "/wrap/1")])
        .build();
    let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
    assert_eq!(report_of(&res).fallback_depth, 2);
    assert_eq!(report_of(&res).winner.as_deref(), Some("f2"));
    let s = assert_quiescent(&metrics);
    for depth in ["1", "2"] {
        assert_eq!(
            sum(
                &s,
                "vast_multi_source_fallback_triggered_total",
                &[("fallback_depth", depth)]
            ),
            1.0
        );
    }
}

#[tokio::test]
async fn no_fill_is_a_typed_error_with_the_report() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    // Only no-ad answers: a successful fetch of an empty VAST, but no ad.
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "a", "/no-ad"),
            src(&server, "b", "/status/500"),
        ])
        .tier([src(&server, "c", "/no-ad")])
        .strategy(Strategy::Race)
        .build();
    let err = fetch(&mut svc, VastRequest::new()).await.unwrap_err();
    let MultiSourceError::NoFill { report } = &err else {
        panic!("expected NoFill, got {err:?}");
    };
    assert_eq!(report.winner, None);
    assert_eq!(report.attempts.len(), 3);
    assert_eq!(report.fallback_depth, 1);
    assert_eq!(report.outcome(), Outcome::NoAd);

    // Only failures: a failed fetch, by the last error.
    let mut failing = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([src(&server, "d", "/status/502")])
        .strategy(Strategy::Sequential)
        .build();
    let err = fetch(&mut failing, VastRequest::new()).await.unwrap_err();
    assert!(matches!(err, MultiSourceError::NoFill { .. }));
    assert_eq!(err.report().outcome(), Outcome::Failure(ErrorType::Http5xx));

    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_success_total",
            &[("fetch_strategy", "race"), ("result", "no_ad")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[("fetch_strategy", "sequential"), ("error_type", "http_5xx")]
        ),
        1.0
    );
}

#[tokio::test]
async fn per_source_timeout_moves_on_and_the_deadline_is_a_typed_error() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([src(&server, "sluggish", "/slow/2000")])
        .tier([src(&server, "backup", "/inline")])
        .source_timeout(Duration::from_millis(50))
        .build();
    let res = fetch(&mut svc, VastRequest::new()).await.unwrap();
    let report = report_of(&res);
    assert_eq!(report.winner.as_deref(), Some("backup"));
    assert_eq!(
        outcome_of(report, "sluggish"),
        Outcome::Failure(ErrorType::Timeout)
    );

    let mut late = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([src(&server, "late", "/slow/2000")])
        .tier([src(&server, "never", "/inline")])
        .strategy(Strategy::Sequential)
        .source_timeout(Duration::from_secs(5))
        .deadline(Duration::from_millis(100))
        .build();
    let err = fetch(&mut late, VastRequest::new()).await.unwrap_err();
    let MultiSourceError::DeadlineExceeded { report } = &err else {
        panic!("expected DeadlineExceeded, got {err:?}");
    };
    assert!(report.deadline_exceeded);
    assert_eq!(report.outcome(), Outcome::Failure(ErrorType::Timeout));
    // Cut by the overall deadline: a time-out, not a cancellation.
    assert_eq!(
        outcome_of(report, "late"),
        Outcome::Failure(ErrorType::Timeout)
    );
    assert_eq!(report.attempts_of("never").count(), 0);

    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[("source_url", "sluggish"), ("error_type", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[("fetch_strategy", "sequential"), ("error_type", "timeout")]
        ),
        1.0
    );
    // The client layer underneath agrees: both attempts timed out.
    for source in ["sluggish", "late"] {
        assert_eq!(
            sum(
                &s,
                "vast_client_request_failure_total",
                &[("source_url", source), ("error_type", "timeout")]
            ),
            1.0,
            "{source}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_races_leave_consistent_totals() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "s30", "/slow/30"),
            src(&server, "s5", "/slow/5"),
            src(&server, "s60", "/slow/60"),
            src(&server, "noad", "/no-ad"),
        ])
        .tier([src(&server, "fb", "/inline")])
        .strategy(Strategy::Race)
        .build();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let svc = svc.clone();
        tasks.spawn(async move {
            svc.oneshot(VastRequest::new().query(format!("cb={i}")))
                .await
        });
    }
    let mut wins = 0;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap().is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 20);
    settle(&metrics).await;
    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_total",
            &[("fetch_strategy", "race")]
        ),
        20.0
    );
    assert_eq!(
        sum(&s, "vast_multi_source_sources_attempted_total", &[]),
        80.0
    );
    // The slowest sources lose their races: cancelled.
    assert!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[("error_type", "cancelled")]
        ) >= 10.0
    );
}

#[tokio::test]
async fn a_dropped_fetch_is_cancelled_and_leaves_nothing_active() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "a", "/slow/1000"),
            src(&server, "b", "/slow/1000"),
        ])
        .strategy(Strategy::Parallel)
        .build();
    let fut = svc.ready().await.unwrap().call(VastRequest::new());
    assert!(tokio::time::timeout(Duration::from_millis(100), fut)
        .await
        .is_err());
    settle(&metrics).await;
    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[("fetch_strategy", "parallel"), ("error_type", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[("error_type", "cancelled")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_client_request_failure_total",
            &[("error_type", "cancelled")]
        ),
        2.0
    );

    // A future dropped before its first poll counts too.
    drop(svc.ready().await.unwrap().call(VastRequest::new()));
    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[("error_type", "cancelled")]
        ),
        2.0
    );
}

#[tokio::test]
async fn sources_are_counted_per_strategy_while_the_service_lives() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([src(&server, "a", "/inline"), src(&server, "b", "/inline")])
        .tier([])
        .tier([src(&server, "c", "/inline")])
        .strategy(Strategy::Sequential)
        .build();
    assert_eq!(svc.tiers().len(), 2);
    let gauge = |m: &PrometheusMetrics| {
        sum(
            &parse(&m.encode()),
            "vast_multi_source_sources",
            &[("fetch_strategy", "sequential")],
        )
    };
    assert_eq!(gauge(&metrics), 3.0);
    let clone = svc.clone();
    drop(svc);
    assert_eq!(gauge(&metrics), 3.0);
    drop(clone);
    assert_eq!(gauge(&metrics), 0.0);
}

#[tokio::test]
async fn the_filter_and_the_parse_step_are_timed() {
    let server = AdServer::start().await.unwrap();
    let metrics = PrometheusMetrics::new();
    let mut svc = MultiSource::builder(client(&metrics), metrics.clone())
        .tier([
            src(&server, "vast1", "/vast1"),
            src(&server, "inline", "/inline"),
        ])
        .strategy(Strategy::Sequential)
        // No VAST 1 ads.
        .filter(|vast| !vast.windows(22).any(|w| w == b"VideoAdServingTemplate"))
        .build();
    let res = fetch(&mut svc, VastRequest::new().strategy(Strategy::Parallel))
        .await
        .unwrap();
    let report = report_of(&res);
    assert_eq!(report.strategy, Strategy::Parallel);
    assert_eq!(report.winner.as_deref(), Some("inline"));
    assert_eq!(outcome_of(report, "vast1"), Outcome::NoAd);
    let s = assert_quiescent(&metrics);
    assert_eq!(
        sum(&s, "vast_multi_source_parse_duration_seconds_count", &[]),
        2.0
    );
    assert_eq!(
        sum(&s, "vast_multi_source_filter_duration_seconds_count", &[]),
        2.0
    );
}

#[tokio::test]
async fn your_own_fetcher_gets_the_family_from_its_report() {
    let metrics = PrometheusMetrics::new();
    // A hand-written fetcher: it says what it did in a FetchReport.
    let fetcher = service_fn(|slot: &'static str| async move {
        let mut report = FetchReport::new(Strategy::Sequential);
        match slot {
            "preroll" => {
                report.attempts.push(Attempt::new(
                    "primary",
                    0,
                    Outcome::Failure(ErrorType::Timeout),
                    Duration::from_millis(200),
                ));
                report.attempts.push(Attempt::new(
                    "backup",
                    1,
                    Outcome::Ad,
                    Duration::from_millis(40),
                ));
                report.fallback_depth = 1;
                report.winner = Some("backup".into());
                let mut res = http::Response::new(Bytes::from_static(b"<VAST/>"));
                res.extensions_mut().insert(report);
                Ok(res)
            }
            "midroll" => {
                // No fill: answered with a report all the same.
                report.attempts.push(Attempt::new(
                    "primary",
                    0,
                    Outcome::NoAd,
                    Duration::from_millis(30),
                ));
                let mut res = http::Response::new(Bytes::new());
                *res.status_mut() = http::StatusCode::NO_CONTENT;
                res.extensions_mut().insert(report);
                Ok(res)
            }
            "postroll" => {
                let mut res = http::Response::new(Bytes::new());
                *res.status_mut() = http::StatusCode::BAD_GATEWAY;
                Ok(res)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "down",
            )),
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(MultiSourceMetricsLayer::new(metrics.clone()).strategy(Strategy::Sequential))
        .service(fetcher);
    for slot in ["preroll", "midroll", "postroll", "overlay"] {
        let _ = svc.ready().await.unwrap().call(slot).await;
    }
    // Dropped before it answered.
    drop(svc.ready().await.unwrap().call("preroll"));

    let s = parse(&metrics.encode());
    assert_multi_source_invariants(&s);
    let seq = ("fetch_strategy", "sequential");
    assert_eq!(sum(&s, "vast_multi_source_requests_total", &[seq]), 5.0);
    let success = |result| {
        sum(
            &s,
            "vast_multi_source_requests_success_total",
            &[seq, ("result", result)],
        )
    };
    let failure = |error| {
        sum(
            &s,
            "vast_multi_source_requests_failure_total",
            &[seq, ("error_type", error)],
        )
    };
    assert_eq!(success("success"), 1.0);
    assert_eq!(success("no_ad"), 1.0);
    assert_eq!(failure("http_5xx"), 1.0);
    assert_eq!(failure("connect"), 1.0);
    assert_eq!(failure("cancelled"), 1.0);
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_fallback_triggered_total",
            &[("fallback_depth", "1")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_failure_total",
            &[("source_url", "primary"), ("error_type", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_sources_success_total",
            &[("source_url", "primary"), ("result", "no_ad")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "vast_multi_source_fetch_duration_seconds_count",
            &[("source_url", "backup"), ("result", "success")]
        ),
        1.0
    );
}
