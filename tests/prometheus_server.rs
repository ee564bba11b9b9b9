//! The dashboard and the alert rules against a real Prometheus server.
//!
//! - `alert_rules_pass_promtool`: `promtool check rules` and
//!   `promtool test rules` on `dashboards/`; and every series a dashboard or
//!   alert query names is an exported family of the README's table (or of
//!   `NOT_YET_IN_README`, counters of the crate's contract the README does
//!   not list yet), with only that family's labels in its selectors.
//! - `dashboard_and_alert_queries_work_against_the_demo`: the `prometheus`
//!   binary scrapes `cargo run --example demo` every second; every dashboard
//!   query (variables set to match all) parses and returns data, every alert
//!   expression parses, and the rules load and evaluate without error.
//! - `source_labels_agree_across_processes`: two demo processes scraped by
//!   one Prometheus: `sum by (source_url)` over both equals the per-instance
//!   sums added, and every source label appears in both instances.
//!
//! Without `prometheus`/`promtool` on `PATH` these tests print
//! "skipping: prometheus not found" and pass, unless
//! `VAST_REQUIRE_PROMETHEUS=1` (then they fail; the promtool test also
//! fails on `VAST_REQUIRE_PROMTOOL=1`, which `.ci/run` sets).
//!
//! serde_json is not a dependency of the crate, so a minimal JSON reader
//! (below) reads the dashboard and Prometheus' API answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Json = serde_json::Value;

use bytes::Bytes;
use common::free_port;
use http_body_util::{BodyExt, Empty};
use vast_metrics::names::{MetricDef, MetricKind};
use vast_metrics::VastMetrics;

const DASHBOARD: &str = "dashboards/multi_source_monitoring.json";
const ALERTS: &str = "dashboards/alerts.yml";
const ALERTS_TEST: &str = "dashboards/alerts_test.yml";

/// How long the demo may take to answer on /metrics (includes compiling it).
const DEMO_START: Duration = Duration::from_secs(240);
/// How long Prometheus may take to have scraped data.
const FIRST_DATA: Duration = Duration::from_secs(60);
/// Data gathered before the dashboard queries run, so that `rate()` over
/// `1m` has points for series that appear a little later.
const SETTLE: Duration = Duration::from_secs(15);
/// How long a dashboard query may keep returning nothing after that.
const QUERY_RETRY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- skipping

/// `VAST_REQUIRE_PROMETHEUS=1` (or, for promtool, `VAST_REQUIRE_PROMTOOL=1`
/// as the other promtool tests): a missing binary fails instead of skipping.
fn required(binary: &str) -> bool {
    let set = |var: &str| std::env::var(var).as_deref() == Ok("1");
    set("VAST_REQUIRE_PROMETHEUS") || (binary == "promtool" && set("VAST_REQUIRE_PROMTOOL"))
}

/// Whether `binary --version` runs; `false` (the test then skips) when it
/// is missing, a panic when it is missing and `VAST_REQUIRE_PROMETHEUS=1`.
fn available(binary: &str) -> bool {
    let runs = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        assert!(
            !required(binary),
            "VAST_REQUIRE_PROMETHEUS=1 (or VAST_REQUIRE_PROMTOOL=1) but `{binary}` cannot run"
        );
        println!("skipping: {binary} not found");
    }
    runs
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- promtool

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool() {
    if !available("promtool") {
        return;
    }
    promtool(&["check", "rules", ALERTS]);
    promtool(&["test", "rules", ALERTS_TEST]);
}

// ---------------------------------------------------------------- exported names

/// Families the crate exports (its contract, `VastMetrics::ALL`) that the
/// README's table does not list yet; the dashboard may name them with the
/// labels the crate records (a histogram as `_bucket` with `le`, `_sum` and
/// `_count`). Drop an entry once the README has its row.
const NOT_YET_IN_README: &[MetricDef] = &[];

