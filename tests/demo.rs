//! Smoke test of `cargo run --example demo`: while it runs, every metric
//! family of the contract has samples, redirects among them; then it exits
//! 0 on its own.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use vast_metrics::names::MetricKind;
use vast_metrics::VastMetrics;

/// Every family of the contract (`VastMetrics::ALL`), by its exported name
/// and type.
fn families() -> Vec<(&'static str, MetricKind)> {
    VastMetrics::ALL
        .iter()
        .map(|f| (f.exported, f.kind))
        .collect()
}

async fn scrape(url: &str) -> Option<String> {
    let client = common::http_client::<Empty<Bytes>>();
    let res = tokio::time::timeout(Duration::from_secs(2), client.get(url.parse().ok()?))
        .await
        .ok()?
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let body = res.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

/// Kills the demo if the test fails before it exits.
struct Child(Option<std::process::Child>);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Collects a pipe's text as it arrives, on its own thread, so the test can
/// read the demo's address while the demo runs and the pipe never fills.
fn collect<R: Read + Send + 'static>(pipe: R) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    (text, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_records_every_family_and_exits_cleanly() {
    let mut args = vec!["run", "--quiet", "--example", "demo"];
    if cfg!(feature = "reqwest") {
        args.extend(["--features", "reqwest"]);
    }
    // Port 0: the demo binds a port nobody holds and prints it.
    let mut process = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("VAST_DEMO_SECONDS", "12")
        .env("VAST_METRICS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let (stdout, stdout_reader) = collect(process.stdout.take().unwrap());
    let (stderr, stderr_reader) = collect(process.stderr.take().unwrap());
    let mut child = Child(Some(process));

    // Up when it says where and /metrics answers (building the example may
    // take a while).
    let give_up = Instant::now() + Duration::from_secs(240);
    let (up, url) = loop {
        let addr = common::demo_metrics_addr(&stdout.lock().unwrap());
        if let Some(addr) = addr {
            let url = format!("http://{addr}/metrics");
            if scrape(&url).await.is_some() {
                break (Instant::now(), url);
            }
        }
        if let Some(status) = child.0.as_mut().unwrap().try_wait().unwrap() {
            let _ = stderr_reader.join();
            panic!(
                "the demo exited early ({status}): {}",
                stderr.lock().unwrap()
            );
        }
        assert!(Instant::now() < give_up, "the demo never served /metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // After 10 seconds (and before the demo's 12), every family has samples.
    tokio::time::sleep_until((up + Duration::from_millis(10_500)).into()).await;
    let text = scrape(&url).await.expect("a scrape while the demo runs");
    let samples = common::parse(&text);
    let mut missing = Vec::new();
    for (name, kind) in families() {
        let present = samples.iter().any(|s| {
            s.name == name
                || (kind == MetricKind::Histogram
                    && s.name == format!("{name}_count")
                    && s.value > 0.0)
        });
        if !present {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "families without samples: {missing:?}");
    for strategy in ["race", "parallel", "sequential"] {
        assert!(
            common::sum(
                &samples,
                "vast_multi_source_requests_total",
                &[("fetch_strategy", strategy)]
            ) > 0.0,
            "{strategy}"
        );
    }

    // Redirects are live: followed (a tag redirecting to an ad, the first
    // step of a loop) and not followed (the loop's repeat).
    assert!(
        common::sum(&samples, "vast_redirects_total", &[]) > 0.0,
        "no redirect followed"
    );
    assert!(
        common::sum(
            &samples,
            "vast_client_request_failure_total",
            &[("error_type", "redirect")]
        ) > 0.0,
        "no redirect left unfollowed"
    );

    // Then it stops by itself, with status 0.
    let mut process = child.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = process.wait();
        let _ = stdout_reader.join();
        let _ = stderr_reader.join();
        status
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = stdout.lock().unwrap().clone();
    assert!(
        status.success(),
        "demo failed: {}\n{stdout}",
        stderr.lock().unwrap()
    );
    assert!(stdout.contains("req/s"), "no summary line: {stdout}");
    assert!(stdout.contains("done."), "{stdout}");
}
