//! The W3C Trace Context of a request (its `traceparent` header), carried
//! to the duration histograms as an exemplar: the jump from a slow bucket
//! to the trace of a request in it.
//!
//! # Example
//!
//! ```
//! use vast_metrics::trace::TraceContext;
//!
//! let tc = TraceContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(tc.span_id_hex(), "00f067aa0ba902b7");
//! assert!(TraceContext::parse(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
//! ```

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName};

/// The header carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id and the id of the caller's span (W3C `traceparent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl TraceContext {
    /// Parses a `traceparent` value (`version-traceid-spanid-flags`, lower
    /// case hex). `None` for anything the W3C spec says to ignore: a
    /// malformed value, version `ff`, an all-zero trace or span id.
    pub fn parse(value: &[u8]) -> Option<Self> {
        // Version 00 is exactly 55 bytes; later versions may append fields.
        if value.len() < 55 || (value.len() > 55 && value[55] != b'-') {
            return None;
        }
        let [v0, v1, b'-', rest @ ..] = value else {
            return None;
        };
        let version = hex_byte(*v0, *v1)?;
        if version == 0xff || (version == 0 && value.len() != 55) {
            return None;
        }
        let trace_id: [u8; 16] = hex_bytes(&rest[..32])?;
        let span_id: [u8; 8] = hex_bytes(rest.get(33..49)?)?;
        if rest[32] != b'-' || rest[49] != b'-' {
            return None;
        }
        hex_byte(rest[50], rest[51])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, span_id })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The caller's span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// The trace context of a request's headers, if it has a valid one.
#[inline]
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
    if headers.is_empty() {
        return None;
    }
    // A static name: the lookup does not parse the key each time.
    static NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
    TraceContext::parse(headers.get(&NAME)?.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

fn hex_bytes<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = hex_byte(pair[0], pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_and_rejections() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tc = TraceContext::parse(ok).unwrap();
        assert_eq!(tc.span_id_hex(), "00f067aa0ba902b7");
        // Future versions may carry more fields after a dash.
        assert!(TraceContext::parse(
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future"
        )
        .is_some());
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"[..],
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            b"",
            b"00-4bf9",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
        }
    }
}
