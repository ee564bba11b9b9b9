//! `OtelMetrics` end to end: demo-like traffic (layer over hyper-util and
//! MultiSource, against the loopback ad server) recorded into both a
//! `PrometheusMetrics` and an `OtelMetrics`; the OTel SDK exports over
//! OTLP/HTTP (protobuf) to a hyper receiver in this test, which decodes
//! `ExportMetricsServiceRequest` with the official proto types. Every
//! series received must equal the Prometheus exposition's.
#![cfg(feature = "opentelemetry")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use prost::Message as _;
use tower::{Service, ServiceExt};
use vast_metrics::multi_source::{MultiSource, Source, Strategy, VastRequest};
use vast_metrics::names::{MetricKind, VastMetrics};
use vast_metrics::otel::{instrument_name, instrument_unit, OtelMetrics};
use vast_metrics::recorder::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, RecordError, Recorder,
};
use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
use vast_test_support::ad_server::AdServer;

// ------------------------------------------------------------ fan-out

/// Records every value into both backends, so both see the very same
/// observations (durations included).
#[derive(Clone)]
struct Both {
    prometheus: PrometheusMetrics,
    otel: OtelMetrics,
}

struct Pair<H>(H, H);

impl CounterFn for Pair<Counter> {
    fn increment(&self, n: u64) {
        self.0.increment(n);
        self.1.increment(n);
    }
}

impl GaugeFn for Pair<Gauge> {
    fn add(&self, delta: f64) {
        self.0.add(delta);
        self.1.add(delta);
    }
}

impl HistogramFn for Pair<Histogram> {
    fn record(&self, value: f64) {
        self.0.record(value);
        self.1.record(value);
    }
}

impl vast_metrics::recorder::Recording for Both {}

impl Recorder for Both {
    fn register_counter(
        &self,
        family: &'static vast_metrics::names::MetricDef,
        labels: &[&str],
    ) -> Counter {
        Counter::from_fn(Arc::new(Pair(
            self.prometheus.register_counter(family, labels),
            self.otel.register_counter(family, labels),
        )))
    }
    fn register_gauge(
        &self,
        family: &'static vast_metrics::names::MetricDef,
        labels: &[&str],
    ) -> Gauge {
        Gauge::from_fn(Arc::new(Pair(
            self.prometheus.register_gauge(family, labels),
            self.otel.register_gauge(family, labels),
        )))
    }
    fn register_histogram(
        &self,
        family: &'static vast_metrics::names::MetricDef,
        labels: &[&str],
    ) -> Histogram {
        Histogram::from_fn(Arc::new(Pair(
            self.prometheus.register_histogram(family, labels),
            self.otel.register_histogram(family, labels),
        )))
    }
    fn record_error(&self, error: RecordError) {
        self.prometheus.record_error(error);
        self.otel.record_error(error);
    }
}

// ------------------------------------------------------------ OTLP receiver

/// One OTLP/HTTP request as received.
struct Received {
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

/// An OTLP/HTTP receiver on loopback that keeps every request and answers
/// with an empty `ExportMetricsServiceResponse` (full success).
async fn start_receiver() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let content_type = req
                            .headers()
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await?.to_bytes();
                        store.lock().unwrap().push(Received {
                            path,
                            content_type,
                            body,
                        });
                        let res = http::Response::builder()
                            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, hyper::Error>(res)
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, received)
}

/// The exporter's HTTP client: hyper-util on the test's runtime. The SDK's
/// `PeriodicReader` exports from its own thread, outside any runtime, so
/// each request is spawned onto the runtime and awaited from there.
#[derive(Debug)]
struct OnRuntime {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

type Sent = Result<http::Response<Bytes>, opentelemetry_http::HttpError>;

impl opentelemetry_http::HttpClient for OnRuntime {
    fn send_bytes<'a, 'f>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send + 'f>>
    where
        'a: 'f,
        Self: 'f,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let res = client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        });
        Box::pin(async move { task.await? })
    }
}

// ------------------------------------------------------------ decoding

type Attrs = BTreeMap<String, String>;

fn attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("{}: not a string attribute: {other:?}", kv.key),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// One histogram point: count, sum, explicit bounds, per-bucket counts.
#[derive(Debug)]
struct HistogramPoint {
    count: u64,
    sum: f64,
    bounds: Vec<f64>,
    buckets: Vec<u64>,
}

/// What the receiver got, by instrument name and attributes.
#[derive(Default)]
struct Otlp {
    metrics: HashMap<String, Metric>,
    sums: HashMap<(String, Attrs), f64>,
    histograms: HashMap<(String, Attrs), HistogramPoint>,
}

