//! Metric and label names: the seed's dotted constants and their exported
//! Prometheus names.
//!
//! The generic [`MetricsCollector`](crate::MetricsCollector) API takes the
//! dotted names below. The Prometheus backend exports conventional names:
//! dots and dashes become `_`, counters end in `_total`, and durations are
//! histograms in seconds named `*_seconds` (see [`exported_name`]).
//!
//! # Example
//!
//! ```
//! use vast_metrics::names::{exported_name, MetricKind};
//! use vast_metrics::VastMetrics;
//!
//! assert_eq!(VastMetrics::CLIENT_REQUEST_TOTAL, "vast.client.request.total");
//! assert_eq!(
//!     exported_name(VastMetrics::MULTI_SOURCE_LATENCY_MS, MetricKind::Histogram),
//!     "vast_multi_source_latency_seconds"
//! );
//! ```

/// Metric-name constants of the VAST Client metrics system (dotted form).
#[derive(Clone, Copy, Debug, Default)]
pub struct VastMetrics;

impl VastMetrics {
    /// Multi-source fetches started (counter).
    pub const MULTI_SOURCE_REQUESTS_TOTAL: &'static str = "vast.multi_source.requests.total";
    /// Multi-source fetches that ended with a VAST document (counter).
    pub const MULTI_SOURCE_REQUESTS_SUCCESS: &'static str = "vast.multi_source.requests.success";
    /// Multi-source fetches where every source failed (counter).
    pub const MULTI_SOURCE_REQUESTS_FAILURE: &'static str = "vast.multi_source.requests.failure";
    /// Fallback tiers entered (counter).
    pub const MULTI_SOURCE_FALLBACK_TRIGGERED: &'static str =
        "vast.multi_source.fallback.triggered";
    /// Sources attempted within multi-source fetches (counter).
    pub const MULTI_SOURCE_SOURCES_ATTEMPTED: &'static str = "vast.multi_source.sources.attempted";
    /// Source attempts that answered (counter).
    pub const MULTI_SOURCE_SOURCES_SUCCESS: &'static str = "vast.multi_source.sources.success";
    /// Source attempts that failed (counter).
    pub const MULTI_SOURCE_SOURCES_FAILURE: &'static str = "vast.multi_source.sources.failure";
    /// Latency of whole multi-source fetches, in milliseconds (histogram).
    pub const MULTI_SOURCE_LATENCY_MS: &'static str = "vast.multi_source.latency.milliseconds";
    /// Duration of one source's fetch, in milliseconds (histogram).
    pub const MULTI_SOURCE_FETCH_DURATION: &'static str = "vast.multi_source.fetch.duration";
    /// Duration of parsing fetched VAST, in milliseconds (histogram).
    pub const MULTI_SOURCE_PARSE_DURATION: &'static str = "vast.multi_source.parse.duration";
    /// Duration of filtering fetched ads, in milliseconds (histogram).
    pub const MULTI_SOURCE_FILTER_DURATION: &'static str = "vast.multi_source.filter.duration";
    /// Multi-source fetches in flight (gauge).
    pub const MULTI_SOURCE_ACTIVE_REQUESTS: &'static str = "vast.multi_source.active_requests";
    /// Sources configured for a fetch strategy (gauge).
    pub const MULTI_SOURCE_SOURCES_COUNT: &'static str = "vast.multi_source.sources.count";

    /// Tracking events sent (counter).
    pub const TRACKING_EVENT_SENT: &'static str = "vast.tracking.event.sent";
    /// Tracking events that failed (counter).
    pub const TRACKING_EVENT_FAILED: &'static str = "vast.tracking.event.failed";
    /// Duration of tracking requests, in milliseconds (histogram).
    pub const TRACKING_REQUEST_DURATION: &'static str = "vast.tracking.request.duration";

    /// VAST documents parsed (counter).
    pub const PARSER_XML_PARSED: &'static str = "vast.parser.xml.parsed";
    /// VAST documents that failed to parse (counter).
    pub const PARSER_XML_FAILED: &'static str = "vast.parser.xml.failed";
    /// Duration of VAST parsing, in milliseconds (histogram).
    pub const PARSER_PARSE_DURATION: &'static str = "vast.parser.parse.duration";

