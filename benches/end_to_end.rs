//! End to end: hyper-util's legacy `Client` to the crate's `AdServer`
//! (`/inline`) on loopback, keep-alive, one request at a time; the bare
//! client against the client wrapped in `VastMetricsLayer` (Prometheus,
//! hashed source label), in the same group. Client and server share one
//! current-thread runtime, so runs are not at the mercy of the scheduler.
//!
//! `cargo bench --bench end_to_end -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

fn drive<S, B>(rt: &Runtime, svc: &mut S, uri: &Uri, iters: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let mut req = Request::new(Full::default());
            *req.uri_mut() = uri.clone();
            let res = svc.ready().await.unwrap().call(req).await.unwrap();
            assert!(res.status().is_success());
            let mut body = pin!(res.into_body());
            while let Some(frame) = body.frame().await {
                black_box(frame.unwrap());
            }
        }
        start.elapsed()
    })
}

/// Criterion measures one case after the other, so drift between them
/// (other processes on a 2-core machine) can exceed the 2% looked for. Here
/// the cases alternate in short rounds and each round's ratio to the bare
/// client of the same round is kept; the medians are printed.
fn paired(rt: &Runtime, uri: &Uri) {
    const ROUNDS: usize = 41;
    const PER_ROUND: u64 = 500;
    let mut bare = client();
    let mut inspect = VastMetricsLayer::new(PrometheusMetrics::new()).layer(client());
    let mut no_inspect = VastMetricsLayer::new(PrometheusMetrics::new())
        .inspect_vast(false)
        .layer(client());
    let per_request = |d: Duration| d.as_secs_f64() * 1e9 / PER_ROUND as f64;
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    for round in 0..=ROUNDS {
        let mut t = [0.0; 3];
        for k in 0..3 {
            // Rotate the order so no case always runs first.
            match (k + round) % 3 {
                0 => t[0] = per_request(drive(rt, &mut bare, uri, PER_ROUND)),
                1 => t[1] = per_request(drive(rt, &mut inspect, uri, PER_ROUND)),
                _ => t[2] = per_request(drive(rt, &mut no_inspect, uri, PER_ROUND)),
            }
        }
        if round == 0 {
            continue; // warm-up: connections, series
        }
        for k in 0..3 {
            times[k].push(t[k]);
        }
        ratios[0].push(t[1] / t[0]);
        ratios[1].push(t[2] / t[0]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("end_to_end paired ({ROUNDS} alternating rounds of {PER_ROUND} requests, medians):");
    let bare_ns = median(&mut times[0]);
    println!(
        "  bare_client                         {:>9.0} ns/request",
        bare_ns
    );
    for (k, name) in [
        (1, "layer_prometheus_hashed_inspect"),
        (2, "layer_prometheus_hashed_no_inspect"),
    ] {
        let ns = median(&mut times[k]);
        let ratio = median(&mut ratios[k - 1]);
        println!(
            "  {name:<35} {ns:>9.0} ns/request  ratio {ratio:.4} ({:+.1}%, {:+.0} ns)",
            (ratio - 1.0) * 100.0,
            ns - bare_ns
        );
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(AdServer::start()).unwrap();
    let uri: Uri = server.url("/inline?cb=12345").parse().unwrap();

    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(1));

    let mut bare = client();
    g.bench_function("bare_client", |b| {
        b.iter_custom(|iters| drive(&rt, &mut bare, &uri, iters))
    });

    let metrics = PrometheusMetrics::new();
    let mut layered = VastMetricsLayer::new(metrics.clone()).layer(client());
    g.bench_function("layer_prometheus_hashed_inspect", |b| {
        b.iter_custom(|iters| drive(&rt, &mut layered, &uri, iters))
    });

    let mut layered = VastMetricsLayer::new(PrometheusMetrics::new())
        .inspect_vast(false)
        .layer(client());
    g.bench_function("layer_prometheus_hashed_no_inspect", |b| {
        b.iter_custom(|iters| drive(&rt, &mut layered, &uri, iters))
    });

    // Bare again: drift over the run shows as a difference between the two.
    let mut bare = client();
    g.bench_function("bare_client_again", |b| {
        b.iter_custom(|iters| drive(&rt, &mut bare, &uri, iters))
    });
    g.finish();

    paired(&rt, &uri);

    let text = metrics.encode();
    assert!(text.contains("vast_client_request_success_total"), "{text}");
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = end_to_end
}
criterion_main!(benches);
