//! The crate's main job, end to end: multi-source VAST fetching against
//! several realistic ad servers on loopback, every metric family recorded,
//! `/metrics` served.
//!
//! Run: `cargo run --example demo`, then in another terminal:
//! `curl -s http://127.0.0.1:8000/metrics | grep vast_`
//!
//! It starts five VAST ad servers (fast, slow, flaky with 5xx, often no
//! fill, sometimes broken XML) and a tracking-pixel server, drives a steady
//! stream of multi-source fetches with each strategy (race, parallel,
//! sequential) over fallback tiers through hyper-util's client wrapped in
//! `VastMetricsLayer`, fires the impression and quartile pixels of every ad
//! it gets through a tracking layer, and prints a summary line every 2.5 s.
//!
//! Environment:
//! - `VAST_METRICS_ADDR`: listen address of `/metrics` (default `127.0.0.1:8000`)
//! - `VAST_DEMO_SECONDS`: stop after this many seconds (default: until Ctrl+C)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder, ServiceExt};
use vast_metrics::classify::Outcome;
use vast_metrics::layer::VastMetricsService;
use vast_metrics::multi_source::{
    FetchReport, MultiSource, MultiSourceError, Source, Strategy, VastRequest,
};
use vast_metrics::trace::TRACEPARENT;
use vast_metrics::tracking::TrackingEvent;
use vast_metrics::{MetricsServer, PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{
    self, wrapper_to, INLINE_VAST, INVALID_XML, NOT_VAST, NO_AD_VAST,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type VastClient = VastMetricsService<HttpClient>;

/// New fetches per strategy per second (about).
const FETCHES_PER_SECOND: u64 = 25;
/// Fetches in flight at most, per strategy.
const MAX_IN_FLIGHT: usize = 32;
const SUMMARY_EVERY: Duration = Duration::from_millis(2500);

// ---------------------------------------------------------------- randomness

// ---------------------------------------------------------------- ad servers

/// How one embedded ad server behaves.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    name: &'static str,
    /// Response time, uniform in this range (ms).
    latency_ms: (u64, u64),
    /// Percent of requests answered 500/503.
    server_error_pct: u64,
    /// Percent of requests answered with broken or non-VAST XML.
    broken_pct: u64,
    /// Percent of the remaining requests that fill (else a no-ad VAST).
    fill_pct: u64,
}

const FAST: Behaviour = Behaviour {
    name: "fast",
    latency_ms: (3, 25),
    server_error_pct: 1,
    broken_pct: 0,
    fill_pct: 85,
};
const SLOW: Behaviour = Behaviour {
    name: "slow",
    latency_ms: (120, 420),
    server_error_pct: 2,
    broken_pct: 0,
    fill_pct: 90,
};
const FLAKY: Behaviour = Behaviour {
    name: "flaky",
    latency_ms: (10, 80),
    server_error_pct: 30,
    broken_pct: 0,
    fill_pct: 80,
};
const NO_FILL: Behaviour = Behaviour {
    name: "nofill",
    latency_ms: (8, 40),
    server_error_pct: 0,
    broken_pct: 0,
    fill_pct: 15,
};
const BROKEN: Behaviour = Behaviour {
    name: "broken",
    latency_ms: (10, 60),
    server_error_pct: 2,
    broken_pct: 25,
    fill_pct: 70,
};
/// The tracking-pixel server: quick, 3% 503.
const PIXELS: Behaviour = Behaviour {
    name: "pixels",
    latency_ms: (1, 12),
    server_error_pct: 3,
    broken_pct: 0,
    fill_pct: 0,
};

struct AdServer {
    behaviour: Behaviour,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AdServer {
    async fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(behaviour, addr, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(AdServer {
            behaviour,
            addr,
            task,
        })
    }

    fn source(&self) -> Source {
        let url = format!("http://{}/vast?placement=preroll", self.addr);
        Source::parse(self.behaviour.name, &url).expect("a loopback URL parses")
    }
}

impl Drop for AdServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    b: Behaviour,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut rng = fastrand::Rng::new();
    tokio::time::sleep(Duration::from_millis(
        rng.u64(b.latency_ms.0..=b.latency_ms.1),
    ))
    .await;
    let status = |code: StatusCode| {
        let mut res = Response::new(Full::new(Bytes::from_static(b"unavailable")));
        *res.status_mut() = code;
        res
    };
    if rng.u64(..100) < b.server_error_pct {
        let code = if rng.u64(..100) < 50 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return Ok(status(code));
    }
    if req.uri().path() == "/pixel" {
        return Ok(status(StatusCode::NO_CONTENT));
    }
    let body: Bytes = if rng.u64(..100) < b.broken_pct {
        match rng.u64(0..=2) {
            0 => INVALID_XML.into(),
            1 => NOT_VAST.into(),
            _ => "".into(),
        }
    } else if rng.u64(..100) < b.fill_pct {
        let roll = rng.u64(..100);
        if roll < 40 {
            INLINE_VAST.into()
        } else if roll < 90 {
            pod(&mut rng).into()
        } else {
            // A wrapper back to this server: followed as a chain.
            let next = format!("http://{addr}/vast?hop={}", rng.u64(..));
            wrapper_to(&next, None).into()
        }
    } else {
        NO_AD_VAST.into()
    };
    let mut res = Response::new(Full::new(body));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    Ok(res)
}

/// An ad pod: two to five `<Ad sequence="n">`s of 6 to 30 seconds; now and
/// then a creative whose `<Duration>` a player could not read.
fn pod(rng: &mut fastrand::Rng) -> String {
    const DURATIONS: [&str; 6] = [
        "00:00:06",
        "00:00:15",
        "00:00:15",
        "00:00:20.500",
        "00:00:30",
        "00:00:30",
    ];
    let mut vast = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><VAST version="4.2">"#);
    for sequence in 1..=rng.u64(2..=5) {
        let duration = if rng.u64(..100) < 2 {
            "0:30"
        } else {
            DURATIONS[rng.usize(..DURATIONS.len())]
        };
        vast.push_str(&format!(
            r#"<Ad id="pod-{sequence}" sequence="{sequence}"><InLine><AdSystem>demo</AdSystem><AdTitle>Pod ad {sequence}</AdTitle><Impression><![CDATA[http://127.0.0.1/pixel]]></Impression><Creatives><Creative><Linear><Duration>{duration}</Duration><MediaFiles><MediaFile delivery="progressive" type="video/mp4" width="640" height="360"><![CDATA[http://127.0.0.1/ad.mp4]]></MediaFile></MediaFiles></Linear></Creative></Creatives></InLine></Ad>"#
        ));
    }
    vast.push_str("</VAST>");
    vast
}

// ---------------------------------------------------------------- statistics

#[derive(Default)]
struct Stats {
    requests: u64,
    fills: u64,
    fallbacks: u64,
    no_fill: u64,
    errors: u64,
    abandoned: u64,
    pixels: u64,
    latencies_ms: Vec<f64>,
    /// Seconds of break requested, and of linear ads returned for them.
    break_requested: f64,
    break_filled: f64,
}

impl Stats {
    fn record(&mut self, result: &Result<Response<Bytes>, MultiSourceError>, elapsed: Duration) {
        self.requests += 1;
        self.latencies_ms.push(elapsed.as_secs_f64() * 1000.0);
        let report = match result {
            Ok(res) => {
                self.fills += 1;
                res.extensions().get::<FetchReport>()
            }
            Err(e) => {
                match e.report().outcome() {
                    Outcome::NoAd => self.no_fill += 1,
                    _ => self.errors += 1,
                }
                Some(e.report())
            }
        };
        if report.is_some_and(|r| r.fallback_depth > 0) {
            self.fallbacks += 1;
        }
        if let Some(report) = report {
            let requested = report.break_requested.unwrap_or_default();
            self.break_requested += requested.as_secs_f64();
            self.break_filled += report.ad_duration.as_secs_f64();
        }
    }

    /// One summary line; resets the counts.
    fn line(&mut self, since: Duration, uptime: Duration) -> String {
        let secs = since.as_secs_f64().max(1e-3);
        let pct = |n: u64| 100.0 * n as f64 / self.requests.max(1) as f64;
        self.latencies_ms.sort_by(f64::total_cmp);
        let p95 = self
            .latencies_ms
            .get(
                (self.latencies_ms.len() * 95 / 100).min(self.latencies_ms.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(0.0);
        let line = format!(
            "[{:>5.1}s] {:>6.1} req/s | fill {:>5.1}% | by time {:>5.1}% | p95 {:>5.0} ms | fallback {:>5.1}% | no fill {} | errors {} | abandoned {} | pixels {}",
            uptime.as_secs_f64(),
            self.requests as f64 / secs,
            pct(self.fills),
            100.0 * self.break_filled / self.break_requested.max(1e-9),
            p95,
            pct(self.fallbacks),
            self.no_fill,
            self.errors,
            self.abandoned,
            self.pixels,
        );
        *self = Stats::default();
        line
    }
}

// ---------------------------------------------------------------- the fetch loop

/// Fires the impression and quartile pixels of an ad, in order.
async fn fire_pixels<T>(mut pixels: T, pixel_url: String, stats: Arc<Mutex<Stats>>)
where
    T: Service<Request<Full<Bytes>>>,
{
    let events = [
        TrackingEvent::IMPRESSION,
        TrackingEvent::START,
        TrackingEvent::FIRST_QUARTILE,
        TrackingEvent::MIDPOINT,
        TrackingEvent::THIRD_QUARTILE,
        TrackingEvent::COMPLETE,
    ];
    for event in events {
        let url = format!("{pixel_url}?e={}", event.as_str());
        let Ok(mut req) = Request::get(url).body(Full::default()) else {
            return;
        };
        req.extensions_mut().insert(event);
        let Ok(ready) = pixels.ready().await else {
            return;
        };
        // The layer records the outcome; the demo only counts.
        let _ = ready.call(req).await;
        stats.lock().expect("stats lock").pixels += 1;
    }
}

/// Every trace id of the demo starts with this, so a test can tell its
/// traces from made-up ones.
const DEMO_TRACE_PREFIX: &str = "dec0de";

/// A new W3C `traceparent`: random trace and span ids, sampled.
fn traceparent(rng: &mut fastrand::Rng) -> HeaderValue {
    let trace = format!("{DEMO_TRACE_PREFIX}{:026x}", rng.u128(..) >> 24);
    let value = format!("00-{trace}-{:016x}-01", rng.u64(1..));
    HeaderValue::from_str(&value).expect("hex digits and dashes")
}

/// Drives fetches of one strategy until `stop` is set.
async fn drive<T>(
    fetcher: MultiSource<VastClient>,
    pixels: T,
    pixel_url: String,
    stats: Arc<Mutex<Stats>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    T: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    T::Future: Send,
{
    let mut rng = fastrand::Rng::new();
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    let period = Duration::from_micros(1_000_000 / FETCHES_PER_SECOND);
    loop {
        // A little jitter around the rate.
        let pause = period.mul_f64(0.5 + rng.u64(0..=100) as f64 / 100.0);
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // saturated: skip a beat
        };
        n += 1;
        let fetcher = fetcher.clone();
        let pixels = pixels.clone();
        let pixel_url = pixel_url.clone();
        let stats = stats.clone();
        // Now and then the player gives up early: the fetch is dropped.
        let abandon_after = (rng.u64(..100) < 3).then(|| Duration::from_millis(rng.u64(5..=80)));
        let trace = traceparent(&mut rng);
        tasks.spawn(async move {
            let _permit = permit;
            let start = Instant::now();
            // Each fetch starts a trace, as a player's tracing would: its
            // id is the exemplar of the duration buckets it lands in.
            // A 30, 60 or 90 second break: fill by time is counted
            // against it.
            let req = VastRequest::new()
                .query(format!("cb={n}"))
                .header(HeaderName::from_static(TRACEPARENT), trace)
                .break_duration(Duration::from_secs(30 * (1 + n % 3)));
            let fetch = fetcher.oneshot(req);
            let result = match abandon_after {
                Some(after) => match tokio::time::timeout(after, fetch).await {
                    Ok(result) => result,
                    Err(_) => {
                        stats.lock().expect("stats lock").abandoned += 1;
                        return;
                    }
                },
                None => fetch.await,
            };
            stats
                .lock()
                .expect("stats lock")
                .record(&result, start.elapsed());
            if result.is_ok() {
                fire_pixels(pixels, pixel_url, stats).await;
            }
        });
        // Reap finished tasks as we go.
        while tasks.try_join_next().is_some() {}
    }
    // Let the fetches in flight finish, within reason.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.shutdown().await;
}

// ---------------------------------------------------------------- main

fn config() -> Result<(SocketAddr, Option<Duration>), String> {
    let addr = match std::env::var("VAST_METRICS_ADDR") {
        Ok(addr) => addr
            .parse()
            .map_err(|e| format!("VAST_METRICS_ADDR={addr:?} is not a socket address: {e}"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 8000)),
    };
    let run_for = match std::env::var("VAST_DEMO_SECONDS") {
        Ok(secs) => match secs.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            _ => {
                return Err(format!(
                    "VAST_DEMO_SECONDS={secs:?} is not a number of seconds"
                ))
            }
        },
        Err(_) => None,
    };
    Ok((addr, run_for))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (addr, run_for) = match config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(addr, run_for).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    addr: SocketAddr,
    run_for: Option<Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusMetrics::new();

    // The ad servers.
    let fast = AdServer::start(FAST).await?;
    let slow = AdServer::start(SLOW).await?;
    let flaky = AdServer::start(FLAKY).await?;
    let no_fill = AdServer::start(NO_FILL).await?;
    let broken = AdServer::start(BROKEN).await?;
    let pixel_server = AdServer::start(PIXELS).await?;
    println!("== vast-metrics demo ==");
    for s in [&fast, &slow, &flaky, &no_fill, &broken, &pixel_server] {
        let b = s.behaviour;
        println!(
            "  {:<7} http://{}  {:>3}-{:<3} ms, {:>2}% 5xx, {:>2}% broken, {:>2}% fill",
            b.name,
            s.addr,
            b.latency_ms.0,
            b.latency_ms.1,
            b.server_error_pct,
            b.broken_pct,
            b.fill_pct
        );
    }

    // One HTTP client: VAST fetches through the client layer (per-source
    // labels from the multi-source fetcher), pixels through a tracking layer.
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let vast_client: VastClient = ServiceBuilder::new()
        .layer(VastMetricsLayer::new(metrics.clone()))
        .service(http.clone());
    let pixels = ServiceBuilder::new()
        .layer(vast_metrics::TrackingMetricsLayer::new(metrics.clone()))
        .service(http);

    // Wrapper sources: chains that resolve in two hops, end empty, loop,
    // go too deep, or meet a hop slower than the attempt's time budget;
    // and tags that redirect (to an InLine ad, or in a loop).
    let wrappers = ad_server::AdServer::start().await?;
    let wrapper_source = |name: &'static str, path: &str| {
        Source::parse(name, &wrappers.url(path)).expect("a loopback URL parses")
    };
    let fetchers = [
        // Race the quick sources; the no-fill one is the fallback, raced by
        // a tag that redirects twice to an InLine ad.
        MultiSource::builder(vast_client.clone(), metrics.clone())
            .tier([fast.source(), flaky.source(), slow.source()])
            .tier([no_fill.source(), wrapper_source("redirect", "/hop/2")])
            .strategy(Strategy::Race)
            .source_timeout(Duration::from_millis(300))
            .deadline(Duration::from_millis(800))
            .build(),
        // Priority order within a tier; two fallback tiers.
        MultiSource::builder(vast_client.clone(), metrics.clone())
            .tier([no_fill.source(), broken.source()])
            .tier([flaky.source(), slow.source()])
            .tier([fast.source()])
            .strategy(Strategy::Parallel)
            .source_timeout(Duration::from_millis(300))
            .deadline(Duration::from_millis(800))
            // Only ads with a media file.
            .filter(|vast| vast.windows(10).any(|w| w == b"<MediaFile"))
            .build(),
        // One after the other, on a tight deadline.
        MultiSource::builder(vast_client.clone(), metrics.clone())
            .tier([no_fill.source(), slow.source()])
            .tier([flaky.source(), broken.source()])
            .tier([fast.source()])
            .strategy(Strategy::Sequential)
            .source_timeout(Duration::from_millis(250))
            .deadline(Duration::from_millis(350))
            .build(),
        // Wrappers first, one after the other; a direct source to fall back on.
        MultiSource::builder(vast_client.clone(), metrics.clone())
            .tier([
                wrapper_source("wrap-empty", "/wrap-empty/2"),
                wrapper_source("wrap-loop", "/loop"),
                wrapper_source("wrap-deep", "/wrap/8"),
                wrapper_source("wrap-slow", "/wrap-slow/1000"),
                // A redirect loop: stopped before the repeat, `redirect`.
                wrapper_source("redirect-loop", "/bounce/0"),
                wrapper_source("wrap-2hop", "/wrap/2"),
            ])
            .tier([fast.source()])
            .strategy(Strategy::Sequential)
            .source_timeout(Duration::from_millis(150))
            .deadline(Duration::from_millis(1200))
            .build(),
    ];

    let server = MetricsServer::new(metrics.clone())
        .bind(addr)
        .await?
        .spawn();
    let local = server.local_addr();
    println!("serving http://{local}/metrics   (try: curl -s http://{local}/metrics | grep vast_)");
    match run_for {
        Some(d) => println!("fetching with race, parallel and sequential for {d:?}...\n"),
        None => println!("fetching with race, parallel and sequential; Ctrl+C to stop\n"),
    }

    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pixel_url = format!("http://{}/pixel", pixel_server.addr);
    let mut drivers = tokio::task::JoinSet::new();
    for fetcher in fetchers {
        drivers.spawn(drive(
            fetcher,
            pixels.clone(),
            pixel_url.clone(),
            stats.clone(),
            stop_rx.clone(),
        ));
    }

    let started = Instant::now();
    let stop = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {
                let line = stats.lock().expect("stats lock").line(last.elapsed(), started.elapsed());
                last = Instant::now();
                println!("{line}");
            }
        }
    }

    println!("\nstopping: finishing the fetches in flight...");
    let _ = stop_tx.send(true);
    while drivers.join_next().await.is_some() {}
    server.shutdown().await?;
    println!("done.");
    Ok(())
}