/// The README's table of exported families: name → labels.
fn exported_families() -> BTreeMap<String, BTreeSet<String>> {
    let readme = fs::read_to_string(manifest_dir().join("README.md")).expect("README.md");
    let mut families = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | dotted | `exported` [¹] | type | labels |
        if cells.len() < 6 || !matches!(cells[3], "counter" | "gauge" | "histogram") {
            continue;
        }
        let Some(name) = cells[2].split('`').nth(1) else {
            continue;
        };
        let labels: BTreeSet<String> = cells[4]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('('))
            .map(str::to_owned)
            .collect();
        if cells[3] == "histogram" {
            let mut bucket = labels.clone();
            bucket.insert("le".to_owned());
            families.insert(format!("{name}_bucket"), bucket);
            families.insert(format!("{name}_sum"), labels.clone());
            families.insert(format!("{name}_count"), labels);
        } else {
            families.insert(name.to_owned(), labels);
        }
    }
    assert!(
        families.len() >= 30,
        "README's metric table not found: {families:?}"
    );
    for def in NOT_YET_IN_README {
        assert!(
            VastMetrics::ALL.iter().any(|d| d.exported == def.exported),
            "{} is not in the crate's contract",
            def.exported
        );
        let labels: BTreeSet<String> = def.labels.iter().map(|l| (*l).to_owned()).collect();
        match def.kind {
            MetricKind::Histogram => {
                let mut bucket = labels.clone();
                bucket.insert("le".to_owned());
                let name = def.exported;
                families.entry(format!("{name}_bucket")).or_insert(bucket);
                families
                    .entry(format!("{name}_sum"))
                    .or_insert(labels.clone());
                families.entry(format!("{name}_count")).or_insert(labels);
            }
            _ => {
                families.entry(def.exported.to_owned()).or_insert(labels);
            }
        }
    }
    families
}

/// The `vast_*` series a PromQL expression names, each with the label names
/// of its selector.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let bytes = expr.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Skip string literals: label values are not series.
        if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !word(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && word(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !name.starts_with("vast_") {
            continue;
        }
        let mut labels = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let close = expr[i..].find('}').expect("selector closes") + i;
            for matcher in split_matchers(&expr[i + 1..close]) {
                let key: String = matcher
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !key.is_empty() {
                    labels.push(key);
                }
            }
            i = close + 1;
        }
        out.push((name.to_owned(), labels));
    }
    out
}

/// Splits `a="x",b=~"y,z"` on the commas outside quotes.
fn split_matchers(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Checks that `expr` names only exported series with their own labels.
fn assert_exported(expr: &str, families: &BTreeMap<String, BTreeSet<String>>) {
    let found = selectors(expr);
    assert!(!found.is_empty(), "no vast_ series in {expr}");
    for (name, labels) in found {
        let known = families
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is not exported (README table), in: {expr}"));
        for label in labels {
            assert!(
                known.contains(&label),
                "{name} has no label {label} (it has {known:?}), in: {expr}"
            );
        }
    }
}

/// The alert rules' expressions: the block scalars under `expr: |`.
fn alert_expressions() -> Vec<(String, String)> {
    let text = fs::read_to_string(manifest_dir().join(ALERTS)).expect("alerts.yml");
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_owned();
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            let expr = if rest == "|" || rest == ">" || rest == "|-" || rest == ">-" {
                let indent = line.len() - trimmed.len();
                let mut block = Vec::new();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    lines.next();
                }
                block.join("\n").trim().to_owned()
            } else {
                rest.to_owned()
            };
            out.push((alert.clone(), expr));
        }
    }
    out
}

/// Every `"expr"` of the dashboard, with its panel title.
fn dashboard_expressions() -> Vec<(String, String)> {
    let text = fs::read_to_string(manifest_dir().join(DASHBOARD)).expect("dashboard JSON");
    let dashboard = serde_json::from_str::<Json>(&text).expect("the dashboard is valid JSON");
    let mut out = Vec::new();
    let panels = dashboard.get("panels").and_then(Json::as_array).unwrap();
    for panel in panels {
        let title = panel.get("title").and_then(Json::as_str).unwrap_or("?");
        let targets = panel.get("targets").and_then(Json::as_array);
        for target in targets.into_iter().flatten() {
            if let Some(expr) = target.get("expr").and_then(Json::as_str) {
                out.push((title.to_owned(), expr.to_owned()));
            }
        }
    }
    out
}

/// The dashboard's query variables: `(name, label_values(metric, label))`.
fn dashboard_variables() -> Vec<(String, String, String)> {
    let text = fs::read_to_string(manifest_dir().join(DASHBOARD)).expect("dashboard JSON");
    let dashboard = serde_json::from_str::<Json>(&text).expect("the dashboard is valid JSON");
    let list = dashboard
        .get("templating")
        .and_then(|t| t.get("list"))
        .and_then(Json::as_array)
        .expect("templating.list");
    list.iter()
        .filter(|v| v.get("type").and_then(Json::as_str) == Some("query"))
        .map(|v| {
            let name = v.get("name").and_then(Json::as_str).unwrap().to_owned();
            let def = v.get("definition").and_then(Json::as_str).unwrap();
            let args = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: {def}"));
            let (metric, label) = args.split_once(',').expect("label_values(metric, label)");
            (name, metric.trim().to_owned(), label.trim().to_owned())
        })
        .collect()
}

