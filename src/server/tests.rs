//! Unit tests of the server's parts.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};

use super::connections::{shed_oldest_idle, ConnState};
use super::listener::parse_open_file_limit;
use super::negotiate::{accepts_gzip, accepts_openmetrics};
use super::*;
use crate::prometheus::PrometheusMetrics;

fn accepts(value: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_str(value).unwrap(),
    );
    accepts_gzip(&headers)
}

#[test]
fn accept_is_negotiated() {
    let prefers = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        accepts_openmetrics(&headers)
    };
    // What Prometheus 2.x sends.
    assert!(prefers("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    assert!(prefers("application/openmetrics-text"));
    assert!(!prefers("text/plain;version=0.0.4"));
    assert!(!prefers("application/openmetrics-text;version=0.0.1"));
    assert!(!prefers("application/openmetrics-text;q=0"));
    assert!(!prefers("text/plain, application/openmetrics-text;q=0.5"));
    assert!(!prefers("*/*"));
    assert!(!accepts_openmetrics(&HeaderMap::new()));
}

#[test]
fn accept_encoding_is_parsed() {
    assert!(accepts("gzip"));
    assert!(accepts("deflate, GZIP;q=0.5"));
    assert!(accepts("x-gzip"));
    assert!(accepts("br;q=1.0, *;q=0.1"));
    assert!(accepts("gzip ; q=1"));
    assert!(!accepts("gzip;q=0"));
    assert!(!accepts("gzip;q=0.000"));
    assert!(!accepts("gzip;q=0, *"));
    assert!(!accepts("identity"));
    assert!(!accepts("gzipx"));
    assert!(!accepts("*;q=0"));
    assert!(!accepts_gzip(&HeaderMap::new()));
}

#[test]
fn bind_message_names_addr_in_use() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let e = ServerError::Bind {
        addr,
        source: io::ErrorKind::AddrInUse.into(),
    };
    assert_eq!(e.to_string(), "address 127.0.0.1:9 is already in use");
}

#[test]
fn open_file_limit_is_read_from_proc_limits() {
    let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                  Max cpu time              unlimited            unlimited            seconds   \n\
                  Max open files            1024                 524288               files     \n";
    assert_eq!(parse_open_file_limit(limits), Some(1024));
    let unlimited = "Max open files            unlimited            unlimited            files\n";
    assert_eq!(parse_open_file_limit(unlimited), Some(u64::MAX));
    assert_eq!(
        parse_open_file_limit("Max processes 10 10 processes\n"),
        None
    );
}

#[test]
fn shedding_picks_the_oldest_connection_without_a_request() {
    let mut open = BTreeMap::new();
    for id in 1..=3 {
        open.insert(id, Arc::new(ConnState::default()));
    }
    open[&1].in_flight.store(1, Ordering::Relaxed);
    assert!(shed_oldest_idle(&mut open));
    assert_eq!(open.keys().copied().collect::<Vec<_>>(), [1, 3]);
    open[&3].in_flight.store(1, Ordering::Relaxed);
    assert!(!shed_oldest_idle(&mut open), "all answering: none shed");
    assert_eq!(open.len(), 2);
}

#[test]
fn path_gets_a_leading_slash() {
    let s = MetricsService::new(PrometheusMetrics::new()).path("m");
    assert_eq!(&*s.path, "/m");
}
