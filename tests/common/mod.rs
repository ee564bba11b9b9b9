//! Helpers shared by the integration tests: a parsed exposition; a
//! hyper-util client (alone or behind a layer), one request read to the
//! end, a free port and a running `/metrics` server. Each test binary uses
//! its own subset.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use vast_metrics::server::RunningServer;
use vast_metrics::MetricsServer;

/// One sample: family name, sorted labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text exposition format (0.0.4), label escapes included.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_owned(),
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").expect("label key");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

/// Sum of the samples of `name` whose labels include all of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The distinct values of one label in a family.
pub fn label_values(samples: &[Sample], name: &str, key: &str) -> Vec<String> {
    let mut values: Vec<String> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| s.labels.get(key).cloned())
        .collect();
    values.sort();
    values.dedup();
    values
}

/// Asserts, per source: total == success + failure, active == 0, and the
/// duration histogram counted every finished request.
pub fn assert_client_invariants(samples: &[Sample]) {
    let sources = label_values(samples, "vast_client_request_total", "source_url");
    assert!(!sources.is_empty(), "no client requests recorded");
    for source in sources {
        let s = [("source_url", source.as_str())];
        let total = sum(samples, "vast_client_request_total", &s);
        let success = sum(samples, "vast_client_request_success_total", &s);
        let failure = sum(samples, "vast_client_request_failure_total", &s);
        let active = sum(samples, "vast_client_active_requests", &s);
        let observed = sum(samples, "vast_client_request_duration_seconds_count", &s);
        assert_eq!(
            total,
            success + failure,
            "total != success + failure for {source}"
        );
        assert_eq!(active, 0.0, "active requests left for {source}");
        assert_eq!(observed, total, "duration count != total for {source}");
    }
}

/// Whether `promtool check metrics` accepts the exposition without a
/// complaint; `true` when promtool is missing (unless
/// `VAST_REQUIRE_PROMTOOL=1`, then it panics).
pub fn promtool_accepts(exposition: &str) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(_) if std::env::var("VAST_REQUIRE_PROMTOOL").as_deref() != Ok("1") => {
            eprintln!("skipping promtool check: promtool not found");
            return true;
        }
        Err(e) => panic!("VAST_REQUIRE_PROMTOOL=1 but promtool cannot run: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !printed.trim().is_empty() {
        eprintln!("promtool:\n{printed}");
        return false;
    }
    true
}

// ---------------------------------------------------------------- HTTP

/// hyper-util's HTTP/1 client; request bodies are `Full<Bytes>` unless said.
pub type HttpClient<B = Full<Bytes>> = Client<HttpConnector, B>;

/// A new hyper-util client (plain HTTP, Tokio executor).
pub fn http_client<B>() -> HttpClient<B>
where
    B: http_body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// A new hyper-util client behind `layer` (a `VastMetricsLayer`, a
/// `TrackingMetricsLayer`, ...).
pub fn layered<L: Layer<HttpClient>>(layer: L) -> L::Service {
    layer.layer(http_client())
}

/// A GET of `url` with an empty body.
pub fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

/// Sends `req` through `svc` and reads the body to the end: the status and
/// the body, or the error (`{:?}`) of `ready`, of the call or of the body.
pub async fn send<S, B>(
    svc: &mut S,
    req: http::Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc
        .ready()
        .await
        .map_err(|e| format!("{e:?}"))?
        .call(req)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok((status, body.to_bytes()))
}

/// `send` of a GET of `url`.
pub async fn fetch<S, B>(svc: &mut S, url: &str) -> Result<(StatusCode, Bytes), String>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    send(svc, get(url)).await
}

/// A loopback address that was free a moment ago: nothing listens there.
pub fn closed_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    closed_addr().port()
}

/// Where the demo serves `/metrics`, read from its output ("serving
/// http://ADDR/metrics"); `None` until it prints that line. Tests start the
/// demo on port 0 and read the port it got, so no other test can take the
/// port while cargo builds the example.
pub fn demo_metrics_addr(output: &str) -> Option<std::net::SocketAddr> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix("serving http://")?;
        rest.split('/').next()?.parse().ok()
    })
}

/// `server` bound to a free loopback port and running.
pub async fn start(server: MetricsServer) -> RunningServer {
    server
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind 127.0.0.1:0")
        .spawn()
}
