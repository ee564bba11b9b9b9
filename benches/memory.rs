//! Memory per source after 10,000 sources were resolved through a layer
//! recording into `PrometheusMetrics` (every counter series of each source
//! present, at 0 or more): resident memory (`/proc/self/statm`), and the
//! bytes still allocated, counted by a global allocator that wraps
//! `System`; and the exposition size per source.
//!
//! `cargo bench --bench memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceExt};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::{INLINE_VAST, INVALID_XML};

/// Counts the bytes allocated and freed through it.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only counters are
// added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        FREED.fetch_add(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(new_size, Relaxed);
            FREED.fetch_add(layout.size(), Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (live bytes, allocations so far)
fn snapshot() -> (usize, usize) {
    (
        ALLOCATED.load(Relaxed) - FREED.load(Relaxed),
        ALLOCATIONS.load(Relaxed),
    )
}

const SOURCES: usize = 10_000;

/// Answers by the query (which is not part of the source label): `r=ok` an
/// inline ad, `r=xml` truncated XML, `r=503` a 503.
async fn answer(req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().query() {
        Some("r=xml") => (StatusCode::OK, INVALID_XML),
        Some("r=503") => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        _ => (StatusCode::OK, INLINE_VAST),
    };
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    Ok(res)
}

/// Resident memory of the process, in bytes (Linux; 0 elsewhere).
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Report {
    resident_per_source: f64,
    bytes_per_source: f64,
    allocations_per_source: f64,
    exposition_bytes_per_source: f64,
    exposition_lines_per_source: f64,
    encode_ms: f64,
}

/// Sends `kinds` to each of `SOURCES` sources (plus one warm-up source that
/// creates the families first) and measures what stays allocated.
fn measure(rt: &tokio::runtime::Runtime, kinds: &[&str], inspect: bool) -> Report {
    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone())
        .max_sources(SOURCES + 16)
        .inspect_vast(inspect);
    let mut svc = layer.layer(service_fn(answer));
    let mut send = |host: &str| {
        for kind in kinds {
            let req = Request::get(format!("http://{host}/vast?{kind}"))
                .body(())
                .unwrap();
            rt.block_on(async {
                let res = svc.ready().await.unwrap().call(req).await.unwrap();
                res.into_body().collect().await.unwrap();
            });
        }
    };
    send("warmup.example.com");
    let text_before = metrics.encode();
    let (live0, count0) = snapshot();
    let rss0 = resident();
    for i in 0..SOURCES {
        send(&format!("ads{i}.example.com"));
    }
    let rss1 = resident();
    let (live1, count1) = snapshot();
    let start = Instant::now();
    let text = metrics.encode();
    let encode_ms = start.elapsed().as_secs_f64() * 1e3;
    let n = SOURCES as f64;
    Report {
        resident_per_source: (rss1 as f64 - rss0 as f64) / n,
        bytes_per_source: (live1 as f64 - live0 as f64) / n,
        allocations_per_source: (count1 - count0) as f64 / n,
        exposition_bytes_per_source: (text.len() - text_before.len()) as f64 / n,
        exposition_lines_per_source: (text.lines().count() - text_before.lines().count()) as f64
            / n,
        encode_ms,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cases: [(&str, &[&str], bool); 3] = [
        ("one success, no inspection", &["r=ok"], false),
        ("one success, inspected", &["r=ok"], true),
        (
            "success + invalid_xml + http_5xx, inspected",
            &["r=ok", "r=xml", "r=503"],
            true,
        ),
    ];
    // Each case in a process of its own: memory freed by one case would
    // otherwise be reused by the next without showing in its resident size.
    if let Ok(case) = std::env::var("VAST_MEMORY_CASE") {
        let (name, kinds, inspect) = cases[case.parse::<usize>().expect("a case index")];
        let r = measure(&rt, kinds, inspect);
        println!(
            "{name:<46} {:>11.0} {:>11.0} {:>10.1} {:>11.0} {:>10.1} {:>10.2}",
            r.resident_per_source,
            r.bytes_per_source,
            r.allocations_per_source,
            r.exposition_bytes_per_source,
            r.exposition_lines_per_source,
            r.encode_ms
        );
        return;
    }
    println!("memory per source ({SOURCES} sources, PrometheusMetrics, one layer)");
    println!(
        "{:<46} {:>11} {:>11} {:>10} {:>11} {:>10} {:>10}",
        "case", "RSS B/src", "live B/src", "allocs/src", "expo B/src", "lines/src", "encode ms"
    );
    let me = std::env::current_exe().expect("the bench's own path");
    for case in 0..cases.len() {
        let status = std::process::Command::new(&me)
            .env("VAST_MEMORY_CASE", case.to_string())
            .status()
            .expect("run a case");
        assert!(status.success());
    }
}
