//! Basic usage of the metrics API: `NoOpMetrics`, the name constants and
//! their exported Prometheus names, labels, and the metric types.
//!
//! Run: `cargo run --example basic_usage`

use std::sync::Arc;
use std::time::Instant;

use vast_metrics::{MetricLabels, MetricsCollector, NoOpMetrics, VastMetrics};

fn main() {
    noop_metrics();
    constants();
    labels();
    metric_types();
}

/// `NoOpMetrics`: the default, a zero-sized type whose calls compile to nothing.
fn noop_metrics() {
    println!("== 1. NoOpMetrics (zero overhead) ==");
    let metrics: Arc<dyn MetricsCollector> = Arc::new(NoOpMetrics);
    let started = Instant::now();
    for _ in 0..1_000_000 {
        metrics.increment(
            VastMetrics::CLIENT_REQUEST_TOTAL,
            1,
            &[(MetricLabels::SOURCE_URL, "primary")],
        );
    }
    println!(
        "size_of::<NoOpMetrics>() = {} bytes",
        std::mem::size_of::<NoOpMetrics>()
    );
    println!(
        "1,000,000 increments through Arc<dyn MetricsCollector> took {:?} (nothing recorded)",
        started.elapsed()
    );
    println!();
}

/// The dotted names used with the generic API, and what Prometheus sees.
fn constants() {
    println!("== 2. Metric constants ==");
    let names = VastMetrics::ALL;
    println!("{:<42} {:<10} exported as", "VastMetrics (dotted)", "type");
    for family in names {
        let kind_name = format!("{:?}", family.kind).to_lowercase();
        println!("{:<42} {kind_name:<10} {}", family.dotted, family.exported);
    }
    println!();
}

/// Label keys are constants too; values come from small, closed sets.
fn labels() {
    println!("== 3. Labels ==");
    for (constant, example) in [
        (
            MetricLabels::SOURCE_URL,
            "primary (an alias or a stable hash, never a raw URL)",
        ),
        (
            MetricLabels::RESULT,
            "success | no_ad | invalid_xml | timeout | error",
        ),
        (
            MetricLabels::ERROR_TYPE,
            "timeout | connect | http_4xx | http_5xx | invalid_xml | ...",
        ),
        (MetricLabels::FETCH_STRATEGY, "parallel | sequential | race"),
        (MetricLabels::FALLBACK_DEPTH, "1 | 2 | ..."),
        (
            MetricLabels::EVENT_TYPE,
            "impression | start | firstQuartile | ...",
        ),
        (MetricLabels::HTTP_STATUS, "200 | 204 | 503 | ..."),
        (MetricLabels::PROVIDER, "ad provider"),
        (MetricLabels::PUBLISHER, "publisher"),
    ] {
        println!("{constant:<16} {example}");
    }
    let labels = [
        (MetricLabels::SOURCE_URL, "primary"),
        (MetricLabels::RESULT, "success"),
    ];
    println!("a call with labels: metrics.increment(VastMetrics::CLIENT_REQUEST_SUCCESS, 1, &{labels:?})");
    NoOpMetrics.increment(VastMetrics::CLIENT_REQUEST_SUCCESS, 1, &labels);
    println!();
}

/// The three metric types of the generic API (plus `timing` for durations).
fn metric_types() {
    println!("== 4. Metric types ==");
    let m = NoOpMetrics;
    let src = [(MetricLabels::SOURCE_URL, "primary")];
    m.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &src);
    println!(
        "counter:   increment(name, value, labels)  - counts that only go up; exported with _total"
    );
    m.histogram(VastMetrics::PARSER_PARSE_DURATION, 3.2, &src);
    println!("histogram: histogram(name, value, labels)  - distributions; durations in ms, exported in seconds");
    m.timing(VastMetrics::CLIENT_REQUEST_DURATION_MS, 87.0, &src);
    println!("timing:    timing(name, ms, labels)         - a duration in milliseconds; exported as *_seconds");
    m.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, 1.0, &src);
    m.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, -1.0, &src);
    println!("gauge:     gauge(name, delta, labels)       - moves up (+) and down (-), e.g. requests in flight");
}