/// A dashboard expression as Grafana sends it with every variable on "All".
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$fetch_strategy", ".*")
        .replace("$source_url", ".*");
    assert!(!out.contains('$'), "unsubstituted variable in {expr}");
    out
}

#[test]
fn dashboard_and_alerts_name_only_exported_series() {
    let families = exported_families();
    let dashboard = dashboard_expressions();
    assert!(
        dashboard.len() >= 30,
        "dashboard has {} queries",
        dashboard.len()
    );
    for (_, expr) in &dashboard {
        assert_exported(expr, &families);
    }
    for (name, metric, label) in dashboard_variables() {
        let labels = families
            .get(&metric)
            .unwrap_or_else(|| panic!("variable {name}: {metric} is not exported"));
        assert!(
            labels.contains(&label),
            "variable {name}: {metric} has no {label}"
        );
        // The variable is used, and only on families that carry its label.
        let uses: Vec<_> = dashboard
            .iter()
            .filter(|(_, e)| e.contains(&format!("${name}")))
            .collect();
        assert!(!uses.is_empty(), "variable {name} is used by no query");
        for (title, expr) in uses {
            assert!(
                expr.contains(&format!("{name}=~\"${name}\"")),
                "panel {title}: ${name} not used as {name}=~\"${name}\": {expr}"
            );
        }
    }
    let alerts = alert_expressions();
    let declared = fs::read_to_string(manifest_dir().join(ALERTS))
        .unwrap()
        .matches("- alert:")
        .count();
    assert_eq!(alerts.len(), declared, "one expr per alert");
    for (_, expr) in &alerts {
        assert_exported(expr, &families);
    }
}

// ---------------------------------------------------------------- processes

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "vast-metrics-{what}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Child processes killed (and reaped) on drop, also on panic; prints the
/// tail of their logs when the test is failing.
struct Children {
    children: Vec<(String, Child, PathBuf)>,
}

impl Children {
    fn new() -> Self {
        Children {
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, what: &str, cmd: &mut Command, log: PathBuf) {
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        self.children.push((what.to_owned(), child, log));
    }

    /// If `what` exited: forgets it and returns its log's tail.
    fn take_exited(&mut self, what: &str) -> Option<String> {
        let i = self.children.iter().position(|(w, _, _)| w == what)?;
        let (_, child, log) = &mut self.children[i];
        if !matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        let log = tail(log);
        self.children.remove(i);
        Some(log)
    }

    /// Panics if a child already exited.
    fn assert_running(&mut self) {
        for (what, child, log) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited ({status}):\n{}", tail(log));
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (what, child, log) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("---- {what} log:\n{}", tail(log));
            }
        }
    }
}

fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts `cargo run --example demo` serving /metrics on a port of its own
/// (port 0: nothing else can take it while cargo builds the example); it
/// prints the address into its log. Cargo replaces itself with the demo
/// (exec), so killing the child ends the demo.
fn spawn_demo(children: &mut Children, dir: &TempDir, n: usize) -> PathBuf {
    let log = dir.0.join(format!("demo-{n}.log"));
    children.spawn(
        &format!("demo {n}"),
        Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--example", "demo"])
            .current_dir(manifest_dir())
            .env("VAST_METRICS_ADDR", "127.0.0.1:0")
            .env("VAST_DEMO_SECONDS", "600"),
        log.clone(),
    );
    log
}

