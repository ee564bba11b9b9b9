//! The `/metrics` exposition: a Tower service ([`MetricsService`]) and,
//! with the `server` feature (on by default), a small hyper server
//! ([`MetricsServer`]).
//!
//! [`MetricsService`] answers `GET`/`HEAD` on `/metrics` with the Prometheus
//! text format (gzip-compressed when the scraper accepts it). It is a plain
//! `tower::Service`, so it can be mounted in axum or any Tower stack.
//! [`MetricsServer`] runs it on its own port over hyper 1 and hyper-util,
//! with a header-read timeout, caps on open connections and on requests
//! answered at once, and graceful shutdown.
//!
//! Idle and slow clients cannot delay a scrape: accepting never waits,
//! idle connections and ones still sending headers hold no request slot,
//! they are closed by the header-read timeout, and past the connection cap
//! the oldest of them is closed to make room for a new connection.
//!
//! # Example
//!
//! ```
//! use vast_metrics::{MetricLabels, MetricsCollector, MetricsServer, PrometheusMetrics, VastMetrics};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), vast_metrics::server::ServerError> {
//! let metrics = PrometheusMetrics::new();
//! metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &[(MetricLabels::SOURCE_URL, "primary")]);
//!
//! let server = MetricsServer::new(metrics)
//!     .bind("127.0.0.1:0".parse().unwrap())
//!     .await?
//!     .spawn();
//! println!("scrape http://{}/metrics", server.local_addr());
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Mounted in axum instead, with
//! `Router::new().route_service("/metrics", MetricsService::new(metrics))`:
//! the service meets what axum asks of one.
//!
//! ```
//! use std::convert::Infallible;
//! use vast_metrics::{MetricsService, PrometheusMetrics};
//!
//! fn mountable<S, B>(_: &S)
//! where
//!     S: tower_service::Service<http::Request<B>, Error = Infallible> + Clone + Send + Sync + 'static,
//!     S::Future: Send,
//!     S::Response: Send,
//! {
//! }
//! fn standard_body<B: http_body::Body<Data = bytes::Bytes> + Send>() {}
//!
//! mountable::<_, String>(&MetricsService::new(PrometheusMetrics::new()));
//! standard_body::<http_body_util::Full<bytes::Bytes>>();
//! ```
#[cfg(feature = "server")]
mod connections;
#[cfg(feature = "server")]
mod listener;
mod negotiate;
mod service;
#[cfg(all(test, feature = "server"))]
mod tests;

#[cfg(feature = "server")]
pub use self::listener::{BoundServer, MetricsServer, RunningServer, ServerError};
pub use self::service::MetricsService;

/// Content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