    /// Client requests started (counter).
    pub const CLIENT_REQUEST_TOTAL: &'static str = "vast.client.request.total";
    /// Client requests that succeeded (counter).
    pub const CLIENT_REQUEST_SUCCESS: &'static str = "vast.client.request.success";
    /// Client requests that failed (counter).
    pub const CLIENT_REQUEST_FAILURE: &'static str = "vast.client.request.failure";
    /// Duration of client requests, in milliseconds (histogram).
    pub const CLIENT_REQUEST_DURATION_MS: &'static str = "vast.client.request.duration";
    /// Client requests in flight (gauge). New in this crate.
    pub const CLIENT_ACTIVE_REQUESTS: &'static str = "vast.client.active_requests";

    /// Every name above with its type: the metric contract.
    pub const ALL: [(&'static str, MetricKind); 24] = [
        (Self::CLIENT_REQUEST_TOTAL, MetricKind::Counter),
        (Self::CLIENT_REQUEST_SUCCESS, MetricKind::Counter),
        (Self::CLIENT_REQUEST_FAILURE, MetricKind::Counter),
        (Self::CLIENT_REQUEST_DURATION_MS, MetricKind::Histogram),
        (Self::CLIENT_ACTIVE_REQUESTS, MetricKind::Gauge),
        (Self::MULTI_SOURCE_REQUESTS_TOTAL, MetricKind::Counter),
        (Self::MULTI_SOURCE_REQUESTS_SUCCESS, MetricKind::Counter),
        (Self::MULTI_SOURCE_REQUESTS_FAILURE, MetricKind::Counter),
        (Self::MULTI_SOURCE_LATENCY_MS, MetricKind::Histogram),
        (Self::MULTI_SOURCE_ACTIVE_REQUESTS, MetricKind::Gauge),
        (Self::MULTI_SOURCE_SOURCES_COUNT, MetricKind::Gauge),
        (Self::MULTI_SOURCE_FALLBACK_TRIGGERED, MetricKind::Counter),
        (Self::MULTI_SOURCE_SOURCES_ATTEMPTED, MetricKind::Counter),
        (Self::MULTI_SOURCE_SOURCES_SUCCESS, MetricKind::Counter),
        (Self::MULTI_SOURCE_SOURCES_FAILURE, MetricKind::Counter),
        (Self::MULTI_SOURCE_FETCH_DURATION, MetricKind::Histogram),
        (Self::MULTI_SOURCE_PARSE_DURATION, MetricKind::Histogram),
        (Self::MULTI_SOURCE_FILTER_DURATION, MetricKind::Histogram),
        (Self::PARSER_XML_PARSED, MetricKind::Counter),
        (Self::PARSER_XML_FAILED, MetricKind::Counter),
        (Self::PARSER_PARSE_DURATION, MetricKind::Histogram),
        (Self::TRACKING_EVENT_SENT, MetricKind::Counter),
        (Self::TRACKING_EVENT_FAILED, MetricKind::Counter),
        (Self::TRACKING_REQUEST_DURATION, MetricKind::Histogram),
    ];
}

/// Label-name constants of the VAST Client metrics system.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricLabels;

impl MetricLabels {
    /// `parallel`, `sequential` or `race`.
    pub const FETCH_STRATEGY: &'static str = "fetch_strategy";
    /// Alias or stable hash of the ad source; never a raw URL.
    pub const SOURCE_URL: &'static str = "source_url";
    /// `success`, `no_ad`, `invalid_xml`, `timeout` or `error`.
    pub const RESULT: &'static str = "result";
    /// `1`, `2`, ...: which fallback tier was entered.
    pub const FALLBACK_DEPTH: &'static str = "fallback_depth";
    /// Tracking event: `impression`, `start`, `firstQuartile`, ...
    pub const EVENT_TYPE: &'static str = "event_type";
    /// Failure class: `timeout`, `connect`, `http_4xx`, ...
    pub const ERROR_TYPE: &'static str = "error_type";
    /// HTTP status code.
    pub const HTTP_STATUS: &'static str = "http_status";
    /// Ad provider.
    pub const PROVIDER: &'static str = "provider";
    /// Publisher.
    pub const PUBLISHER: &'static str = "publisher";
}

/// The three metric types of the generic API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Monotonic count, exported with a `_total` suffix.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of observations.
    Histogram,
}