/// Starts `prometheus` on loopback scraping `targets` every second, with the
/// alert rules loaded; returns its port once it is ready. Prometheus cannot
/// listen on port 0 and say where, so it gets a port free a moment ago and,
/// should another test take that port first, another.
async fn start_prometheus(
    http: &Http,
    children: &mut Children,
    dir: &TempDir,
    targets: &[u16],
) -> u16 {
    for _ in 0..5 {
        let port = free_port();
        spawn_prometheus(children, dir, targets, port);
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        let give_up = Instant::now() + FIRST_DATA;
        loop {
            if matches!(http.get(&ready).await, Some((200, _))) {
                return port;
            }
            if let Some(log) = children.take_exited("prometheus") {
                assert!(
                    log.contains("address already in use"),
                    "prometheus exited:\n{log}"
                );
                break;
            }
            assert!(Instant::now() < give_up, "prometheus never got ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("prometheus found no free port in 5 tries");
}

fn spawn_prometheus(children: &mut Children, dir: &TempDir, targets: &[u16], port: u16) {
    let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let rules = manifest_dir().join(ALERTS);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: vast\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets.join(", ")
    );
    let config_path = dir.0.join("prometheus.yml");
    fs::write(&config_path, config).expect("write prometheus.yml");
    let data = dir.0.join("data");
    children.spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Scrapes negotiate OpenMetrics, and keep the exemplars.
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn"),
        dir.0.join("prometheus.log"),
    );
}

// ---------------------------------------------------------------- HTTP

struct Http {
    client: common::HttpClient<Empty<Bytes>>,
}

impl Http {
    fn new() -> Self {
        Http {
            client: common::http_client(),
        }
    }

    /// GET `url`: status and body, or `None` on a connection error.
    async fn get(&self, url: &str) -> Option<(u16, String)> {
        let req = http::Request::get(url).body(Empty::new()).ok()?;
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .ok()?
            .ok()?;
        let status = res.status().as_u16();
        let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect())
            .await
            .ok()?
            .ok()?
            .to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One instant query through Prometheus' HTTP API.
struct Answer {
    ok: bool,
    body: String,
    /// `(labels, value)` of a vector or scalar result.
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

async fn query(http: &Http, prom: u16, expr: &str, at: Option<f64>) -> Answer {
    let mut url = format!(
        "http://127.0.0.1:{prom}/api/v1/query?query={}",
        url_encode(expr)
    );
    if let Some(at) = at {
        url.push_str(&format!("&time={at:.3}"));
    }
    let Some((_, body)) = http.get(&url).await else {
        return Answer {
            ok: false,
            body: "no answer".to_owned(),
            samples: Vec::new(),
        };
    };
    let json = serde_json::from_str::<Json>(&body).ok();
    let ok = json
        .as_ref()
        .and_then(|j| j.get("status"))
        .and_then(Json::as_str)
        == Some("success");
    let samples = json.as_ref().map(samples).unwrap_or_default();
    Answer { ok, body, samples }
}

fn samples(answer: &Json) -> Vec<(BTreeMap<String, String>, f64)> {
    let Some(data) = answer.get("data") else {
        return Vec::new();
    };
    let value_of = |v: &Json| -> f64 {
        v.as_array()
            .and_then(|pair| pair.get(1))
            .and_then(Json::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let result = data.get("result");
    match (data.get("resultType").and_then(Json::as_str), result) {
        (Some("vector"), Some(Json::Array(items))) => items
            .iter()
            .map(|item| {
                let labels = match item.get("metric") {
                    Some(Json::Object(fields)) => fields
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                let value = item.get("value").map_or(f64::NAN, value_of);
                (labels, value)
            })
            .collect(),
        // A scalar: `[time, "value"]`.
        (Some("scalar"), Some(scalar)) => vec![(BTreeMap::new(), value_of(scalar))],
        _ => Vec::new(),
    }
}

/// Polls `cond` every 500 ms until it holds or `limit` passes.
async fn wait_for<F, Fut>(what: &str, limit: Duration, children: &mut Children, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            println!("{what}: after {:.1}s", start.elapsed().as_secs_f64());
            return;
        }
        children.assert_running();
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts the demos and a Prometheus scraping them; returns once Prometheus
/// has scraped all of them and holds client request counters.
async fn start_stack(
    http: &Http,
    children: &mut Children,
    dir: &TempDir,
    demos: usize,
) -> (u16, Vec<u16>) {
    let logs: Vec<PathBuf> = (0..demos).map(|n| spawn_demo(children, dir, n)).collect();
    let mut ports = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        let mut port = None;
        wait_for(
            &format!("demo {n} says where it serves /metrics"),
            DEMO_START,
            children,
            || {
                port = fs::read_to_string(log)
                    .ok()
                    .and_then(|text| common::demo_metrics_addr(&text))
                    .map(|addr| addr.port());
                std::future::ready(port.is_some())
            },
        )
        .await;
        ports.extend(port);
    }
    for &port in &ports {
        let url = format!("http://127.0.0.1:{port}/metrics");
        wait_for(
            &format!("demo on :{port} serves /metrics"),
            DEMO_START,
            children,
            || async {
                matches!(http.get(&url).await, Some((200, body)) if body.contains("vast_client_request_total"))
            },
        )
        .await;
    }
    let prom = start_prometheus(http, children, dir, &ports).await;
    let want = demos as f64;
    wait_for(
        "prometheus scraped every demo",
        FIRST_DATA,
        children,
        || async {
            let up = query(http, prom, "sum(up == 1)", None).await;
            let data = query(http, prom, "count(vast_client_request_total)", None).await;
            up.samples.first().is_some_and(|s| s.1 >= want)
                && data.samples.first().is_some_and(|s| s.1 > 0.0)
        },
    )
    .await;
    (prom, ports)
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_queries_work_against_the_demo() {
    if !available("prometheus") {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("prometheus");
    let mut children = Children::new();
    let http = Http::new();
    let (prom, _) = start_stack(&http, &mut children, &dir, 1).await;
    tokio::time::sleep(SETTLE).await;
    children.assert_running();

    // Every dashboard query parses and returns data.
    let dashboard = dashboard_expressions();
    assert!(!dashboard.is_empty());
    let deadline = Instant::now() + QUERY_RETRY;
    let mut pending: Vec<(String, String)> = dashboard
        .iter()
        .map(|(title, expr)| (title.clone(), substitute(expr)))
        .collect();
    loop {
        let mut still = Vec::new();
        for (title, expr) in pending {
            let answer = query(&http, prom, &expr, None).await;
            assert!(
                answer.ok,
                "panel {title:?}: query failed: {expr}\n{}",
                answer.body
            );
            if answer.samples.is_empty() {
                still.push((title, expr));
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        pending.is_empty(),
        "dashboard queries without data (the crate exports nothing for them?):\n{}",
        pending
            .iter()
            .map(|(t, e)| format!("  {t}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The variables' label_values have values.
    for (name, metric, label) in dashboard_variables() {
        let answer = query(&http, prom, &format!("count by ({label}) ({metric})"), None).await;
        assert!(
            answer.ok && !answer.samples.is_empty(),
            "variable {name}: label_values({metric}, {label}) is empty: {}",
            answer.body
        );
    }

    // Every alert expression parses (a healthy demo may return nothing).
    let alerts = alert_expressions();
    assert!(alerts.len() >= 6, "alerts: {alerts:?}");
    for (alert, expr) in &alerts {
        let answer = query(&http, prom, expr, None).await;
        assert!(answer.ok, "alert {alert}: {expr}\n{}", answer.body);
    }

    // The rules loaded into Prometheus evaluate without error.
    let (_, rules) = http
        .get(&format!("http://127.0.0.1:{prom}/api/v1/rules"))
        .await
        .expect("rules API answers");
    let rules = serde_json::from_str::<Json>(&rules).expect("rules JSON");
    let groups = rules
        .get("data")
        .and_then(|d| d.get("groups"))
        .and_then(Json::as_array)
        .expect("rule groups");
    let loaded: Vec<&Json> = groups
        .iter()
        .filter_map(|g| g.get("rules").and_then(Json::as_array))
        .flatten()
        .collect();
    assert_eq!(loaded.len(), alerts.len(), "rules loaded by Prometheus");
    for rule in loaded {
        let name = rule.get("name").and_then(Json::as_str).unwrap_or("?");
        let health = rule.get("health").and_then(Json::as_str).unwrap_or("?");
        assert!(
            matches!(health, "ok" | "unknown"),
            "rule {name}: health {health}: {:?}",
            rule.get("lastError").and_then(Json::as_str)
        );
    }
    println!(
        "{} dashboard queries with data, {} alert expressions parsed, in {:.1}s",
        dashboard.len(),
        alerts.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_labels_agree_across_processes() {
    if !available("prometheus") {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("prometheus-fleet");
    let mut children = Children::new();
    let http = Http::new();
    let (prom, ports) = start_stack(&http, &mut children, &dir, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    children.assert_running();

    // One evaluation time for every query, so counters cannot move between them.
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;
    let fleet = query(
        &http,
        prom,
        "sum by (source_url) (vast_client_request_total)",
        Some(at),
    )
    .await;
    let per_instance = query(
        &http,
        prom,
        "sum by (source_url, instance) (vast_client_request_total)",
        Some(at),
    )
    .await;
    assert!(
        fleet.ok && per_instance.ok,
        "{}\n{}",
        fleet.body,
        per_instance.body
    );

    // Named sources are the same sources in every process. Hashed labels
    // here are wrapper hops to each process's own loopback ports: other
    // URLs, so other labels (stable hashes are proven by test vectors).
    let named =
        |source: &str| !(source.len() == 12 && source.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut fleet_sums = BTreeMap::new();
    for (labels, value) in &fleet.samples {
        if named(&labels["source_url"]) {
            fleet_sums.insert(labels["source_url"].clone(), *value);
        }
    }
    let mut added: BTreeMap<String, f64> = BTreeMap::new();
    let mut instances: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (labels, value) in per_instance
        .samples
        .iter()
        .filter(|(l, _)| named(&l["source_url"]))
    {
        *added.entry(labels["source_url"].clone()).or_default() += value;
        instances
            .entry(labels["source_url"].clone())
            .or_default()
            .insert(labels["instance"].clone());
    }
    assert!(fleet_sums.len() >= 2, "sources: {fleet_sums:?}");
    assert_eq!(
        fleet_sums.keys().collect::<Vec<_>>(),
        added.keys().collect::<Vec<_>>()
    );
    for (source, total) in &fleet_sums {
        assert!(
            (total - added[source]).abs() < 1e-9,
            "{source}: fleet sum {total} != per-instance sums added {}",
            added[source]
        );
    }
    // The same source labels in both processes: the fleet aggregates.
    let both: BTreeSet<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    for (source, seen) in &instances {
        assert_eq!(
            seen, &both,
            "source {source} is not labelled alike in both processes"
        );
    }
    // And per instance, every process recorded traffic.
    for instance in &both {
        let sum: f64 = per_instance
            .samples
            .iter()
            .filter(|(l, _)| &l["instance"] == instance)
            .map(|(_, v)| v)
            .sum();
        assert!(sum > 0.0, "no requests from {instance}");
    }
    println!(
        "{} sources agree across {} processes, in {:.1}s",
        fleet_sums.len(),
        both.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The demo's fetches carry a W3C `traceparent` (trace ids starting with
/// `dec0de`); Prometheus, scraping with OpenMetrics and exemplar storage,
/// returns those trace ids as exemplars of the duration buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_carry_the_demo_trace_ids_into_prometheus() {
    if !available("prometheus") {
        return;
    }
    let dir = TempDir::new("prometheus-exemplars");
    let mut children = Children::new();
    let http = Http::new();
    let (prom, _) = start_stack(&http, &mut children, &dir, 1).await;
    // Prometheus stored the scrape as OpenMetrics, or it would hold no data.
    for family in [
        "vast_client_request_duration_seconds_bucket",
        "vast_multi_source_latency_seconds_bucket",
        "vast_multi_source_fetch_duration_seconds_bucket",
    ] {
        let started = Instant::now();
        let found = loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let url = format!(
                "http://127.0.0.1:{prom}/api/v1/query_exemplars?query={family}&start={:.3}&end={now:.3}",
                now - 600.0
            );
            if let Some((200, body)) = http.get(&url).await {
                let found = exemplars_of(&serde_json::from_str(&body).unwrap());
                if !found.is_empty() {
                    break found;
                }
            }
            children.assert_running();
            assert!(
                started.elapsed() < FIRST_DATA,
                "no exemplars of {family} after {FIRST_DATA:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for (series, trace_id, span_id, value) in &found {
            assert!(
                trace_id.starts_with("dec0de") && trace_id.len() == 32,
                "{family}: trace id {trace_id} was not sent by the demo"
            );
            assert!(span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()));
            // The exemplar lies in the bucket it marks.
            let le = &series["le"];
            if le != "+Inf" {
                let le: f64 = le.parse().unwrap();
                assert!(*value <= le, "{family}: {value} above le={le}");
            }
        }
    }
    children.assert_running();
}

/// (series labels, trace_id, span_id, value) of a `query_exemplars` answer.
fn exemplars_of(json: &Json) -> Vec<(BTreeMap<String, String>, String, String, f64)> {
    let mut out = Vec::new();
    for series in json["data"].as_array().into_iter().flatten() {
        let labels: BTreeMap<String, String> = series["seriesLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        for e in series["exemplars"].as_array().into_iter().flatten() {
            let trace_id = e["labels"]["trace_id"].as_str().unwrap_or("").to_owned();
            let span_id = e["labels"]["span_id"].as_str().unwrap_or("").to_owned();
            let value = e["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            out.push((labels.clone(), trace_id, span_id, value));
        }
    }
    out
}
