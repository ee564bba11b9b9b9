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
//! assert_eq!(vast_metrics::names::family::CLIENT_REQUEST_TOTAL.labels, ["source_url"]);
//! assert_eq!(
//!     exported_name(VastMetrics::MULTI_SOURCE_LATENCY_MS, MetricKind::Histogram),
//!     "vast_multi_source_latency_seconds"
//! );
//! ```

/// Metric-name constants of the VAST Client metrics system (dotted form),
/// and [`ALL`](VastMetrics::ALL), the contract table they come from.
#[derive(Clone, Copy, Debug, Default)]
pub struct VastMetrics;

/// How a family's values are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A count or a plain number.
    Count,
    /// A duration: milliseconds through the generic API
    /// ([`MetricsCollector::timing`](crate::MetricsCollector::timing), and
    /// `increment` for a counter of seconds) and the handles, seconds once
    /// exported.
    Seconds,
}

/// One family of the metric contract: one row of the README's metric table
/// ("Exported metrics").
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MetricDef {
    /// The seed's dotted name (the generic API's name).
    pub dotted: &'static str,
    /// The name the Prometheus backend exports.
    pub exported: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Plain number or duration.
    pub unit: Unit,
    /// The HELP text.
    pub help: &'static str,
    /// The label keys the crate records it with, in order.
    pub labels: &'static [&'static str],
    /// Bucket bounds of a histogram that is not a duration; empty for the
    /// backend's default.
    pub buckets: &'static [f64],
}

/// Most label keys a contract family has.
const MAX_LABELS: usize = 4;

/// A family's label pairs, in its key order: what the by-name APIs take.
pub(crate) struct LabelPairs<'a> {
    pairs: [(&'static str, &'a str); MAX_LABELS],
    len: usize,
}

impl<'a> LabelPairs<'a> {
    pub(crate) fn as_slice(&self) -> &[(&'static str, &'a str)] {
        &self.pairs[..self.len]
    }
}

impl MetricDef {
    /// `values` paired with the family's label keys; `None` when their
    /// number differs from the keys'.
    pub(crate) fn label_pairs<'a, V: AsRef<str>>(&self, values: &'a [V]) -> Option<LabelPairs<'a>> {
        if values.len() != self.labels.len() || values.len() > MAX_LABELS {
            return None;
        }
        let mut pairs = [("", ""); MAX_LABELS];
        for (pair, (key, value)) in pairs.iter_mut().zip(self.labels.iter().zip(values)) {
            *pair = (key, value.as_ref());
        }
        Some(LabelPairs {
            pairs,
            len: values.len(),
        })
    }
}

