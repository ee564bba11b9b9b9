//! Per-request overhead of `VastMetricsLayer` over an in-memory service that
//! answers at once, against the bare service in the same group.
//!
//! Requests are built in untimed batches (URL parsing and extension
//! allocation are not measured); the timed part is `ready` + `call` + the
//! response future + reading the body to its end, in a tight loop inside one
//! `block_on` of a current-thread runtime.
//!
//! `cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use vast_metrics::recorder::ByName;
use vast_metrics::tracking::TrackingEvent;
use vast_metrics::{
    MetricLabels, MetricsCollector, NoOpMetrics, PrometheusMetrics, VastMetrics, VastMetricsLayer,
};
use vast_test_support::ad_server::{big_vast, INLINE_VAST};

/// Requests built per untimed batch.
const BATCH: u64 = 256;

/// An in-memory ad server that answers every request at once with `body`.
fn ad_server(
    body: Bytes,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |_req: Request<()>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
    })
}

/// Work done around each request by the caller (the naive generic API).
trait Hooks {
    type Token;
    fn start(&self) -> Self::Token;
    fn end(&self, token: Self::Token);
}

struct NoHooks;

impl Hooks for NoHooks {
    type Token = ();
    #[inline(always)]
    fn start(&self) {}
    #[inline(always)]
    fn end(&self, _: ()) {}
}

/// The original system's way: every record by dotted name and label pairs.
struct Naive(PrometheusMetrics);

impl Hooks for Naive {
    type Token = Instant;
    fn start(&self) -> Instant {
        let labels = [(MetricLabels::SOURCE_URL, "primary")];
        self.0
            .increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &labels);
        self.0
            .gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, 1.0, &labels);
        Instant::now()
    }
    fn end(&self, start: Instant) {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let source = (MetricLabels::SOURCE_URL, "primary");
        let result = (MetricLabels::RESULT, "success");
        self.0
            .gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, -1.0, &[source]);
        self.0
            .increment(VastMetrics::CLIENT_REQUEST_SUCCESS, 1, &[source, result]);
        self.0.timing(
            VastMetrics::CLIENT_REQUEST_DURATION_MS,
            ms,
            &[source, result],
        );
    }
}

/// Runs `iters` requests through `svc` and returns the time spent in
/// `ready` + `call` + the future + the body.
fn drive<S, B, H>(
    rt: &Runtime,
    svc: &mut S,
    hooks: &H,
    iters: u64,
    make: &impl Fn(u64) -> Request<()>,
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
    H: Hooks,
{
    rt.block_on(async {
        let mut batch = Vec::with_capacity(BATCH as usize);
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = BATCH.min(iters - done);
            batch.extend((done..done + n).map(make));
            let start = Instant::now();
            for req in batch.drain(..) {
                let token = hooks.start();
                let res = svc.ready().await.unwrap().call(req).await.unwrap();
                let mut body = pin!(res.into_body());
                while let Some(frame) = body.frame().await {
                    black_box(frame.unwrap());
                }
                hooks.end(token);
            }
            total += start.elapsed();
            done += n;
        }
        total
    })
}

fn bench<S, B, H>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    mut svc: S,
    hooks: H,
    make: impl Fn(u64) -> Request<()>,
) where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
    H: Hooks,
{
    g.bench_function(name, |b| {
        b.iter_custom(|iters| drive(rt, &mut svc, &hooks, iters, &make))
    });
}

/// A VAST document of about `bytes` bytes made of repeated inline `<Ad>`s.
fn dense_vast(bytes: usize) -> String {
    let start = INLINE_VAST.find("  <Ad id").unwrap();
    let end = INLINE_VAST.find("</VAST>").unwrap();
    let ad = &INLINE_VAST[start..end];
    let n = bytes.saturating_sub(INLINE_VAST.len()) / ad.len() + 1;
    let doc = format!(
        "{}{}{}",
        &INLINE_VAST[..start],
        ad.repeat(n),
        &INLINE_VAST[end..]
    );
    assert!(matches!(
        vast_metrics::vast::inspect(doc.as_bytes()),
        vast_metrics::vast::VastVerdict::Ads { .. }
    ));
    doc
}

fn urls(n: usize) -> Vec<Uri> {
    (0..n)
        .map(|i| {
            format!("http://ads{i}.example.com/vast?cb={}", 1_000_000 + i)
                .parse()
                .unwrap()
        })
        .collect()
}

