//! Invariants under chaos (issue 7, part 1).
//!
//! 100,000 requests (override with `VAST_CHAOS_REQUESTS`) from 64 concurrent
//! tasks over 20 loopback sources (4 [`AdServer`]s × 5 route kinds: a full
//! ad, a slow ad, 503, a reset mid-body, a chunked ad), through
//! [`VastMetricsLayer`] over hyper-util's client, with:
//!
//! - tower `timeout` stacked inside the layer (the layer records `timeout`)
//!   and outside it (the layer's future is dropped: `cancelled`);
//! - futures dropped after a random short time, bodies dropped after `k`
//!   frames (`cancelled` unless the body had already ended, or what was
//!   read is a complete VAST document);
//! - a share of fetches through [`MultiSource`] with each strategy, some of
//!   them dropped too.
//!
//! Every request's end is decided from the caller's side (which future or
//! body was dropped, which error came back), so the test knows exactly what
//! the metrics must say. At the end it checks, per source and strategy:
//! total == success + failure, every active gauge back to 0, histogram
//! `_count` == total, the exact split by `result`/`error_type`, and that
//! every body read to its end is byte-identical to what the server sent.

mod common;

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    assert_client_invariants, get, http_client, label_values, parse, sum, HttpClient, Sample,
};
use http_body::Body;
use http_body_util::BodyExt;
use tower::timeout::Timeout;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::{ErrorType, Outcome};
use vast_metrics::multi_source::{FetchReport, MultiSource, Source, Strategy, VastRequest};
use vast_metrics::source::SourceHasher;
use vast_metrics::vast::inspect;
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{self, AdServer};

const DEFAULT_REQUESTS: usize = 100_000;
const TASKS: usize = 64;
/// Share of fetches, in percent, that go through `MultiSource`.
const MULTI_SOURCE_PERCENT: u64 = 8;
/// Past this, the test stops issuing requests and fails.
const RUN_LIMIT: Duration = Duration::from_secs(170);
/// No single request may take longer: a hang is a failure.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// One loopback source: a fixed path on one ad server.
struct Src {
    url: String,
    /// Its `source_url` label: the hash of the normalised URL.
    label: String,
    /// The exact bytes a complete read returns.
    body: Bytes,
}

fn sources(servers: &[AdServer]) -> Vec<Src> {
    const SLOW_MS: [u64; 4] = [1, 4, 9, 16];
    const CHUNKS: [u64; 4] = [2, 3, 5, 8];
    const BIG_KB: [usize; 4] = [0, 8, 0, 24];
    let inline = Bytes::from_static(ad_server::INLINE_VAST.as_bytes());
    let mut out = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let (full_path, full_body) = if BIG_KB[i] == 0 {
            ("/inline".to_owned(), inline.clone())
        } else {
            (
                format!("/big/{}", BIG_KB[i]),
                Bytes::from(ad_server::big_vast(BIG_KB[i] * 1024)),
            )
        };
        let half = inline.slice(..inline.len() / 2);
        let routes = [
            (full_path, full_body),
            (format!("/slow/{}", SLOW_MS[i]), inline.clone()),
            ("/status/503".to_owned(), Bytes::from_static(b"status")),
            // Never complete: the body fails after these bytes.
            ("/reset".to_owned(), half),
            (format!("/chunked/{}", CHUNKS[i]), inline.clone()),
        ];
        for (path, body) in routes {
            let url = server.url(&path);
            let label = SourceHasher::default().label_for(&url.parse().unwrap());
            out.push(Src { url, label, body });
        }
    }
    out
}

/// What happened to one request, from the caller's side: what the client
/// family must have recorded for it.
fn expected_label(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Ad => ("success", "success"),
        Outcome::NoAd => ("success", "no_ad"),
        Outcome::Failure(e) => ("failure", e.as_str()),
    }
}

/// Counts by (source or strategy, "success"/"failure", result or error_type).
#[derive(Default)]
struct Tally {
    client: BTreeMap<(usize, &'static str, &'static str), u64>,
    multi: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    /// Bodies read to their end and compared.
    compared: u64,
    /// Complete 2xx bodies per source (each one inspected by the layer).
    inspected: BTreeMap<usize, u64>,
    /// Requests that exceeded `REQUEST_LIMIT`: must stay 0.
    hung: u64,
    /// Bodies that differed from what the server sent: must stay empty.
    mismatches: Vec<String>,
    modes: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.client {
            *self.client.entry(k).or_default() += v;
        }
        for (k, v) in other.multi {
            *self.multi.entry(k).or_default() += v;
        }
        for (k, v) in other.inspected {
            *self.inspected.entry(k).or_default() += v;
        }
        for (k, v) in other.modes {
            *self.modes.entry(k).or_default() += v;
        }
        self.compared += other.compared;
        self.hung += other.hung;
        self.mismatches.extend(other.mismatches);
    }

    fn mode(&mut self, mode: &'static str) {
        *self.modes.entry(mode).or_default() += 1;
    }

    fn client(&mut self, src: usize, outcome: Outcome) {
        let (kind, value) = expected_label(outcome);
        *self.client.entry((src, kind, value)).or_default() += 1;
    }
}

