//! Contention: 1, 2 and 8 tasks on a 2-worker multi-thread runtime, all
//! sending through clones of one layered in-memory service (one shared
//! layer state and one `PrometheusMetrics`). Time is wall-clock per request
//! over all tasks, against the bare service in the same group.
//!
//! `cargo bench --bench contention -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::INLINE_VAST;

const TASKS: [u64; 3] = [1, 2, 8];

fn ad_server(
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            INLINE_VAST.as_bytes(),
        ))))
    })
}

fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://ads{i}.example.com/vast?cb={}", 1_000_000 + i))
        .collect()
}

/// `iters` requests split over `tasks` tasks; wall-clock time of them all.
/// Each task parses its own copy of the URLs (untimed) so that cloning a
/// `Uri` per request does not share a reference count between threads.
fn run<S, B>(rt: &Runtime, svc: &S, urls: &[String], tasks: u64, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Send,
    B::Error: std::fmt::Debug,
{
    let per_task = iters.div_ceil(tasks);
    let lists: Vec<Vec<Uri>> = (0..tasks)
        .map(|_| urls.iter().map(|u| u.parse().unwrap()).collect())
        .collect();
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = lists
            .into_iter()
            .enumerate()
            .map(|(t, urls)| {
                let mut svc = svc.clone();
                let offset = t as u64 * per_task;
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let mut req = Request::new(());
                        *req.uri_mut() = urls[((offset + i) % urls.len() as u64) as usize].clone();
                        let res = svc.ready().await.unwrap().call(req).await.unwrap();
                        let mut body = pin!(res.into_body());
                        while let Some(frame) = body.frame().await {
                            black_box(frame.unwrap());
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        // Scale to the requested count (per_task * tasks may exceed iters).
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * tasks) as f64)
    })
}

fn contention(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let one = urls(1);
    let many = urls(100);

    let mut g = c.benchmark_group("contention");
    g.throughput(Throughput::Elements(1));
    for tasks in TASKS {
        let bare = ad_server();
        g.bench_with_input(BenchmarkId::new("bare", tasks), &tasks, |b, &t| {
            b.iter_custom(|iters| run(&rt, &bare, &one, t, iters))
        });

        let layered = VastMetricsLayer::new(PrometheusMetrics::new())
            .inspect_vast(false)
            .layer(ad_server());
        g.bench_with_input(
            BenchmarkId::new("layer_prometheus_1_source", tasks),
            &tasks,
            |b, &t| b.iter_custom(|iters| run(&rt, &layered, &one, t, iters)),
        );

        let layered = VastMetricsLayer::new(PrometheusMetrics::new())
            .inspect_vast(false)
            .layer(ad_server());
        g.bench_with_input(
            BenchmarkId::new("layer_prometheus_100_sources", tasks),
            &tasks,
            |b, &t| b.iter_custom(|iters| run(&rt, &layered, &many, t, iters)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = contention
}
criterion_main!(benches);
