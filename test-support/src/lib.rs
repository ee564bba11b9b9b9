//! Scaffolding of vast-metrics' tests, examples and benches, kept out of the
//! library's public API (as tower keeps `tower-test`): embedded VAST ad
//! servers on loopback and simulated traffic.
#![warn(missing_docs, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod ad_server;
pub mod simulate;