/// How a body ended on the caller's side.
enum BodyEnd {
    /// Read to the end (or every byte received when it was dropped).
    Complete(Bytes),
    /// A frame failed.
    Error,
    /// Dropped before its end, with the bytes read so far.
    Dropped(Bytes),
}

/// Reads `body` to its end, or drops it after `max_frames` frames.
async fn read_body<B>(body: B, max_frames: Option<usize>) -> BodyEnd
where
    B: Body<Data = Bytes>,
{
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    let mut frames = 0;
    loop {
        if max_frames == Some(frames) {
            // The layer ends a request in the poll that sees the end of
            // stream; a body whose last frame was read has ended.
            return if body.is_end_stream() {
                BodyEnd::Complete(Bytes::from(bytes))
            } else {
                BodyEnd::Dropped(Bytes::from(bytes))
            };
        }
        match body.frame().await {
            None => return BodyEnd::Complete(Bytes::from(bytes)),
            Some(Err(_)) => return BodyEnd::Error,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
                frames += 1;
            }
        }
    }
}

/// The outcome the layer records for a response of `status` whose body
/// ended as `end`; compares complete bodies with the source's bytes.
fn on_response(
    tally: &mut Tally,
    src: usize,
    expected: &Bytes,
    status: http::StatusCode,
    end: BodyEnd,
) -> Outcome {
    if let Some(error) = ErrorType::from_status(status) {
        // Ended at the headers, whatever happened to the body.
        return Outcome::Failure(error);
    }
    match end {
        BodyEnd::Complete(bytes) => {
            tally.compared += 1;
            if bytes != *expected {
                tally.mismatches.push(format!(
                    "source {src}: {} bytes, expected {}",
                    bytes.len(),
                    expected.len()
                ));
            }
            *tally.inspected.entry(src).or_default() += 1;
            inspect(&bytes).outcome()
        }
        BodyEnd::Error => Outcome::Failure(ErrorType::Body),
        // The caller had a complete VAST document: it counts by its
        // verdict; anything less is `cancelled`.
        BodyEnd::Dropped(bytes) => match inspect(&bytes) {
            verdict if verdict.is_vast() => {
                *tally.inspected.entry(src).or_default() += 1;
                verdict.outcome()
            }
            _ => Outcome::Failure(ErrorType::Cancelled),
        },
    }
}

/// Everything a task needs.
struct Ctx {
    client: HttpClient,
    layer: VastMetricsLayer,
    sources: Vec<Src>,
    multi: Vec<(Strategy, MultiSourceFetcher)>,
    /// Bodies of the multi-source sources, by name.
    multi_bodies: BTreeMap<&'static str, Bytes>,
}

/// tower's timeout outside the layer.
type OuterTimeout = Timeout<vast_metrics::layer::VastMetricsService<HttpClient>>;
type MultiSourceFetcher = MultiSource<vast_metrics::layer::VastMetricsService<Timeout<HttpClient>>>;