fn decode(request: &ExportMetricsServiceRequest) -> Otlp {
    let mut out = Otlp::default();
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map(|s| s.name.as_str());
            assert_eq!(scope, Some("vast-metrics"), "meter name as the scope");
            for metric in &sm.metrics {
                let name = metric.name.clone();
                match metric.data.as_ref().expect("data") {
                    Data::Sum(sum) => {
                        for p in &sum.data_points {
                            let value = match p.value.expect("a value") {
                                number_data_point::Value::AsInt(v) => v as f64,
                                number_data_point::Value::AsDouble(v) => v,
                            };
                            out.sums.insert((name.clone(), attrs(&p.attributes)), value);
                        }
                    }
                    Data::Histogram(h) => {
                        for p in &h.data_points {
                            let point = HistogramPoint {
                                count: p.count,
                                sum: p.sum.expect("a sum"),
                                bounds: p.explicit_bounds.clone(),
                                buckets: p.bucket_counts.clone(),
                            };
                            out.histograms
                                .insert((name.clone(), attrs(&p.attributes)), point);
                        }
                    }
                    other => panic!("{name}: unexpected data {other:?}"),
                }
                out.metrics.insert(name, metric.clone());
            }
        }
    }
    out
}

// ------------------------------------------------------------ the test

fn src(server: &AdServer, name: &'static str, path: &str) -> Source {
    Source::parse(name, &server.url(path)).unwrap()
}

