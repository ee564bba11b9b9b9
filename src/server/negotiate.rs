//! Content negotiation: OpenMetrics or the text format, gzip or not.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderMap};

/// `None` if compression failed; the caller then sends the plain text.
pub(super) fn gzip_bytes(text: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    encoder.write_all(text).ok()?;
    encoder.finish().ok()
}

/// Whether `accept` prefers OpenMetrics 1.0 text: an
/// `application/openmetrics-text` range (version 1.0.0 or unversioned)
/// with a non-zero q-value at least that of any `text/plain` range.
/// Otherwise the text format 0.0.4 is the answer.
pub(super) fn accepts_openmetrics(headers: &HeaderMap) -> bool {
    let mut openmetrics = 0.0f32;
    let mut plain = 0.0f32;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            let mut q = 1.0f32;
            let mut version = None;
            for param in params {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim()),
                    _ => {}
                }
            }
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                if version.is_none_or(|v| v == "1.0.0") {
                    openmetrics = openmetrics.max(q);
                }
            } else if media.eq_ignore_ascii_case("text/plain") {
                plain = plain.max(q);
            }
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
}

/// Whether `accept-encoding` (RFC 9110 §12.5.3) accepts gzip: `gzip` or
/// `x-gzip` with a non-zero q-value, or else `*` with a non-zero q-value.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut explicit: Option<bool> = None;
    let mut wildcard: Option<bool> = None;
    let values = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for item in values.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut q_positive = true;
        for param in parts {
            if let Some((key, value)) = param.split_once('=') {
                if key.trim().eq_ignore_ascii_case("q") {
                    q_positive = value.trim().parse::<f32>().is_ok_and(|q| q > 0.0);
                }
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // With duplicates, any acceptable listing wins.
            explicit = Some(explicit.unwrap_or(false) || q_positive);
        } else if coding == "*" {
            wildcard = Some(wildcard.unwrap_or(false) || q_positive);
        }
    }
    explicit.or(wildcard).unwrap_or(false)
}
