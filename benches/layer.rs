//! Per-request overhead of `VastMetricsLayer` over an in-memory service that
//! answers at once, against the bare service and the peers a user would
//! compare it with, all in the one group `per_request`, so that one run
//! gives the ratios; at the end it prints them, from this run's medians.
//!
//! Requests are built in untimed batches (URL parsing and extension
//! allocation are not measured); the timed part is `ready` + `call` + the
//! response future + reading the body to its end, in a tight loop inside one
//! `block_on` of a current-thread runtime.
//!
//! The cases, and the ratio each one answers:
//!
//! - `bare`: the ad server alone, the denominator of the NoOp ratios.
//! - `tower_map_response_identity`: the floor of any layer that wraps the
//!   response; `layer_noop` / `bare`: what the zero-cost default costs.
//! - `layer_prometheus_fixed_source` / `peer_minimal_same_lifecycle`: the
//!   named path against the floor of its lifecycle (handles resolved once,
//!   total and active at call, active, success and the histogram at the end
//!   of the body, a guard that ends once, and nothing else).
//! - `hashed_1_source` (the default: hashed URL label) against
//!   `peer_handwritten_prometheus_vec` (what users write by hand: the
//!   `prometheus` crate's vectors resolved by the URL's host per request,
//!   `std::time::Instant`) and `peer_metrics_facade_exporter` (the `metrics`
//!   facade resolving by key on every call, into `metrics-exporter-prometheus`):
//!   the default path against what a new user would write instead.
//! - `layer_byname_prometheus` and `naive_generic_api` against
//!   `layer_prometheus_fixed_source`: records by dotted name and label pairs,
//!   through the layer and around the service.
//! - `hashed_100_sources`, `hashed_10000_sources`,
//!   `hashed_10000_sources_capped` / `hashed_1_source`: the cost of many
//!   sources, and of the cap (past it, a URL takes the uncached path).
//! - `tracking` / `bare_tracking_request`: the tracking-pixel layer.
//! - `inspect_*` / `bare_*` (throughput in bytes): the VAST inspection.
//!
//! The peers share one service, future and body (like the layer's: no box,
//! the request ends at the body's end, failure or drop), so that they differ
//! from each other only in what they record. The group `clock` compares the
//! two clocks.
//!
//! `cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, Throughput};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use vast_metrics::prometheus::DEFAULT_DURATION_BUCKETS;
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

/// What a peer records when a request starts; its [`End`] records, once,
/// when the request ends.
trait Record: Clone {
    type End: End;
    fn begin(&self, req: &Request<()>) -> Self::End;
}

trait End {
    /// `result`: `success` at the end of the body, else why it ended.
    fn end(self, result: &'static str);
}

/// Ends the request once: by [`Guard::end`], or as `cancelled` if dropped.
struct Guard<E: End>(Option<E>);

impl<E: End> Guard<E> {
    fn end(&mut self, result: &'static str) {
        if let Some(end) = self.0.take() {
            end.end(result);
        }
    }
}

impl<E: End> Drop for Guard<E> {
    fn drop(&mut self) {
        self.end("cancelled");
    }
}

/// The peers' layer: `R` records, the rest is the same for every peer.
#[derive(Clone)]
struct PeerLayer<R>(R);

impl<S, R: Record> Layer<S> for PeerLayer<R> {
    type Service = PeerService<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        PeerService {
            inner,
            record: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct PeerService<S, R> {
    inner: S,
    record: R,
}

impl<S, R, B> Service<Request<()>> for PeerService<S, R>
where
    S: Service<Request<()>, Response = Response<B>>,
    R: Record,
    B: Body,
{
    type Response = Response<PeerBody<B, R::End>>;
    type Error = S::Error;
    type Future = PeerFuture<S::Future, R::End>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let guard = Guard(Some(self.record.begin(&req)));
        PeerFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

pin_project! {
    struct PeerFuture<F, E: End> {
        #[pin]
        inner: F,
        guard: Option<Guard<E>>,
    }
}

impl<F, E, B, Err> Future for PeerFuture<F, E>
where
    F: Future<Output = Result<Response<B>, Err>>,
    E: End,
    B: Body,
{
    type Output = Result<Response<PeerBody<B, E>>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let mut guard = this.guard.take().expect("polled after completion");
        Poll::Ready(match res {
            Ok(res) => Ok(res.map(|inner| {
                // A body that is over before it starts may never be polled.
                if inner.is_end_stream() {
                    guard.end("success");
                }
                PeerBody { inner, guard }
            })),
            Err(e) => {
                guard.end("error");
                Err(e)
            }
        })
    }
}

pin_project! {
    /// The inner body, ending the request when it ends, fails or is dropped.
    struct PeerBody<B, E: End> {
        #[pin]
        inner: B,
        guard: Guard<E>,
    }
}

impl<B: Body, E: End> Body for PeerBody<B, E> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(_)) if this.inner.is_end_stream() => this.guard.end("success"),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.guard.end("body_error"),
            None => this.guard.end("success"),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The label hand-written code uses: the request URL's host.
fn host(req: &Request<()>) -> String {
    req.uri().host().unwrap_or("unknown").to_owned()
}

/// Hand-written: the `prometheus` crate's vectors, resolved by label values
/// on every record.
#[derive(Clone)]
struct HandWritten(Arc<HandWrittenVecs>);

struct HandWrittenVecs {
    total: IntCounterVec,
    success: IntCounterVec,
    active: IntGaugeVec,
    duration: HistogramVec,
}

impl HandWritten {
    fn new(registry: &Registry) -> Self {
        let total = IntCounterVec::new(
            Opts::new("vast_client_request_total", "VAST requests started."),
            &["source_url"],
        )
        .unwrap();
        let success = IntCounterVec::new(
            Opts::new(
                "vast_client_request_success_total",
                "VAST requests that returned VAST.",
            ),
            &["source_url", "result"],
        )
        .unwrap();
        let active = IntGaugeVec::new(
            Opts::new("vast_client_active_requests", "VAST requests in flight."),
            &["source_url"],
        )
        .unwrap();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "vast_client_request_duration_seconds",
                "VAST request duration.",
            )
            .buckets(DEFAULT_DURATION_BUCKETS.to_vec()),
            &["source_url", "result"],
        )
        .unwrap();
        registry.register(Box::new(total.clone())).unwrap();
        registry.register(Box::new(success.clone())).unwrap();
        registry.register(Box::new(active.clone())).unwrap();
        registry.register(Box::new(duration.clone())).unwrap();
        HandWritten(Arc::new(HandWrittenVecs {
            total,
            success,
            active,
            duration,
        }))
    }
}