/// Writes the contract once: the `VastMetrics` constants, the `MetricDef`
/// of each family (in [`family`]) and `VastMetrics::ALL`.
macro_rules! contract {
    ($(
        $(#[$doc:meta])*
        $name:ident = $dotted:literal => $exported:literal,
            $kind:ident, $unit:ident, [$($label:ident),*], $help:literal
            $(, buckets $buckets:expr)?;
    )*) => {
        impl VastMetrics {
            $( $(#[$doc])* pub const $name: &'static str = $dotted; )*

            /// Every family of the contract, with its exported name, type,
            /// unit, HELP and labels.
            pub const ALL: &'static [MetricDef] = &[$(family::$name),*];
        }

        /// The [`MetricDef`] of each family, by the name of its
        /// [`VastMetrics`] constant.
        pub mod family {
            use super::{MetricDef, MetricKind, MetricLabels, Unit};
            $(
                #[doc = concat!("`", $exported, "` (`", $dotted, "`).")]
                pub const $name: MetricDef = MetricDef {
                    dotted: $dotted,
                    exported: $exported,
                    kind: MetricKind::$kind,
                    unit: Unit::$unit,
                    help: $help,
                    labels: &[$(MetricLabels::$label),*],
                    buckets: contract!(@buckets $($buckets)?),
                };
            )*
        }
    };
    (@buckets) => { &[] };
    (@buckets $buckets:expr) => { $buckets };
}

contract! {
    /// Client requests started (counter).
    CLIENT_REQUEST_TOTAL = "vast.client.request.total" => "vast_client_request_total",
        Counter, Count, [SOURCE_URL], "VAST client requests started.";
    /// Client requests that returned VAST (counter).
    CLIENT_REQUEST_SUCCESS = "vast.client.request.success" => "vast_client_request_success_total",
        Counter, Count, [SOURCE_URL, RESULT],
        "VAST client requests that returned VAST, by result (success = an ad, no_ad = no fill).";
    /// Client requests that failed (counter).
    CLIENT_REQUEST_FAILURE = "vast.client.request.failure" => "vast_client_request_failure_total",
        Counter, Count, [SOURCE_URL, ERROR_TYPE], "VAST client requests that failed, by error type.";
    /// Duration of client requests, in milliseconds (histogram).
    CLIENT_REQUEST_DURATION_MS = "vast.client.request.duration" => "vast_client_request_duration_seconds",
        Histogram, Seconds, [SOURCE_URL, RESULT],
        "Duration of VAST client requests to the end of the body, in seconds.";
    /// Client requests in flight (gauge). New in this crate.
    CLIENT_ACTIVE_REQUESTS = "vast.client.active_requests" => "vast_client_active_requests",
        Gauge, Count, [SOURCE_URL], "VAST client requests in flight.";
    /// Multi-source fetches started (counter).
    MULTI_SOURCE_REQUESTS_TOTAL = "vast.multi_source.requests.total" => "vast_multi_source_requests_total",
        Counter, Count, [FETCH_STRATEGY], "Multi-source VAST fetches started.";
    /// Multi-source fetches that ended with a VAST document (counter).
    MULTI_SOURCE_REQUESTS_SUCCESS = "vast.multi_source.requests.success" => "vast_multi_source_requests_success_total",
        Counter, Count, [FETCH_STRATEGY, RESULT],
        "Multi-source VAST fetches that ended with a VAST document, by result (success = an ad, no_ad = no fill).";
    /// Multi-source fetches where every source failed (counter).
    MULTI_SOURCE_REQUESTS_FAILURE = "vast.multi_source.requests.failure" => "vast_multi_source_requests_failure_total",
        Counter, Count, [FETCH_STRATEGY, ERROR_TYPE],
        "Multi-source VAST fetches where no source gave a VAST document, by error type.";
    /// Latency of whole multi-source fetches, in milliseconds (histogram).
    MULTI_SOURCE_LATENCY_MS = "vast.multi_source.latency.milliseconds" => "vast_multi_source_latency_seconds",
        Histogram, Seconds, [FETCH_STRATEGY, RESULT], "Latency of whole multi-source fetches in seconds.";
    /// Multi-source fetches in flight (gauge).
    MULTI_SOURCE_ACTIVE_REQUESTS = "vast.multi_source.active_requests" => "vast_multi_source_active_requests",
        Gauge, Count, [FETCH_STRATEGY], "Multi-source fetches in flight.";
    /// Sources configured for a fetch strategy (gauge).
    MULTI_SOURCE_SOURCES_COUNT = "vast.multi_source.sources.count" => "vast_multi_source_sources",
        Gauge, Count, [FETCH_STRATEGY], "Sources configured per fetch strategy.";
    /// Fallback tiers entered (counter).
    MULTI_SOURCE_FALLBACK_TRIGGERED = "vast.multi_source.fallback.triggered" => "vast_multi_source_fallback_triggered_total",
        Counter, Count, [FALLBACK_DEPTH], "Fallback tiers entered, by depth.";
    /// Sources attempted within multi-source fetches (counter).
    MULTI_SOURCE_SOURCES_ATTEMPTED = "vast.multi_source.sources.attempted" => "vast_multi_source_sources_attempted_total",
        Counter, Count, [SOURCE_URL], "Source attempts within multi-source fetches.";
    /// Source attempts that answered (counter).
    MULTI_SOURCE_SOURCES_SUCCESS = "vast.multi_source.sources.success" => "vast_multi_source_sources_success_total",
        Counter, Count, [SOURCE_URL, RESULT], "Source attempts that returned a VAST document, by result.";
    /// Source attempts that failed (counter).
    MULTI_SOURCE_SOURCES_FAILURE = "vast.multi_source.sources.failure" => "vast_multi_source_sources_failure_total",
        Counter, Count, [SOURCE_URL, ERROR_TYPE], "Source attempts that failed, by error type.";
    /// Duration of one source's fetch, in milliseconds (histogram).
    MULTI_SOURCE_FETCH_DURATION = "vast.multi_source.fetch.duration" => "vast_multi_source_fetch_duration_seconds",
        Histogram, Seconds, [SOURCE_URL, RESULT], "Duration of one source's fetch in seconds.";
    /// Duration of parsing fetched VAST, in milliseconds (histogram).
    MULTI_SOURCE_PARSE_DURATION = "vast.multi_source.parse.duration" => "vast_multi_source_parse_duration_seconds",
        Histogram, Seconds, [], "Duration of parsing fetched VAST in seconds.";
    /// Duration of filtering fetched ads, in milliseconds (histogram).
    MULTI_SOURCE_FILTER_DURATION = "vast.multi_source.filter.duration" => "vast_multi_source_filter_duration_seconds",
        Histogram, Seconds, [], "Duration of filtering fetched ads in seconds.";
    /// VAST documents parsed (counter).
    PARSER_XML_PARSED = "vast.parser.xml.parsed" => "vast_parser_xml_parsed_total",
        Counter, Count, [SOURCE_URL], "VAST documents inspected and found well-formed.";
    /// VAST documents that failed to parse (counter).
    PARSER_XML_FAILED = "vast.parser.xml.failed" => "vast_parser_xml_failed_total",
        Counter, Count, [SOURCE_URL, ERROR_TYPE], "VAST documents that failed inspection, by error type.";
    /// Duration of VAST parsing, in milliseconds (histogram).
    PARSER_PARSE_DURATION = "vast.parser.parse.duration" => "vast_parser_parse_duration_seconds",
        Histogram, Seconds, [SOURCE_URL], "Duration of VAST inspection in seconds.";
    /// Tracking events sent (counter).
    TRACKING_EVENT_SENT = "vast.tracking.event.sent" => "vast_tracking_event_sent_total",
        Counter, Count, [EVENT_TYPE], "Tracking events sent, by event type.";
    /// Tracking events that failed (counter).
    TRACKING_EVENT_FAILED = "vast.tracking.event.failed" => "vast_tracking_event_failed_total",
        Counter, Count, [EVENT_TYPE, ERROR_TYPE], "Tracking events that failed, by event and error type.";
    /// Duration of tracking requests, in milliseconds (histogram).
    TRACKING_REQUEST_DURATION = "vast.tracking.request.duration" => "vast_tracking_request_duration_seconds",
        Histogram, Seconds, [EVENT_TYPE], "Duration of tracking requests in seconds.";
    /// VAST answers without an ad for a VAST reason, by IAB error code
    /// (counter). New in this crate.
    VAST_ERRORS = "vast.errors" => "vast_errors_total",
        Counter, Count, [SOURCE_URL, CODE],
        "VAST answers without an ad for a VAST reason, by IAB VAST error code (100 not well-formed XML, 101 not VAST, 102 version not supported, 301 wrapper timeout, 302 wrapper limit, 303 no ad after wrappers, 900 undefined).";
    /// Wrapper chains followed, by the originating source and result
    /// (counter). New in this crate.
    WRAPPER_CHAINS = "vast.wrapper.chains" => "vast_wrapper_chains_total",
        Counter, Count, [SOURCE_URL, RESULT],
        "Wrapper chains followed, by originating source and result (success = resolved to an InLine ad).";
    /// Wrapper hops followed per chain (histogram). New in this crate.
    WRAPPER_CHAIN_HOPS = "vast.wrapper.chain.hops" => "vast_wrapper_chain_hops",
        Histogram, Count, [SOURCE_URL], "Wrapper hops followed per chain, by originating source.",
        buckets &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
    /// Duration of wrapper chains, in milliseconds (histogram). New in
    /// this crate.
    WRAPPER_CHAIN_DURATION = "vast.wrapper.chain.duration" => "vast_wrapper_chain_duration_seconds",
        Histogram, Seconds, [SOURCE_URL, RESULT],
        "Duration of wrapper chains from the first request to the last answer, in seconds.";
    /// HTTP redirects followed, by the originating source (counter). New
    /// in this crate.
    REDIRECTS = "vast.redirects" => "vast_redirects_total",
        Counter, Count, [SOURCE_URL],
        "HTTP redirects followed (301, 302, 303, 307, 308), by originating source.";
    /// `<Ad>`s per VAST answer with ads, by source (histogram). New in
    /// this crate.
    ADS_RETURNED = "vast.ads.returned" => "vast_ads_returned",
        Histogram, Count, [SOURCE_URL],
        "Ads per VAST answer with ads (the pod size), by source; in a wrapper chain, the InLine answer at its end, for the originating source.",
        buckets &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];
    /// Seconds of linear creatives returned, by source (counter; the
    /// generic API takes milliseconds). New in this crate.
    AD_DURATION = "vast.ad.duration" => "vast_ad_duration_seconds_total",
        Counter, Seconds, [SOURCE_URL],
        "Seconds of linear creatives returned in VAST answers with ads, by source.";
    /// Seconds of ad break requested from multi-source fetches (counter;
    /// the generic API takes milliseconds). New in this crate.
    MULTI_SOURCE_BREAK_REQUESTED = "vast.multi_source.break.requested" => "vast_multi_source_break_requested_seconds_total",
        Counter, Seconds, [FETCH_STRATEGY],
        "Seconds of ad break requested from multi-source fetches, by fetch strategy.";
    /// Seconds of linear ads in the answers multi-source fetches kept
    /// (counter; the generic API takes milliseconds). New in this crate.
    MULTI_SOURCE_BREAK_FILLED = "vast.multi_source.break.filled" => "vast_multi_source_break_filled_seconds_total",
        Counter, Seconds, [FETCH_STRATEGY],
        "Seconds of linear ads in the VAST multi-source fetches returned for a requested break, by fetch strategy (not capped: a break can be overfilled).";
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
    /// IAB VAST error code: `100`, `101`, `102`, `301`, `302`, `303`, `900`.
    pub const CODE: &'static str = "code";
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
/// Dots and dashes become `_`; counters end in `_total` (the contract's
/// counters of seconds in `_seconds_total`); gauges drop a
/// trailing `_count` (a histogram suffix that promtool rejects on a gauge, so
/// `vast.multi_source.sources.count` is `vast_multi_source_sources`); duration histograms
/// (see [`is_duration`]) end in `_seconds`, replacing a `milliseconds`/`ms`
/// unit segment. Use [`exported_timing_name`] for names recorded with
/// `timing`, which are durations whatever they are called.
pub fn exported_name(dotted: &str, kind: MetricKind) -> String {
    match kind {
        MetricKind::Counter if lookup(dotted).is_some_and(|def| def.unit == Unit::Seconds) => {
            format!("{}_seconds_total", underscored(dotted))
        }
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

/// The contract family of a dotted name; `None` for names outside it.
pub fn lookup(dotted: &str) -> Option<&'static MetricDef> {
    VastMetrics::ALL.iter().find(|f| f.dotted == dotted)
}

/// HELP text for the names of [`VastMetrics`]; `None` for others.
pub fn help(dotted: &str) -> Option<&'static str> {
    lookup(dotted).map(|f| f.help)
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
            (VastMetrics::REDIRECTS, Counter, "vast_redirects_total"),
        ];
        for (dotted, kind, exported) in table {
            assert_eq!(exported_name(dotted, kind), exported, "{dotted}");
            let def = lookup(dotted).expect("in the table");
            assert_eq!((def.exported, def.kind), (exported, kind), "{dotted}");
        }
        // The table's own exported names follow the conventions.
        for def in VastMetrics::ALL {
            let derived = match (def.unit, def.kind) {
                (Unit::Seconds, MetricKind::Histogram) => exported_timing_name(def.dotted),
                _ => exported_name(def.dotted, def.kind),
            };
            assert_eq!(def.exported, derived, "{}", def.dotted);
            if def.kind == MetricKind::Histogram {
                assert_eq!(def.unit == Unit::Seconds, is_duration(def.dotted));
            }
        }
    }

    #[test]
    fn all_lists_every_name_once_with_help() {
        let mut names: Vec<_> = VastMetrics::ALL.iter().map(|f| f.dotted).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VastMetrics::ALL.len());
        assert!(VastMetrics::ALL.iter().all(|f| !f.help.is_empty()));
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
