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
                    let mut buckets = h.get_bucket().iter().enumerate().peekable();
                    let mut wrote_inf = false;
                    while let Some((i, b)) = buckets.next() {
                        let le = number(b.upper_bound());
                        wrote_inf |= b.upper_bound() == f64::INFINITY;
                        sample(
                            out,
                            base,
                            "_bucket",
                            metric,
                            Some(("le", &le)),
                            b.cumulative_count() as f64,
                        );
                        exemplar(out, kept.and_then(|k| k.get(i).copied().flatten()));
                        if buckets.peek().is_none() && !wrote_inf {
                            sample(
                                out,
                                base,
                                "_bucket",
                                metric,
                                Some(("le", "+Inf")),
                                h.get_sample_count() as f64,
                            );
                            exemplar(out, kept.and_then(|k| k.get(i + 1).copied().flatten()));
                        }
                    }
                    if h.get_bucket().is_empty() {
                        sample(
                            out,
                            base,
                            "_bucket",
                            metric,
                            Some(("le", "+Inf")),
                            h.get_sample_count() as f64,
                        );
                        out.push('\n');
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
fn exemplar(out: &mut String, kept: Option<super::cells::Exemplar>) {
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