struct HandWrittenEnd {
    vecs: Arc<HandWrittenVecs>,
    source: String,
    start: Instant,
}

impl Record for HandWritten {
    type End = HandWrittenEnd;
    fn begin(&self, req: &Request<()>) -> HandWrittenEnd {
        let source = host(req);
        self.0.total.with_label_values(&[&source]).inc();
        self.0.active.with_label_values(&[&source]).inc();
        HandWrittenEnd {
            vecs: self.0.clone(),
            source,
            start: Instant::now(),
        }
    }
}

impl End for HandWrittenEnd {
    fn end(self, result: &'static str) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let (vecs, source) = (&self.vecs, self.source.as_str());
        vecs.active.with_label_values(&[source]).dec();
        if result == "success" {
            vecs.success.with_label_values(&[source, result]).inc();
        }
        vecs.duration
            .with_label_values(&[source, result])
            .observe(elapsed);
    }
}

/// The `metrics` facade, as its docs write it: the macros resolve the key
/// and labels in the installed recorder on every call.
#[derive(Clone)]
struct Facade;

struct FacadeEnd {
    source: String,
    start: Instant,
}

impl Record for Facade {
    type End = FacadeEnd;
    fn begin(&self, req: &Request<()>) -> FacadeEnd {
        let source = host(req);
        metrics::counter!("vast_client_request_total", "source_url" => source.clone()).increment(1);
        metrics::gauge!("vast_client_active_requests", "source_url" => source.clone())
            .increment(1.0);
        FacadeEnd {
            source,
            start: Instant::now(),
        }
    }
}

impl End for FacadeEnd {
    fn end(self, result: &'static str) {
        let elapsed = self.start.elapsed();
        let source = self.source;
        metrics::gauge!("vast_client_active_requests", "source_url" => source.clone())
            .decrement(1.0);
        if result == "success" {
            metrics::counter!(
                "vast_client_request_success_total",
                "source_url" => source.clone(),
                "result" => result
            )
            .increment(1);
        }
        metrics::histogram!(
            "vast_client_request_duration_seconds",
            "source_url" => source,
            "result" => result
        )
        .record(elapsed);
    }
}

/// Installs `metrics-exporter-prometheus`' recorder (histograms with the
/// crate's buckets) as the global one, with the upkeep its installers run
/// every 5 s (it drains the histograms' samples).
fn install_facade_exporter() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(DEFAULT_DURATION_BUCKETS)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(5));
        handle.run_upkeep();
    });
}

/// The floor of the layer's lifecycle: one fixed source's series, resolved
/// once; total and active at call, then active, success and the histogram
/// (quanta's clock) at the end.
#[derive(Clone)]
struct Minimal(Arc<MinimalSeries>);

struct MinimalSeries {
    total: IntCounter,
    success: IntCounter,
    active: IntGauge,
    duration: Histogram,
}