/// One client request through the layer, in one of the chaos modes.
async fn client_request(ctx: &Ctx, rng: &mut fastrand::Rng, n: usize, tally: &mut Tally) {
    let index = rng.u64(..ctx.sources.len() as u64) as usize;
    let src = &ctx.sources[index];
    // Cache-busters and a user id: never part of the label.
    let url = format!("{}?cb={n}&uid=user-{n}", src.url);
    let mode = rng.u64(..100);
    let outcome = if mode < 40 {
        // Plain: read to the end.
        tally.mode("plain");
        let mut svc = ctx.layer.layer(ctx.client.clone());
        match svc.ready().await.unwrap().call(get(&url)).await {
            Ok(res) => {
                let status = res.status();
                let end = read_body(res.into_body(), None).await;
                on_response(tally, index, &src.body, status, end)
            }
            Err(e) => Outcome::Failure(ErrorType::from_error(&e)),
        }
    } else if mode < 55 {
        // tower timeout inside the layer: the layer sees `Elapsed`.
        tally.mode("timeout_inside");
        let d = Duration::from_millis(1 + rng.u64(..20));
        let mut svc = ctx.layer.layer(Timeout::new(ctx.client.clone(), d));
        match svc.ready().await.unwrap().call(get(&url)).await {
            Ok(res) => {
                let status = res.status();
                let end = read_body(res.into_body(), None).await;
                on_response(tally, index, &src.body, status, end)
            }
            Err(e) => Outcome::Failure(ErrorType::from_error(&*e)),
        }
    } else if mode < 65 {
        // tower timeout outside the layer: its future is dropped.
        tally.mode("timeout_outside");
        let d = Duration::from_millis(1 + rng.u64(..20));
        let mut svc: OuterTimeout = ServiceBuilder::new()
            .timeout(d)
            .layer(ctx.layer.clone())
            .service(ctx.client.clone());
        match svc.ready().await.unwrap().call(get(&url)).await {
            Ok(res) => {
                let status = res.status();
                let end = read_body(res.into_body(), None).await;
                on_response(tally, index, &src.body, status, end)
            }
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => {
                Outcome::Failure(ErrorType::Cancelled)
            }
            Err(e) => Outcome::Failure(ErrorType::from_error(&*e)),
        }
    } else if mode < 80 {
        // The response future dropped after a random short time.
        tally.mode("drop_future");
        let d = Duration::from_millis(rng.u64(..12));
        let mut svc = ctx.layer.layer(ctx.client.clone());
        let fut = svc.ready().await.unwrap().call(get(&url));
        match tokio::time::timeout(d, fut).await {
            Err(_dropped) => Outcome::Failure(ErrorType::Cancelled),
            Ok(Ok(res)) => {
                let status = res.status();
                let end = read_body(res.into_body(), None).await;
                on_response(tally, index, &src.body, status, end)
            }
            Ok(Err(e)) => Outcome::Failure(ErrorType::from_error(&e)),
        }
    } else {
        // The body dropped after k frames.
        tally.mode("drop_body");
        let k = rng.u64(..4) as usize;
        let mut svc = ctx.layer.layer(ctx.client.clone());
        match svc.ready().await.unwrap().call(get(&url)).await {
            Ok(res) => {
                let status = res.status();
                let end = read_body(res.into_body(), Some(k)).await;
                on_response(tally, index, &src.body, status, end)
            }
            Err(e) => Outcome::Failure(ErrorType::from_error(&e)),
        }
    };
    tally.client(index, outcome);
}

/// One fetch through `MultiSource`, dropped after a random time in a third
/// of the cases.
async fn multi_source_request(ctx: &Ctx, rng: &mut fastrand::Rng, n: usize, tally: &mut Tally) {
    let (strategy, fetcher) = &ctx.multi[rng.u64(..ctx.multi.len() as u64) as usize];
    let strategy = strategy.as_str();
    let mut fetcher = fetcher.clone();
    let fut = fetcher
        .ready()
        .await
        .unwrap()
        .call(VastRequest::new().query(format!("cb={n}&uid=user-{n}")));
    let limit = if rng.u64(..100) < 33 {
        tally.mode("multi_source_dropped");
        Duration::from_millis(rng.u64(..25))
    } else {
        tally.mode("multi_source");
        REQUEST_LIMIT
    };
    let outcome = match tokio::time::timeout(limit, fut).await {
        Err(_dropped) if limit == REQUEST_LIMIT => {
            tally.hung += 1;
            Outcome::Failure(ErrorType::Cancelled)
        }
        Err(_dropped) => Outcome::Failure(ErrorType::Cancelled),
        Ok(Ok(res)) => {
            let report = res.extensions().get::<FetchReport>().expect("a report");
            let winner = report.winner.as_deref().expect("a winner");
            tally.compared += 1;
            if res.body() != &ctx.multi_bodies[winner] {
                tally
                    .mismatches
                    .push(format!("multi-source winner {winner}: body differs"));
            }
            report.outcome()
        }
        Ok(Err(e)) => e.report().outcome(),
    };
    let (kind, value) = expected_label(outcome);
    *tally.multi.entry((strategy, kind, value)).or_default() += 1;
}