fn request(uri: &Uri) -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = uri.clone();
    req
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let small = Bytes::from_static(INLINE_VAST.as_bytes());
    let one = urls(1);
    let one_req = |_| request(&one[0]);

    let mut g = c.benchmark_group("per_request");
    g.throughput(Throughput::Elements(1));

    bench(
        &mut g,
        &rt,
        "bare",
        ad_server(small.clone()),
        NoHooks,
        one_req,
    );

    // The floor for any layer that wraps the response: tower's identity map.
    let identity = tower::util::MapResponseLayer::new(|r: Response<Full<Bytes>>| r);
    bench(
        &mut g,
        &rt,
        "tower_map_response_identity",
        identity.layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    let noop = VastMetricsLayer::new(NoOpMetrics);
    bench(
        &mut g,
        &rt,
        "layer_noop",
        noop.layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    let fixed = VastMetricsLayer::new(PrometheusMetrics::new())
        .source_name("primary")
        .inspect_vast(false);
    bench(
        &mut g,
        &rt,
        "layer_prometheus_fixed_source",
        fixed.layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    let metrics = PrometheusMetrics::new();
    let by_name = VastMetricsLayer::new(ByName::new(metrics.clone()))
        .source_name("primary")
        .inspect_vast(false);
    bench(
        &mut g,
        &rt,
        "layer_byname_prometheus",
        by_name.layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    bench(
        &mut g,
        &rt,
        "naive_generic_api",
        ad_server(small.clone()),
        Naive(PrometheusMetrics::new()),
        one_req,
    );

    for (name, n) in [
        ("hashed_1_source", 1),
        ("hashed_100_sources", 100),
        ("hashed_10000_sources_capped", 10_000),
    ] {
        let list = urls(n);
        let layer = VastMetricsLayer::new(PrometheusMetrics::new()).inspect_vast(false);
        bench(
            &mut g,
            &rt,
            name,
            layer.layer(ad_server(small.clone())),
            NoHooks,
            move |i| request(&list[i as usize % list.len()]),
        );
    }

    let tracking_req = |_| {
        let mut req = request(&one[0]);
        req.extensions_mut().insert(TrackingEvent::IMPRESSION);
        req
    };
    bench(
        &mut g,
        &rt,
        "bare_tracking_request",
        ad_server(small.clone()),
        NoHooks,
        tracking_req,
    );
    let tracking = vast_metrics::TrackingMetricsLayer::new(PrometheusMetrics::new());
    bench(
        &mut g,
        &rt,
        "tracking",
        tracking.layer(ad_server(small.clone())),
        NoHooks,
        tracking_req,
    );

    g.throughput(Throughput::Bytes(small.len() as u64));
    let inspect = VastMetricsLayer::new(PrometheusMetrics::new()).source_name("primary");
    bench(
        &mut g,
        &rt,
        "inspect_inline_1kb",
        inspect.layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    // `big_vast` pads with one XML comment, which the parser skips at
    // memchr speed; `dense` repeats the whole `<Ad>` instead (an ad pod).
    let bodies = [
        ("5kb", big_vast(5 * 1024)),
        ("50kb", big_vast(50 * 1024)),
        ("50kb_dense", dense_vast(50 * 1024)),
    ];
    for (kb, body) in bodies {
        let body = Bytes::from(body);
        g.throughput(Throughput::Bytes(body.len() as u64));
        bench(
            &mut g,
            &rt,
            &format!("bare_{kb}"),
            ad_server(body.clone()),
            NoHooks,
            one_req,
        );
        let inspect = VastMetricsLayer::new(PrometheusMetrics::new()).source_name("primary");
        bench(
            &mut g,
            &rt,
            &format!("inspect_{kb}"),
            inspect.layer(ad_server(body)),
            NoHooks,
            one_req,
        );
    }
    g.finish();
}

/// The two clock reads per request: std's `Instant` against quanta's.
fn clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    g.bench_function("std_instant_now", |b| b.iter(|| black_box(Instant::now())));
    let _ = quanta::Instant::now(); // calibrate outside the measurement
    g.bench_function("quanta_instant_now", |b| {
        b.iter(|| black_box(quanta::Instant::now()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = per_request, clock
}
criterion_main!(benches);