impl Minimal {
    fn new() -> Self {
        let opts = |name: &str| Opts::new(name, "help").const_label("source_url", "primary");
        let success = opts("vast_client_request_success_total").const_label("result", "success");
        let duration = HistogramOpts::new("vast_client_request_duration_seconds", "help")
            .const_label("source_url", "primary")
            .const_label("result", "success")
            .buckets(DEFAULT_DURATION_BUCKETS.to_vec());
        Minimal(Arc::new(MinimalSeries {
            total: IntCounter::with_opts(opts("vast_client_request_total")).unwrap(),
            success: IntCounter::with_opts(success).unwrap(),
            active: IntGauge::with_opts(opts("vast_client_active_requests")).unwrap(),
            duration: Histogram::with_opts(duration).unwrap(),
        }))
    }
}

struct MinimalEnd {
    series: Arc<MinimalSeries>,
    start: quanta::Instant,
}

impl Record for Minimal {
    type End = MinimalEnd;
    fn begin(&self, _: &Request<()>) -> MinimalEnd {
        self.0.total.inc();
        self.0.active.inc();
        MinimalEnd {
            series: self.0.clone(),
            start: quanta::Instant::now(),
        }
    }
}

impl End for MinimalEnd {
    fn end(self, result: &'static str) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.series.active.dec();
        if result == "success" {
            self.series.success.inc();
        }
        self.series.duration.observe(elapsed);
    }
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

    // `capped`: 10,000 sources past the default cap of 256, most of them
    // `other`; the plain row raises the cap so each has its own label.
    for (name, n, cap) in [
        ("hashed_1_source", 1, None),
        ("hashed_100_sources", 100, None),
        ("hashed_10000_sources", 10_000, Some(10_000)),
        ("hashed_10000_sources_capped", 10_000, None),
    ] {
        let list = urls(n);
        let mut layer = VastMetricsLayer::new(PrometheusMetrics::new()).inspect_vast(false);
        if let Some(cap) = cap {
            layer = layer.max_sources(cap);
        }
        bench(
            &mut g,
            &rt,
            name,
            layer.layer(ad_server(small.clone())),
            NoHooks,
            move |i| request(&list[i as usize % list.len()]),
        );
    }

    bench(
        &mut g,
        &rt,
        "peer_handwritten_prometheus_vec",
        PeerLayer(HandWritten::new(&Registry::new())).layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    install_facade_exporter();
    bench(
        &mut g,
        &rt,
        "peer_metrics_facade_exporter",
        PeerLayer(Facade).layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

    bench(
        &mut g,
        &rt,
        "peer_minimal_same_lifecycle",
        PeerLayer(Minimal::new()).layer(ad_server(small.clone())),
        NoHooks,
        one_req,
    );

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

/// The median of a `per_request` case in this run, in ns, from criterion's
/// own estimates (`target/criterion/per_request/<case>/new`).
fn median_ns(case: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = dir
        .join("criterion/per_request")
        .join(case)
        .join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints the ratios `docs/performance.md` gives, from this run's medians.
fn ratios() {
    let Some(bare) = median_ns("bare") else {
        return;
    };
    println!("\nper_request ratios (medians of this run; over bare = time - bare):");
    let over = |case: &str| median_ns(case).map(|t| t - bare);
    for case in [
        "layer_noop",
        "layer_prometheus_fixed_source",
        "hashed_1_source",
        "hashed_100_sources",
        "hashed_10000_sources",
        "hashed_10000_sources_capped",
        "peer_minimal_same_lifecycle",
        "peer_handwritten_prometheus_vec",
        "peer_metrics_facade_exporter",
        "naive_generic_api",
        "layer_byname_prometheus",
    ] {
        if let Some(t) = median_ns(case) {
            println!(
                "  {case:<36} {:>6.2}x bare  {:>+8.1} ns",
                t / bare,
                t - bare
            );
        }
    }
    let pairs = [
        (
            "hand-written peer / hashed (overhead over bare)",
            "peer_handwritten_prometheus_vec",
            "hashed_1_source",
        ),
        (
            "facade peer / hashed (overhead over bare)",
            "peer_metrics_facade_exporter",
            "hashed_1_source",
        ),
    ];
    for (what, a, b) in pairs {
        if let (Some(a), Some(b)) = (over(a), over(b)) {
            println!("  {what:<48} {:>6.2}x", a / b);
        }
    }
    let totals = [
        (
            "named / minimal peer (time)",
            "layer_prometheus_fixed_source",
            "peer_minimal_same_lifecycle",
        ),
        (
            "hashed 10,000 / hashed 1 (time)",
            "hashed_10000_sources",
            "hashed_1_source",
        ),
        (
            "hashed 10,000 capped / hashed 1 (time)",
            "hashed_10000_sources_capped",
            "hashed_1_source",
        ),
    ];
    for (what, a, b) in totals {
        if let (Some(a), Some(b)) = (median_ns(a), median_ns(b)) {
            println!("  {what:<48} {:>6.2}x", a / b);
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