fn build_multi(
    client: &HttpClient,
    layer: &VastMetricsLayer,
    metrics: &PrometheusMetrics,
    servers: &[AdServer],
) -> (
    Vec<(Strategy, MultiSourceFetcher)>,
    BTreeMap<&'static str, Bytes>,
) {
    let inline = Bytes::from_static(ad_server::INLINE_VAST.as_bytes());
    // Tier 0 never fills; tier 1 fills after a delay; tier 2 is quick.
    let tiers: [&[(&'static str, String)]; 3] = [
        &[
            ("ms-503", servers[0].url("/status/503")),
            ("ms-reset", servers[1].url("/reset")),
        ],
        &[
            ("ms-slow", servers[2].url("/slow/12")),
            ("ms-chunked", servers[3].url("/chunked/4")),
        ],
        &[("ms-inline", servers[0].url("/inline"))],
    ];
    let bodies = tiers
        .iter()
        .flat_map(|t| t.iter())
        .map(|(name, _)| (*name, inline.clone()))
        .collect();
    // Client timeout inside the layer, so the client family says `timeout`.
    let attempts = ServiceBuilder::new()
        .layer(layer.clone())
        .timeout(Duration::from_millis(15))
        .service(client.clone());
    let fetchers = Strategy::ALL
        .iter()
        .map(|&strategy| {
            let mut builder = MultiSource::builder(attempts.clone(), metrics.clone())
                .strategy(strategy)
                .source_timeout(Duration::from_millis(25))
                .deadline(Duration::from_millis(45));
            for tier in tiers {
                builder = builder.tier(
                    tier.iter()
                        .map(|(name, url)| Source::parse(*name, url).unwrap()),
                );
            }
            (strategy, builder.build())
        })
        .collect();
    (fetchers, bodies)
}

fn active_gauges(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == "vast_client_active_requests" || s.name == "vast_multi_source_active_requests"
        })
        .map(|s| s.value.abs())
        .sum()
}

