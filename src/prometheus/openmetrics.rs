//! The OpenMetrics 1.0 text format, with exemplars: what `/metrics`
//! answers a scraper that asks for `application/openmetrics-text`.
//!
//! The `prometheus` crate's data model has no exemplars, so this small
//! encoder writes the registry's families itself, adding to each bucket of
//! the crate's histograms the exemplar the store kept for it.

use std::fmt::Write as _;

use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::store::ExemplarMap;

/// The `Content-Type` of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Appends `families` in OpenMetrics text, `# EOF` last.
pub(crate) fn encode(families: &[MetricFamily], exemplars: &ExemplarMap, out: &mut String) {
    for family in families {
        let name = family.name();
        let (kind, base) = match family.get_field_type() {
            // A counter's family is named without `_total`; its sample has it.
            MetricType::COUNTER => ("counter", name.strip_suffix("_total").unwrap_or(name)),
            MetricType::GAUGE => ("gauge", name),
            MetricType::HISTOGRAM => ("histogram", name),
            MetricType::SUMMARY => ("summary", name),
            MetricType::UNTYPED => ("unknown", name),
        };
        let _ = writeln!(out, "# TYPE {base} {kind}");
        if !family.help().is_empty() {
            let _ = writeln!(out, "# HELP {base} {}", escape(family.help()));
        }
        for metric in family.get_metric() {
            let labels = metric.get_label();
            match family.get_field_type() {
                MetricType::COUNTER => {
                    sample(
                        out,
                        base,
                        "_total",
                        metric,
                        None,
                        metric.get_counter().get_value(),
                    );
                }
                MetricType::GAUGE => {
                    sample(out, base, "", metric, None, metric.get_gauge().get_value())
                }
                // The plain model keeps untyped values only in this form.
                #[allow(deprecated)]
                MetricType::UNTYPED => {
                    sample(
                        out,
                        base,
                        "",
                        metric,
                        None,
                        metric.get_untyped().get_value(),
                    );
                }
                MetricType::SUMMARY => {
                    let s = metric.get_summary();
                    for q in s.get_quantile() {
                        let quantile = number(q.quantile());
                        sample(
                            out,
                            base,
                            "",
                            metric,
                            Some(("quantile", &quantile)),
                            q.value(),
                        );
                    }
                    sample(out, base, "_sum", metric, None, s.sample_sum());
                    sample(out, base, "_count", metric, None, s.sample_count() as f64);
                }
                MetricType::HISTOGRAM => {
                    let h = metric.get_histogram();
                    let values: Vec<String> = labels.iter().map(|l| l.value().to_owned()).collect();
                    let kept = exemplars.get(&(name.to_owned(), values));
                    let buckets = h.get_bucket();
                    let kept_at = |i: usize| kept.and_then(|k| k.get(i).copied().flatten());
                    for (i, b) in buckets.iter().enumerate() {
                        let le = number(b.upper_bound());
                        let count = b.cumulative_count() as f64;
                        sample(out, base, "_bucket", metric, Some(("le", &le)), count);
                        exemplar(out, kept_at(i));
                    }
                    // OpenMetrics requires the +Inf bucket; the prometheus
                    // crate's families leave it implicit.
                    if buckets
                        .last()
                        .is_none_or(|b| b.upper_bound() != f64::INFINITY)
                    {
                        let count = h.get_sample_count() as f64;
                        sample(out, base, "_bucket", metric, Some(("le", "+Inf")), count);
                        exemplar(out, kept_at(buckets.len()));
                    }
                    sample(
                        out,
                        base,
                        "_count",
                        metric,
                        None,
                        h.get_sample_count() as f64,
                    );
                    sample(out, base, "_sum", metric, None, h.get_sample_sum());
                }
            }
            // Every sample but buckets ends its own line.
        }
    }
    out.push_str("# EOF\n");
}

/// Writes one sample; a bucket's line is left open for its exemplar.
fn sample(
    out: &mut String,
    base: &str,
    suffix: &str,
    metric: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(base);
    out.push_str(suffix);
    let labels = metric.get_label();
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let pairs = labels.iter().map(|l| (l.name(), l.value())).chain(extra);
        for (i, (k, v)) in pairs.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    if suffix != "_bucket" {
        out.push('\n');
    }
}

/// Ends a bucket's line, with its exemplar if it has one.
fn exemplar(out: &mut String, kept: Option<crate::recorder::cells::Exemplar>) {
    if let Some(e) = kept {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}",
            e.trace.trace_id_hex(),
            e.trace.span_id_hex(),
            number(e.value),
            number(e.at),
        );
    }
    out.push('\n');
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints integers without a fraction and never an exponent.
        v.to_string()
    }
}

/// Escapes `\`, `"` and newlines, as label values and HELP need.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use prometheus::{Histogram, HistogramOpts, IntCounter, Opts, Registry};

    use crate::PrometheusMetrics;

    #[test]
    fn the_applications_own_families_come_along() {
        let registry = Registry::new();
        let jobs = IntCounter::with_opts(Opts::new("app_jobs", "Jobs \"done\".\nAll.")).unwrap();
        let wait = Histogram::with_opts(
            HistogramOpts::new("app_wait_seconds", "Wait.").buckets(vec![0.5]),
        )
        .unwrap();
        registry.register(Box::new(jobs.clone())).unwrap();
        registry.register(Box::new(wait.clone())).unwrap();
        let metrics = PrometheusMetrics::builder()
            .registry(registry)
            .build()
            .unwrap();
        jobs.inc_by(3);
        wait.observe(2.0);
        let text = metrics.encode_openmetrics();
        // A counter's family is named without `_total`; its sample has it.
        assert!(text.contains("# TYPE app_jobs counter\n# HELP app_jobs Jobs \\\"done\\\".\\nAll.\napp_jobs_total 3\n"), "{text}");
        assert!(text.contains("app_wait_seconds_bucket{le=\"0.5\"} 0\napp_wait_seconds_bucket{le=\"+Inf\"} 1\napp_wait_seconds_count 1\napp_wait_seconds_sum 2\n"), "{text}");
        assert!(text.contains("# TYPE vast_metrics_errors counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