/// Whether a dotted histogram name records a duration in milliseconds
/// (exported in seconds): its last segment is `duration`, `latency`,
/// `milliseconds` or `ms`.
pub fn is_duration(dotted: &str) -> bool {
    let last = dotted.rsplit(['.', '-', '_']).next().unwrap_or(dotted);
    matches!(last, "duration" | "latency" | "milliseconds" | "ms")
}

/// Exported Prometheus name for a dotted metric name of the given kind.
///
/// Dots and dashes become `_`; counters end in `_total`; gauges drop a
/// trailing `_count` (a histogram suffix that promtool rejects on a gauge, so
/// `vast.multi_source.sources.count` is `vast_multi_source_sources`); duration histograms
/// (see [`is_duration`]) end in `_seconds`, replacing a `milliseconds`/`ms`
/// unit segment. Use [`exported_timing_name`] for names recorded with
/// `timing`, which are durations whatever they are called.
pub fn exported_name(dotted: &str, kind: MetricKind) -> String {
    match kind {
        MetricKind::Counter => {
            let mut name = underscored(dotted);
            if !name.ends_with("_total") {
                name.push_str("_total");
            }
            name
        }
        MetricKind::Gauge => {
            // `_count` is a histogram's suffix: promtool rejects it on a gauge.
            let mut name = underscored(dotted);
            if let Some(stem) = name.strip_suffix("_count") {
                name.truncate(stem.len());
            }
            name
        }
        MetricKind::Histogram if is_duration(dotted) => exported_timing_name(dotted),
        MetricKind::Histogram => underscored(dotted),
    }
}

/// Exported name of a duration histogram: `*_seconds`.
pub fn exported_timing_name(dotted: &str) -> String {
    let mut name = underscored(dotted);
    for unit in ["_milliseconds", "_ms", "_seconds"] {
        if let Some(stem) = name.strip_suffix(unit) {
            name.truncate(stem.len());
            break;
        }
    }
    name.push_str("_seconds");
    name
}

fn underscored(dotted: &str) -> String {
    dotted.replace(['.', '-'], "_")
}

