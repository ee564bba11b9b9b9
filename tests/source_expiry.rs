//! Idle sources expire: a layer capped at 256 sees 100,000 distinct hosts
//! over time and keeps its memory, its exposition and its live sources'
//! labels and counts; a source with a request in flight never expires.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{assert_client_invariants, label_values, parse, sum, Sample};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceExt};
use vast_metrics::source::{SourceHasher, SourceLabel};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};

/// Bytes allocated and not yet freed, by the whole test binary.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this binary run one at a time: the allocation count is
/// global.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VAST: &str =
    r#"<VAST version="4.2"><Ad id="1"><InLine><AdSystem>t</AdSystem></InLine></Ad></VAST>"#;

/// An in-memory ad server: hosts `host-N` with N % 7 == 3 answer 500,
/// N % 11 == 5 an empty 200, others an ad.
fn ad_server(
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(|req: Request<Full<Bytes>>| async move {
        let n: Option<u64> = req
            .uri()
            .host()
            .and_then(|h| h.strip_prefix("host-"))
            .and_then(|h| h.strip_suffix(".example"))
            .and_then(|n| n.parse().ok());
        let res = match n {
            Some(n) if n % 7 == 3 => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::default())
                .unwrap(),
            Some(n) if n % 11 == 5 => Response::new(Full::default()),
            _ => Response::new(Full::new(Bytes::from_static(VAST.as_bytes()))),
        };
        Ok::<_, Infallible>(res)
    })
}

fn get(url: &str, label: Option<&'static str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(url).body(Full::default()).unwrap();
    if let Some(label) = label {
        req.extensions_mut().insert(SourceLabel::new(label));
    }
    req
}

/// One request, its body read to the end.
async fn fetch<S>(svc: &mut S, req: Request<Full<Bytes>>)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<vast_metrics::layer::ResponseBody<Full<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    res.into_body().collect().await.unwrap();
}

fn host_url(i: u64) -> String {
    format!("http://host-{i}.example/vast?cb={i}")
}

fn host_label(i: u64) -> String {
    SourceHasher::default().label_for(&host_url(i).parse().unwrap())
}

fn client_sources(samples: &[Sample]) -> Vec<String> {
    label_values(samples, "vast_client_request_total", "source_url")
}

fn totals(samples: &[Sample], source: &str) -> (f64, f64, f64) {
    let s = [("source_url", source)];
    (
        sum(samples, "vast_client_request_total", &s),
        sum(samples, "vast_client_request_success_total", &s),
        sum(samples, "vast_client_request_failure_total", &s),
    )
}

