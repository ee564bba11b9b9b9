//! [`VastMetricsLayer`]: Tower middleware that records VAST fetches.
//!
//! Wrap the service your HTTP client uses to fetch VAST (hyper-util's
//! `Client`, any tower stack, `reqwest::Client` (0.13) with the `reqwest`
//! feature).
//! Per source it records `vast_client_request_total`,
//! `_success_total{result}`, `_failure_total{error_type}`,
//! `vast_client_request_duration_seconds{result}` and
//! `vast_client_active_requests`, and, while inspecting 2xx bodies as they
//! stream past, the `vast_parser_*` family.
//!
//! The lifecycle of one request:
//!
//! - on `call`: total +1, active +1, the clock starts;
//! - an error from the inner service, or a non-2xx status, ends it at once
//!   (a 3xx as `redirect`: it was not followed, no VAST came of it);
//! - a redirect that a fetcher of the crate above follows
//!   ([`MultiSource`](crate::MultiSource),
//!   [`WrapperResolver`](crate::wrapper::WrapperResolver)) does not end it:
//!   the follow-up request continues it, so it counts once, its latency
//!   spans the redirects and its outcome is the final answer's, as over a
//!   client that follows redirects itself (reqwest);
//! - a 2xx ends when the body ends (or errors): its bytes are inspected as
//!   they pass, unchanged, and the verdict gives the outcome (`success`,
//!   `no_ad`, `invalid_xml`, `empty_body`);
//! - a response future or a body dropped before that ends it as `cancelled`.
//!
//! Active goes down exactly once whatever happens, so after quiescence
//! `total == success + failure` and active is 0 for every source.
//!
//! # Example
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use vast_metrics::{PrometheusMetrics, VastMetricsLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = PrometheusMetrics::new();
//! // Any `Service<http::Request<_>, Response = http::Response<impl Body>>`;
//! // here an in-memory ad server stands in for hyper-util's client.
//! let ad_server = service_fn(|_req: http::Request<Full<bytes::Bytes>>| async {
//!     let vast = r#"<VAST version="4.2"><Ad><InLine/></Ad></VAST>"#;
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(bytes::Bytes::from(vast))))
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(VastMetricsLayer::new(metrics.clone()).source_name("primary"))
//!     .service(ad_server);
//!
//! let req = http::Request::get("http://ads.example.com/vast?cb=1").body(Full::default()).unwrap();
//! let res = client.ready().await.unwrap().call(req).await.unwrap();
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert!(body.starts_with(b"<VAST"));
//!
//! let text = metrics.encode();
//! assert!(text.contains(r#"vast_client_request_success_total{source_url="primary",result="success"} 1"#));
//! assert!(text.contains(r#"vast_client_active_requests{source_url="primary"} 0"#));
//! # }
//! ```

mod body;
mod future;
mod in_flight;
#[allow(clippy::module_inception)]
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod redirect;
#[cfg(feature = "reqwest")]
mod reqwest;
mod service;

pub(crate) use self::body::{inspect_whole, Encoding, VerdictSlot};
pub(crate) use self::in_flight::InFlight;
pub(crate) use self::redirect::{location, Redirecting};

pub use self::body::ResponseBody;
pub use self::future::ResponseFuture;
pub use self::layer::{Latency, VastMetricsLayer};
#[cfg(feature = "reqwest-middleware")]
pub use self::middleware::VastMetricsMiddleware;
#[cfg(feature = "reqwest")]
pub use self::reqwest::ReqwestResponseFuture;
pub use self::service::VastMetricsService;