/// HELP text for the names of [`VastMetrics`]; `None` for others.
pub fn help(dotted: &str) -> Option<&'static str> {
    Some(match dotted {
        VastMetrics::MULTI_SOURCE_REQUESTS_TOTAL => "Multi-source VAST fetches started.",
        VastMetrics::MULTI_SOURCE_REQUESTS_SUCCESS => {
            "Multi-source VAST fetches that ended with a VAST document, by result (success = an ad, no_ad = no fill)."
        }
        VastMetrics::MULTI_SOURCE_REQUESTS_FAILURE => {
            "Multi-source VAST fetches where no source gave a VAST document, by error type."
        }
        VastMetrics::MULTI_SOURCE_FALLBACK_TRIGGERED => "Fallback tiers entered, by depth.",
        VastMetrics::MULTI_SOURCE_SOURCES_ATTEMPTED => "Source attempts within multi-source fetches.",
        VastMetrics::MULTI_SOURCE_SOURCES_SUCCESS => {
            "Source attempts that returned a VAST document, by result."
        }
        VastMetrics::MULTI_SOURCE_SOURCES_FAILURE => "Source attempts that failed, by error type.",
        VastMetrics::MULTI_SOURCE_LATENCY_MS => "Latency of whole multi-source fetches in seconds.",
        VastMetrics::MULTI_SOURCE_FETCH_DURATION => "Duration of one source's fetch in seconds.",
        VastMetrics::MULTI_SOURCE_PARSE_DURATION => "Duration of parsing fetched VAST in seconds.",
        VastMetrics::MULTI_SOURCE_FILTER_DURATION => "Duration of filtering fetched ads in seconds.",
        VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS => "Multi-source fetches in flight.",
        VastMetrics::MULTI_SOURCE_SOURCES_COUNT => "Sources configured per fetch strategy.",
        VastMetrics::TRACKING_EVENT_SENT => "Tracking events sent, by event type.",
        VastMetrics::TRACKING_EVENT_FAILED => "Tracking events that failed, by event and error type.",
        VastMetrics::TRACKING_REQUEST_DURATION => "Duration of tracking requests in seconds.",
        VastMetrics::PARSER_XML_PARSED => "VAST documents inspected and found well-formed.",
        VastMetrics::PARSER_XML_FAILED => "VAST documents that failed inspection, by error type.",
        VastMetrics::PARSER_PARSE_DURATION => "Duration of VAST inspection in seconds.",
        VastMetrics::CLIENT_REQUEST_TOTAL => "VAST client requests started.",
        VastMetrics::CLIENT_REQUEST_SUCCESS => {
            "VAST client requests that returned VAST, by result (success = an ad, no_ad = no fill)."
        }
        VastMetrics::CLIENT_REQUEST_FAILURE => "VAST client requests that failed, by error type.",
        VastMetrics::CLIENT_REQUEST_DURATION_MS => {
            "Duration of VAST client requests to the end of the body, in seconds."
        }
        VastMetrics::CLIENT_ACTIVE_REQUESTS => "VAST client requests in flight.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_table_maps_exactly() {
        use MetricKind::*;
        let table = [
            (
                VastMetrics::CLIENT_REQUEST_TOTAL,
                Counter,
                "vast_client_request_total",
            ),
            (
                VastMetrics::CLIENT_REQUEST_SUCCESS,
                Counter,
                "vast_client_request_success_total",
            ),
            (
                VastMetrics::CLIENT_REQUEST_FAILURE,
                Counter,
                "vast_client_request_failure_total",
            ),
            (
                VastMetrics::CLIENT_REQUEST_DURATION_MS,
                Histogram,
                "vast_client_request_duration_seconds",
            ),
            (
                VastMetrics::CLIENT_ACTIVE_REQUESTS,
                Gauge,
                "vast_client_active_requests",
            ),
            (
                VastMetrics::MULTI_SOURCE_REQUESTS_TOTAL,
                Counter,
                "vast_multi_source_requests_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_REQUESTS_SUCCESS,
                Counter,
                "vast_multi_source_requests_success_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_REQUESTS_FAILURE,
                Counter,
                "vast_multi_source_requests_failure_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_LATENCY_MS,
                Histogram,
                "vast_multi_source_latency_seconds",
            ),
            (
                VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS,
                Gauge,
                "vast_multi_source_active_requests",
            ),
            (
                VastMetrics::MULTI_SOURCE_SOURCES_COUNT,
                Gauge,
                "vast_multi_source_sources",
            ),
            (
                VastMetrics::MULTI_SOURCE_FALLBACK_TRIGGERED,
                Counter,
                "vast_multi_source_fallback_triggered_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_SOURCES_ATTEMPTED,
                Counter,
                "vast_multi_source_sources_attempted_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_SOURCES_SUCCESS,
                Counter,
                "vast_multi_source_sources_success_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_SOURCES_FAILURE,
                Counter,
                "vast_multi_source_sources_failure_total",
            ),
            (
                VastMetrics::MULTI_SOURCE_FETCH_DURATION,
                Histogram,
                "vast_multi_source_fetch_duration_seconds",
            ),
            (
                VastMetrics::MULTI_SOURCE_PARSE_DURATION,
                Histogram,
                "vast_multi_source_parse_duration_seconds",
            ),
            (
                VastMetrics::MULTI_SOURCE_FILTER_DURATION,
                Histogram,
                "vast_multi_source_filter_duration_seconds",
            ),
            (
                VastMetrics::PARSER_XML_PARSED,
                Counter,
                "vast_parser_xml_parsed_total",
            ),
            (
                VastMetrics::PARSER_XML_FAILED,
                Counter,
                "vast_parser_xml_failed_total",
            ),
            (
                VastMetrics::PARSER_PARSE_DURATION,
                Histogram,
                "vast_parser_parse_duration_seconds",
            ),
            (
                VastMetrics::TRACKING_EVENT_SENT,
                Counter,
                "vast_tracking_event_sent_total",
            ),
            (
                VastMetrics::TRACKING_EVENT_FAILED,
                Counter,
                "vast_tracking_event_failed_total",
            ),
            (
                VastMetrics::TRACKING_REQUEST_DURATION,
                Histogram,
                "vast_tracking_request_duration_seconds",
            ),
        ];
        for (dotted, kind, exported) in table {
            assert_eq!(exported_name(dotted, kind), exported, "{dotted}");
            assert!(help(dotted).is_some(), "{dotted} has no HELP");
        }
    }

    #[test]
    fn all_lists_every_name_once_with_help() {
        let mut names: Vec<_> = VastMetrics::ALL.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 24);
        assert!(VastMetrics::ALL.iter().all(|(n, _)| help(n).is_some()));
    }

    #[test]
    fn constants_hold_the_seed_strings() {
        assert_eq!(
            VastMetrics::MULTI_SOURCE_REQUESTS_TOTAL,
            "vast.multi_source.requests.total"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_REQUESTS_SUCCESS,
            "vast.multi_source.requests.success"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_REQUESTS_FAILURE,
            "vast.multi_source.requests.failure"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_FALLBACK_TRIGGERED,
            "vast.multi_source.fallback.triggered"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_SOURCES_ATTEMPTED,
            "vast.multi_source.sources.attempted"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_SOURCES_SUCCESS,
            "vast.multi_source.sources.success"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_SOURCES_FAILURE,
            "vast.multi_source.sources.failure"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_LATENCY_MS,
            "vast.multi_source.latency.milliseconds"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_FETCH_DURATION,
            "vast.multi_source.fetch.duration"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_PARSE_DURATION,
            "vast.multi_source.parse.duration"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_FILTER_DURATION,
            "vast.multi_source.filter.duration"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_ACTIVE_REQUESTS,
            "vast.multi_source.active_requests"
        );
        assert_eq!(
            VastMetrics::MULTI_SOURCE_SOURCES_COUNT,
            "vast.multi_source.sources.count"
        );
        assert_eq!(VastMetrics::TRACKING_EVENT_SENT, "vast.tracking.event.sent");
        assert_eq!(
            VastMetrics::TRACKING_EVENT_FAILED,
            "vast.tracking.event.failed"
        );
        assert_eq!(
            VastMetrics::TRACKING_REQUEST_DURATION,
            "vast.tracking.request.duration"
        );
        assert_eq!(VastMetrics::PARSER_XML_PARSED, "vast.parser.xml.parsed");
        assert_eq!(VastMetrics::PARSER_XML_FAILED, "vast.parser.xml.failed");
        assert_eq!(
            VastMetrics::PARSER_PARSE_DURATION,
            "vast.parser.parse.duration"
        );
        assert_eq!(
            VastMetrics::CLIENT_REQUEST_TOTAL,
            "vast.client.request.total"
        );
        assert_eq!(
            VastMetrics::CLIENT_REQUEST_SUCCESS,
            "vast.client.request.success"
        );
        assert_eq!(
            VastMetrics::CLIENT_REQUEST_FAILURE,
            "vast.client.request.failure"
        );
        assert_eq!(
            VastMetrics::CLIENT_REQUEST_DURATION_MS,
            "vast.client.request.duration"
        );
        assert_eq!(
            VastMetrics::CLIENT_ACTIVE_REQUESTS,
            "vast.client.active_requests"
        );
        let labels = [
            (MetricLabels::FETCH_STRATEGY, "fetch_strategy"),
            (MetricLabels::SOURCE_URL, "source_url"),
            (MetricLabels::RESULT, "result"),
            (MetricLabels::FALLBACK_DEPTH, "fallback_depth"),
            (MetricLabels::EVENT_TYPE, "event_type"),
            (MetricLabels::ERROR_TYPE, "error_type"),
            (MetricLabels::HTTP_STATUS, "http_status"),
            (MetricLabels::PROVIDER, "provider"),
            (MetricLabels::PUBLISHER, "publisher"),
        ];
        for (constant, value) in labels {
            assert_eq!(constant, value);
        }
    }

    #[test]
    fn generic_names_follow_the_conventions() {
        assert_eq!(
            exported_name("my-app.cache.hits", MetricKind::Counter),
            "my_app_cache_hits_total"
        );
        assert_eq!(
            exported_name("queue.depth", MetricKind::Gauge),
            "queue_depth"
        );
        assert_eq!(exported_name("ad.size", MetricKind::Histogram), "ad_size");
        assert_eq!(
            exported_name("render.ms", MetricKind::Histogram),
            "render_seconds"
        );
        assert_eq!(exported_timing_name("db.query"), "db_query_seconds");
        assert_eq!(exported_timing_name("db.query.seconds"), "db_query_seconds");
    }
}
