//! The exposition passes `promtool check metrics` without a complaint.
//!
//! Skipped when `promtool` is not on `PATH`, unless `VAST_REQUIRE_PROMTOOL=1`
//! (then a missing promtool fails the test).

mod common;

use vast_metrics::{MetricsCollector, PrometheusMetrics, VastMetrics};
use vast_test_support::simulate::simulate_requests;

fn assert_clean(what: &str, exposition: &str) {
    assert!(
        common::promtool_accepts(exposition),
        "promtool check metrics complained about {what}"
    );
}

#[test]
fn simulated_traffic_passes_promtool() {
    let metrics = PrometheusMetrics::new();
    simulate_requests(&metrics, 1_000, 42);
    let text = metrics.encode();
    // Make sure the check sees the whole contract, not an empty page.
    for family in [
        "vast_client_request_total",
        "vast_client_request_success_total",
        "vast_client_request_failure_total",
        "vast_client_request_duration_seconds",
        "vast_client_active_requests",
        "vast_multi_source_requests_total",
        "vast_multi_source_requests_success_total",
        "vast_multi_source_requests_failure_total",
        "vast_multi_source_latency_seconds",
        "vast_multi_source_active_requests",
        "vast_multi_source_fallback_triggered_total",
        "vast_multi_source_sources_attempted_total",
        "vast_multi_source_sources_success_total",
        "vast_multi_source_sources_failure_total",
        "vast_multi_source_fetch_duration_seconds",
        "vast_multi_source_parse_duration_seconds",
        "vast_multi_source_filter_duration_seconds",
        "vast_parser_xml_parsed_total",
        "vast_parser_xml_failed_total",
        "vast_parser_parse_duration_seconds",
        "vast_tracking_event_sent_total",
        "vast_tracking_event_failed_total",
        "vast_tracking_request_duration_seconds",
        "vast_metrics_errors_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    assert_clean("simulated traffic", &text);
}

#[test]
fn fresh_and_generic_metrics_pass_promtool() {
    let metrics = PrometheusMetrics::new();
    assert_clean("a fresh backend", &metrics.encode());

    // Names outside the contract, recorded through the generic API.
    metrics.increment("my-app.cache.hits", 3, &[("cache", "vast")]);
    metrics.gauge("my_app.queue.depth", 2.0, &[]);
    metrics.histogram("my_app.ad.size", 12.0, &[]);
    metrics.timing("my_app.render", 15.0, &[("step", "wrap")]);
    assert_clean("generic names", &metrics.encode());
}

/// A gauge named `..._count` is rejected by promtool ("non-histogram and
/// non-summary metrics should not have \"_count\" suffix"), so
/// `vast.multi_source.sources.count` is exported as `vast_multi_source_sources`.
#[test]
fn sources_count_gauge_passes_promtool() {
    let metrics = PrometheusMetrics::new();
    metrics.gauge(
        VastMetrics::MULTI_SOURCE_SOURCES_COUNT,
        3.0,
        &[("fetch_strategy", "race")],
    );
    let text = metrics.encode();
    assert!(
        text.contains(r#"vast_multi_source_sources{fetch_strategy="race"} 3"#),
        "{text}"
    );
    assert_clean("the sources.count gauge", &text);
}