const CAP: usize = 256;
/// Well above a wave's 2,000 requests on a loaded debug build, so a host
/// does not expire before its wave's scrape.
const EXPIRY: Duration = Duration::from_millis(400);
/// Past the expiry and its granularity (an eighth of it).
const PAUSE: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_thousand_hosts_through_a_capped_layer() {
    let _serial = SERIAL.lock().await;
    const WAVES: u64 = 50;
    const PER_WAVE: u64 = 2_000;
    /// Live sources are used once per this many hosts.
    const LIVE_EVERY: u64 = 100;

    let metrics = PrometheusMetrics::new();
    let layer = VastMetricsLayer::new(metrics.clone())
        .max_sources(CAP)
        .source_idle_expiry(EXPIRY)
        .source_alias("http://alias.example/vast", "aliased")
        .unwrap();
    let mut svc = layer.layer(ad_server());
    let mut fixed = VastMetricsLayer::new(metrics.clone())
        .source_name("fixed")
        .source_idle_expiry(EXPIRY)
        .layer(ad_server());

    let mut live_requests = 0.0;
    let mut live_bytes = Vec::new();
    let mut per_source_max = 0usize;
    for wave in 0..WAVES {
        if wave > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        let hosts = wave * PER_WAVE..(wave + 1) * PER_WAVE;
        for i in hosts.clone() {
            if i % LIVE_EVERY == 0 {
                // The named source first: after the pause, the first
                // request of a known source may sweep, and "named" has been
                // idle for as long as the hosts (a live source is one that
                // is used, not one that was).
                fetch(&mut svc, get(&host_url(i), Some("named"))).await;
                fetch(&mut svc, get("http://alias.example/vast?cb=1", None)).await;
                fetch(&mut fixed, get("http://fixed.example/vast", None)).await;
                live_requests += 1.0;
            }
            fetch(&mut svc, get(&host_url(i), None)).await;
        }

        let text = metrics.encode();
        let samples = parse(&text);
        drop(text);
        assert_client_invariants(&samples);
        let sources = client_sources(&samples);
        // The cap counts live sources (the named one among them); the
        // alias, the fixed name and `other` are on top.
        assert!(
            sources.len() <= CAP + 3,
            "wave {wave}: {} sources",
            sources.len()
        );
        // The live sources keep their labels and every count.
        for live in ["aliased", "named", "fixed"] {
            let (total, success, failure) = totals(&samples, live);
            assert_eq!(total, live_requests, "wave {wave}: {live}");
            assert_eq!(total, success + failure, "wave {wave}: {live}");
        }
        // Every other labelled source is a host of this wave: the earlier
        // ones expired and left the exposition.
        let this_wave: HashSet<String> = hosts.clone().map(host_label).collect();
        for source in &sources {
            let known = ["aliased", "named", "fixed", "other"].contains(&source.as_str());
            assert!(
                known || this_wave.contains(source),
                "wave {wave}: {source} is not a host of this wave"
            );
        }
        // The first new host of a wave finds the slots freed: a label of
        // its own, not `other`.
        let first = host_label(hosts.start);
        assert!(
            sources.contains(&first),
            "wave {wave}: the first host is not labelled"
        );
        assert_eq!(
            sum(
                &samples,
                "vast_client_request_total",
                &[("source_url", &first)]
            ),
            1.0
        );
        // Series stay bounded: by source, and by source count.
        let labelled = samples
            .iter()
            .filter(|s| s.labels.contains_key("source_url"))
            .count();
        per_source_max = per_source_max.max(labelled / sources.len());
        assert!(
            labelled <= (CAP + 3) * 150,
            "wave {wave}: {labelled} series"
        );
        drop(samples);
        if wave == 4 || wave == WAVES - 1 {
            live_bytes.push(LIVE.load(Ordering::Relaxed));
        }
    }
    let (early, late) = (live_bytes[0], live_bytes[1]);
    eprintln!("live bytes: after wave 5 {early}, after wave {WAVES} {late}; {per_source_max} series per source at most");
    assert!(
        late <= early + early / 2,
        "memory grew: {early} bytes after wave 5, {late} after wave {WAVES}"
    );
    assert!(
        metrics.error_count(vast_metrics::prometheus::RecordError::SourceLabelOverflow) > 0,
        "the cap was never reached"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn expiry_frees_the_cap_and_restarts_from_zero() {
    let _serial = SERIAL.lock().await;
    let url = |h: &str| format!("http://{h}.example/vast");
    let label = |h: &str| SourceHasher::default().label_for(&url(h).parse().unwrap());

    for expiry in [Some(Duration::from_millis(20)), None] {
        let metrics = PrometheusMetrics::new();
        let layer = VastMetricsLayer::new(metrics.clone()).max_sources(2);
        let layer = match expiry {
            Some(d) => layer.source_idle_expiry(d),
            None => layer.source_idle_expiry(Duration::MAX),
        };
        let mut svc = layer.layer(ad_server());
        fetch(&mut svc, get(&url("a"), None)).await;
        fetch(&mut svc, get(&url("a"), None)).await;
        fetch(&mut svc, get(&url("b"), None)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        fetch(&mut svc, get(&url("c"), None)).await;
        fetch(&mut svc, get(&url("a"), None)).await;
        let samples = parse(&metrics.encode());
        assert_client_invariants(&samples);
        let sources = client_sources(&samples);
        match expiry {
            Some(_) => {
                // a and b expired: c and a (again) got labels; a starts
                // over from zero, b is gone.
                assert!(sources.contains(&label("c")), "{sources:?}");
                assert!(!sources.contains(&label("b")), "{sources:?}");
                assert!(!sources.contains(&"other".to_owned()), "{sources:?}");
                assert_eq!(totals(&samples, &label("a")), (1.0, 1.0, 0.0));
            }
            None => {
                // Never expired: the cap stays full, c is `other`.
                assert!(sources.contains(&label("b")), "{sources:?}");
                assert!(!sources.contains(&label("c")), "{sources:?}");
                assert_eq!(totals(&samples, &label("a")), (3.0, 3.0, 0.0));
                assert_eq!(totals(&samples, "other"), (1.0, 1.0, 0.0));
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_source_in_flight_never_expires() {
    let _serial = SERIAL.lock().await;
    let metrics = PrometheusMetrics::new();
    let mut svc = VastMetricsLayer::new(metrics.clone())
        .max_sources(1)
        .source_idle_expiry(Duration::from_millis(20))
        .layer(ad_server());
    let held_url = "http://held.example/vast";
    let held = SourceHasher::default().label_for(&held_url.parse().unwrap());

    // The response arrives; its body is held, unread.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(held_url, None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A new source sweeps: the held one is idle but in flight, so it
    // keeps its slot and the newcomer is `other`.
    fetch(&mut svc, get("http://late.example/vast", None)).await;
    let samples = parse(&metrics.encode());
    let s = [("source_url", held.as_str())];
    assert_eq!(sum(&samples, "vast_client_request_total", &s), 1.0);
    assert_eq!(sum(&samples, "vast_client_active_requests", &s), 1.0);
    assert_eq!(totals(&samples, "other"), (1.0, 1.0, 0.0));

    // The body is read: the request ends, as a success.
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, VAST.as_bytes());
    let samples = parse(&metrics.encode());
    assert_client_invariants(&samples);
    assert_eq!(totals(&samples, &held), (1.0, 1.0, 0.0));
    assert_eq!(sum(&samples, "vast_client_active_requests", &s), 0.0);

    // Now idle and not in flight: it expires, and frees its slot.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next_url = "http://next.example/vast";
    fetch(&mut svc, get(next_url, None)).await;
    let samples = parse(&metrics.encode());
    let sources = client_sources(&samples);
    assert!(!sources.contains(&held), "{sources:?}");
    let next = SourceHasher::default().label_for(&next_url.parse().unwrap());
    assert_eq!(totals(&samples, &next), (1.0, 1.0, 0.0));
}