/// Without the label `le`.
fn without_le(labels: &Attrs) -> Attrs {
    let mut labels = labels.clone();
    labels.remove("le");
    labels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_matches_the_prometheus_exposition() {
    let (addr, received) = start_receiver().await;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("http://{addr}/v1/metrics"))
        .with_timeout(Duration::from_secs(10))
        .with_http_client(OnRuntime {
            client: Client::builder(TokioExecutor::new()).build_http(),
            runtime: tokio::runtime::Handle::current(),
        })
        .build()
        .unwrap();
    // Exported by the explicit flush below, not by the timer.
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let both = Both {
        prometheus: PrometheusMetrics::new(),
        otel: OtelMetrics::new(provider.meter("vast-metrics")),
    };

    // Demo-like traffic: several sources, every outcome.
    let server = AdServer::start().await.unwrap();
    let mut layer = VastMetricsLayer::new(both.clone());
    let traffic = [
        ("/inline", "fill", 3),
        ("/no-ad", "nofill", 2),
        ("/invalid-xml", "broken", 1),
        ("/status/500", "down", 2),
        ("/slow/30", "slow", 1),
    ];
    for (path, alias, _) in traffic {
        layer = layer.source_alias(&server.url(path), alias).unwrap();
    }
    let mut svc = common::layered(layer);
    for (path, _, n) in traffic {
        for _ in 0..n {
            common::fetch(&mut svc, &server.url(path)).await.unwrap();
        }
    }
    // And multi-source fetches: a fallback after a failing tier, a
    // parallel tier.
    let client = common::layered(VastMetricsLayer::new(both.clone()));
    let mut sequential = MultiSource::builder(client.clone(), both.clone())
        .tier([src(&server, "p", "/status/503")])
        .tier([src(&server, "b", "/inline")])
        .strategy(Strategy::Sequential)
        .build();
    for _ in 0..2 {
        let ready = sequential.ready().await.unwrap();
        ready.call(VastRequest::new()).await.unwrap();
    }
    let mut parallel = MultiSource::builder(client, both.clone())
        .tier([src(&server, "f1", "/no-ad"), src(&server, "f2", "/inline")])
        .strategy(Strategy::Parallel)
        .build();
    let ready = parallel.ready().await.unwrap();
    ready.call(VastRequest::new()).await.unwrap();

    // Export (the reader thread sends on this runtime: block elsewhere).
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    })
    .await
    .unwrap();

    let prom = common::parse(&both.prometheus.encode());
    common::assert_client_invariants(&prom);

    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "nothing exported");
    for r in received.iter() {
        assert_eq!(r.path, "/v1/metrics");
        assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
    }
    // Cumulative temporality: the last export holds the totals.
    let last = ExportMetricsServiceRequest::decode(received.last().unwrap().body.clone())
        .expect("an ExportMetricsServiceRequest");
    let otlp = decode(&last);

    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut compared = HashMap::<MetricKind, usize>::new();
    for def in VastMetrics::ALL {
        let name = instrument_name(def);
        let Some(metric) = otlp.metrics.get(name) else {
            // Not recorded by this traffic: not in the exposition either.
            let recorded = prom
                .iter()
                .filter(|s| s.name.starts_with(def.exported))
                .any(|s| s.value != 0.0);
            assert!(!recorded, "{name} missing from OTLP");
            continue;
        };
        assert_eq!(metric.unit, instrument_unit(def), "{name}");
        assert_eq!(metric.description, def.help, "{name}");
        match def.kind {
            MetricKind::Counter | MetricKind::Gauge => {
                let Some(Data::Sum(sum)) = &metric.data else {
                    panic!("{name}: not a sum")
                };
                assert_eq!(sum.is_monotonic, def.kind == MetricKind::Counter, "{name}");
                assert_eq!(sum.aggregation_temporality, cumulative, "{name}");
                let samples: Vec<_> = prom.iter().filter(|s| s.name == def.exported).collect();
                for s in &samples {
                    let got = otlp.sums.get(&(name.to_owned(), s.labels.clone()));
                    assert_eq!(
                        got.copied().unwrap_or(0.0),
                        s.value,
                        "{name} {:?}",
                        s.labels
                    );
                }
                for ((n, a), value) in &otlp.sums {
                    if n == name {
                        let s = samples.iter().find(|s| &s.labels == a);
                        let s = s.unwrap_or_else(|| panic!("{name} {a:?} not in Prometheus"));
                        assert_eq!(s.value, *value, "{name} {a:?}");
                        *compared.entry(def.kind).or_default() += 1;
                    }
                }
            }
            MetricKind::Histogram => {
                let Some(Data::Histogram(h)) = &metric.data else {
                    panic!("{name}: not a histogram")
                };
                assert_eq!(h.aggregation_temporality, cumulative, "{name}");
                let count = format!("{}_count", def.exported);
                let sum = format!("{}_sum", def.exported);
                let bucket = format!("{}_bucket", def.exported);
                for ((n, a), p) in &otlp.histograms {
                    if n != name {
                        continue;
                    }
                    let prom_count = common::sum(&prom, &count, &[]);
                    assert!(prom_count > 0.0);
                    let find = |family: &str| {
                        prom.iter()
                            .find(|s| s.name == family && &s.labels == a)
                            .unwrap_or_else(|| panic!("{family} {a:?} not in Prometheus"))
                            .value
                    };
                    assert_eq!(p.count as f64, find(&count), "{name} {a:?} count");
                    let (want, got) = (find(&sum), p.sum);
                    assert!(
                        (want - got).abs() <= 1e-9 * want.abs().max(1.0),
                        "{name} {a:?} sum"
                    );
                    // Same buckets, same counts: Prometheus' `le` buckets are
                    // cumulative, OTLP's per bucket.
                    let bounds = if def.buckets.is_empty() {
                        vast_metrics::prometheus::DEFAULT_DURATION_BUCKETS
                    } else {
                        def.buckets
                    };
                    assert_eq!(p.bounds, bounds, "{name}");
                    let mut cumulative_count = 0;
                    for (i, bound) in p.bounds.iter().enumerate() {
                        cumulative_count += p.buckets[i];
                        let le = prom
                            .iter()
                            .find(|s| {
                                s.name == bucket
                                    && &without_le(&s.labels) == a
                                    && s.labels["le"].parse::<f64>().ok() == Some(*bound)
                            })
                            .unwrap_or_else(|| panic!("{bucket} {a:?} le={bound}"));
                        assert_eq!(cumulative_count as f64, le.value, "{name} {a:?} le={bound}");
                    }
                    assert_eq!(p.buckets.iter().sum::<u64>(), p.count);
                    *compared.entry(def.kind).or_default() += 1;
                }
                // Every Prometheus series with observations was exported.
                for s in prom.iter().filter(|s| s.name == count && s.value > 0.0) {
                    assert!(
                        otlp.histograms
                            .contains_key(&(name.to_owned(), s.labels.clone())),
                        "{name} {:?} missing from OTLP",
                        s.labels
                    );
                }
            }
        }
    }

    // Spot checks of known values, so the comparison is not vacuous.
    let key = |name: &str, labels: &[(&str, &str)]| {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (name.to_owned(), labels)
    };
    let total = "vast.client.request.total";
    for (_, alias, n) in traffic {
        let got = otlp.sums[&key(total, &[("source_url", alias)])];
        assert_eq!(got, n as f64, "{alias}");
    }
    let success = "vast.client.request.success";
    let fill = [("source_url", "fill"), ("result", "success")];
    assert_eq!(otlp.sums[&key(success, &fill)], 3.0);
    let down = [("source_url", "down"), ("error_type", "http_5xx")];
    assert_eq!(otlp.sums[&key("vast.client.request.failure", &down)], 2.0);
    let active = [("source_url", "fill")];
    assert_eq!(otlp.sums[&key("vast.client.active_requests", &active)], 0.0);
    let seq = [("fetch_strategy", "sequential")];
    assert_eq!(
        otlp.sums[&key("vast.multi_source.requests.total", &seq)],
        2.0
    );
    let depth = [("fallback_depth", "1")];
    assert_eq!(
        otlp.sums[&key("vast.multi_source.fallback.triggered", &depth)],
        2.0
    );
    let duration = &otlp.histograms[&key("vast.client.request.duration", &fill)];
    assert_eq!(duration.count, 3);
    assert_eq!(
        otlp.metrics["vast.multi_source.latency"].unit, "s",
        "durations in seconds"
    );
    assert!(compared[&MetricKind::Counter] >= 15, "{compared:?}");
    assert!(compared[&MetricKind::Gauge] >= 5, "{compared:?}");
    assert!(compared[&MetricKind::Histogram] >= 8, "{compared:?}");
}