fn requests() -> usize {
    std::env::var("VAST_CHAOS_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_chaos() {
    let total_requests = requests();
    let servers: Vec<AdServer> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(AdServer::start().await.unwrap());
        }
        v
    };
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone());
    let client: HttpClient = http_client();
    let srcs = sources(&servers);
    assert_eq!(srcs.len(), 20);
    let (multi, multi_bodies) = build_multi(&client, &layer, &metrics, &servers);
    let ctx = Arc::new(Ctx {
        client,
        layer,
        sources: srcs,
        multi,
        multi_bodies,
    });

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ctx = ctx.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(0xC4A0_5000 + t as u64);
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total_requests || started.elapsed() > RUN_LIMIT {
                    break;
                }
                let one = async {
                    if rng.u64(..100) < MULTI_SOURCE_PERCENT {
                        multi_source_request(&ctx, &mut rng, n, &mut tally).await;
                    } else {
                        client_request(&ctx, &mut rng, n, &mut tally).await;
                    }
                };
                if tokio::time::timeout(REQUEST_LIMIT, one).await.is_err() {
                    tally.hung += 1;
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.unwrap());
    }
    let run = started.elapsed();
    let done: u64 = tally.modes.values().sum();
    eprintln!(
        "chaos: {done} requests in {run:?} ({:.0}/s); modes {:?}; {} bodies compared",
        done as f64 / run.as_secs_f64(),
        tally.modes,
        tally.compared
    );
    let mut by_outcome: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for ((_, kind, value), count) in &tally.client {
        *by_outcome.entry((kind, value)).or_default() += count;
    }
    eprintln!("client outcomes: {by_outcome:?}");
    eprintln!("multi-source outcomes: {:?}", tally.multi);
    assert!(
        run < RUN_LIMIT,
        "the run hit its time limit after {done} of {total_requests} requests"
    );
    assert_eq!(done, total_requests as u64);
    assert_eq!(tally.hung, 0, "requests hung past {REQUEST_LIMIT:?}");
    assert!(
        tally.mismatches.is_empty(),
        "bodies differ from what the server sent: {:?}",
        &tally.mismatches[..tally.mismatches.len().min(10)]
    );

    // Quiescence: aborted multi-source attempts end on their own tasks.
    let quiet = Instant::now();
    let mut samples = parse(&metrics.encode());
    while active_gauges(&samples) != 0.0 && quiet.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        samples = parse(&metrics.encode());
    }
    eprintln!("quiescent after {:?}", quiet.elapsed());

    // Client family, every source (the 20 hashed ones and the named
    // multi-source ones): total == success + failure, active 0,
    // histogram count == total.
    assert_client_invariants(&samples);
    assert_eq!(
        label_values(&samples, "vast_client_request_total", "source_url").len(),
        20 + 5,
        "20 hashed sources and 5 named multi-source ones"
    );

    // The exact split per hashed source, as the caller saw it.
    for (i, src) in ctx.sources.iter().enumerate() {
        let s = ("source_url", src.label.as_str());
        let mut expected_total = 0;
        for kind in ["success", "failure"] {
            let (family, key) = if kind == "success" {
                ("vast_client_request_success_total", "result")
            } else {
                ("vast_client_request_failure_total", "error_type")
            };
            for value in label_values(&samples, family, key)
                .iter()
                .map(String::as_str)
                .chain(
                    tally
                        .client
                        .keys()
                        .filter(|(j, k, _)| *j == i && *k == kind)
                        .map(|(_, _, v)| *v),
                )
            {
                let want = tally.client.get(&(i, kind, value)).copied().unwrap_or(0);
                let got = sum(&samples, family, &[s, (key, value)]);
                assert_eq!(
                    got, want as f64,
                    "source {i} ({}): {family}{{{key}={value}}}",
                    src.url
                );
            }
        }
        for ((j, _, _), count) in &tally.client {
            if *j == i {
                expected_total += count;
            }
        }
        assert_eq!(
            sum(&samples, "vast_client_request_total", &[s]),
            expected_total as f64,
            "source {i} total"
        );
        // Every complete 2xx body (or complete document) was inspected, once.
        let inspected = tally.inspected.get(&i).copied().unwrap_or(0) as f64;
        assert_eq!(
            sum(&samples, "vast_parser_xml_parsed_total", &[s])
                + sum(&samples, "vast_parser_xml_failed_total", &[s]),
            inspected,
            "source {i} inspections"
        );
    }

    // Multi-source family: per strategy, the exact split; per source,
    // attempted == success + failure and a duration per attempt.
    for strategy in Strategy::ALL {
        let st = ("fetch_strategy", strategy.as_str());
        let mine: u64 = tally
            .multi
            .iter()
            .filter(|((s, _, _), _)| *s == strategy.as_str())
            .map(|(_, c)| c)
            .sum();
        let total = sum(&samples, "vast_multi_source_requests_total", &[st]);
        let success = sum(&samples, "vast_multi_source_requests_success_total", &[st]);
        let failure = sum(&samples, "vast_multi_source_requests_failure_total", &[st]);
        let latency = sum(&samples, "vast_multi_source_latency_seconds_count", &[st]);
        assert!(mine > 0, "no {strategy} fetches");
        assert_eq!(total, mine as f64, "{strategy} total");
        assert_eq!(
            total,
            success + failure,
            "{strategy}: total != success + failure"
        );
        assert_eq!(latency, total, "{strategy}: latency count != total");
        assert_eq!(
            sum(&samples, "vast_multi_source_active_requests", &[st]),
            0.0,
            "{strategy} active"
        );
        for ((s, kind, value), count) in &tally.multi {
            if *s != strategy.as_str() {
                continue;
            }
            let (family, key) = if *kind == "success" {
                ("vast_multi_source_requests_success_total", "result")
            } else {
                ("vast_multi_source_requests_failure_total", "error_type")
            };
            assert_eq!(
                sum(&samples, family, &[st, (key, value)]),
                *count as f64,
                "{strategy}: {family}{{{key}={value}}}"
            );
        }
    }
    let ms_sources = label_values(
        &samples,
        "vast_multi_source_sources_attempted_total",
        "source_url",
    );
    assert_eq!(ms_sources.len(), 5, "{ms_sources:?}");
    for source in &ms_sources {
        let s = [("source_url", source.as_str())];
        let attempted = sum(&samples, "vast_multi_source_sources_attempted_total", &s);
        let success = sum(&samples, "vast_multi_source_sources_success_total", &s);
        let failure = sum(&samples, "vast_multi_source_sources_failure_total", &s);
        let observed = sum(
            &samples,
            "vast_multi_source_fetch_duration_seconds_count",
            &s,
        );
        assert_eq!(
            attempted,
            success + failure,
            "{source}: attempted != success + failure"
        );
        assert_eq!(observed, attempted, "{source}: duration count != attempted");
        // An attempt reaches the client layer at most once (not at all
        // when its task is aborted before it first runs).
        assert!(
            sum(&samples, "vast_client_request_total", &s) <= attempted,
            "{source}: more client requests than attempts"
        );
    }

    // No id from a query reached the exposition.
    let text = metrics.encode();
    assert!(!text.contains("user-"), "a user id leaked");
    assert!(!text.contains("127.0.0.1"), "a host leaked");
    assert!(common::promtool_accepts(&text));

    // Dropping the fetchers takes their sources off the gauge.
    let ctx = Arc::into_inner(ctx).expect("tasks are done");
    drop(ctx);
    let samples = parse(&metrics.encode());
    assert_eq!(sum(&samples, "vast_multi_source_sources_count", &[]), 0.0);
}
