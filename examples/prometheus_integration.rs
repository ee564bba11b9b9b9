//! Prometheus integration: record simulated VAST traffic into
//! `PrometheusMetrics` and serve it on `/metrics`.
//!
//! Run: `cargo run --example prometheus_integration`, then in another
//! terminal: `curl -s http://127.0.0.1:8000/metrics | grep vast_`
//!
//! Environment:
//! - `VAST_METRICS_ADDR`: listen address (default `127.0.0.1:8000`)
//! - `VAST_DEMO_SECONDS`: stop after this many seconds (default: until Ctrl+C)

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use vast_metrics::{MetricsServer, PrometheusMetrics};
use vast_test_support::simulate::simulate_requests;

/// Simulated fetches recorded per tick.
const BATCH: usize = 10;
const TICK: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    let addr: SocketAddr = match std::env::var("VAST_METRICS_ADDR") {
        Ok(addr) => match addr.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("error: VAST_METRICS_ADDR={addr:?} is not a socket address: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 8000)),
    };
    let run_for = match std::env::var("VAST_DEMO_SECONDS") {
        Ok(secs) => match secs.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
            _ => {
                eprintln!("error: VAST_DEMO_SECONDS={secs:?} is not a number of seconds");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => None,
    };

    println!("== Prometheus integration ==");
    let metrics = PrometheusMetrics::new();

    // A first batch, so the first scrape already has every family.
    println!("recording 100 simulated multi-source VAST fetches (about 90% of source requests succeed)...");
    simulate_requests(&metrics, 100, 1);
    println!("\nvast_ samples now (histogram buckets left out):");
    for line in metrics.encode().lines() {
        if line.starts_with("vast_") && !line.contains("_bucket{") {
            println!("  {line}");
        }
    }

    let server = match MetricsServer::new(metrics.clone()).bind(addr).await {
        Ok(bound) => bound.spawn(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = server.local_addr();
    println!("\nserving http://{local}/metrics");
    println!("try:  curl -s http://{local}/metrics | grep vast_");
    println!("\nprometheus.yml:");
    println!("  scrape_configs:");
    println!("    - job_name: vast-client");
    println!("      scrape_interval: 15s");
    println!("      static_configs:");
    println!("        - targets: ['{local}']");
    match run_for {
        Some(d) => println!("\nrecording {BATCH} fetches every {TICK:?} for {d:?}..."),
        None => println!("\nrecording {BATCH} fetches every {TICK:?}; Ctrl+C to stop"),
    }

    let stop = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                if tokio::signal::ctrl_c().await.is_err() {
                    // No signal handler: run until killed.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(TICK);
    let mut seed = 2;
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick() => {
                simulate_requests(&metrics, BATCH, seed);
                seed += 1;
            }
        }
    }

    println!("\nstopping: waiting for open scrapes to finish...");
    if let Err(e) = server.shutdown().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!("done");
    ExitCode::SUCCESS
}
