//! The `/metrics` server against a real hyper-util client on loopback.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{http_client, start, HttpClient};
use flate2::read::GzDecoder;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;
use vast_metrics::server::{ServerError, CONTENT_TYPE};
use vast_metrics::{
    MetricLabels, MetricsCollector, MetricsServer, MetricsService, PrometheusMetrics, VastMetrics,
};

/// Metrics with known values recorded through the generic API.
fn recorded() -> PrometheusMetrics {
    let m = PrometheusMetrics::new();
    let primary = [(MetricLabels::SOURCE_URL, "primary")];
    m.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 3, &primary);
    m.increment(
        VastMetrics::CLIENT_REQUEST_SUCCESS,
        2,
        &[
            (MetricLabels::SOURCE_URL, "primary"),
            (MetricLabels::RESULT, "success"),
        ],
    );
    m.timing(
        VastMetrics::CLIENT_REQUEST_DURATION_MS,
        250.0,
        &[
            (MetricLabels::SOURCE_URL, "primary"),
            (MetricLabels::RESULT, "success"),
        ],
    );
    m.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, 4.0, &primary);
    m.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, -1.0, &primary);
    m
}

async fn send(
    client: &HttpClient<Empty<Bytes>>,
    method: Method,
    addr: SocketAddr,
    path: &str,
    accept_encoding: Option<&str>,
) -> (Response<()>, Bytes) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(ae) = accept_encoding {
        req = req.header(header::ACCEPT_ENCODING, ae);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .expect("request");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (Response::from_parts(parts, ()), body)
}

fn header_str(res: &Response<()>, name: header::HeaderName) -> Option<&str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

#[tokio::test]
async fn get_serves_the_recorded_values() {
    let server = start(MetricsServer::new(recorded())).await;
    let (res, body) = send(
        &http_client(),
        Method::GET,
        server.local_addr(),
        "/metrics",
        None,
    )
    .await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_str(&res, header::CONTENT_TYPE), Some(CONTENT_TYPE));
    assert_eq!(
        header_str(&res, header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(header_str(&res, header::CONTENT_ENCODING), None);
    assert_eq!(
        header_str(&res, header::CONTENT_LENGTH),
        Some(body.len().to_string().as_str())
    );
    let text = std::str::from_utf8(&body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&r#"vast_client_request_total{source_url="primary"} 3"#));
    assert!(lines.contains(
        &r#"vast_client_request_success_total{source_url="primary",result="success"} 2"#
    ));
    assert!(lines.contains(&r#"vast_client_active_requests{source_url="primary"} 3"#));
    assert!(lines.contains(
        &r#"vast_client_request_duration_seconds_sum{source_url="primary",result="success"} 0.25"#
    ));
    assert!(lines.contains(&"# TYPE vast_client_request_duration_seconds histogram"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let server = start(MetricsServer::new(recorded())).await;
    let client = http_client();
    let (get, get_body) = send(&client, Method::GET, server.local_addr(), "/metrics", None).await;
    let (head, body) = send(&client, Method::HEAD, server.local_addr(), "/metrics", None).await;

    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_str(&head, header::CONTENT_TYPE), Some(CONTENT_TYPE));
    assert!(body.is_empty());
    assert_eq!(
        header_str(&head, header::CONTENT_LENGTH),
        header_str(&get, header::CONTENT_LENGTH)
    );
    assert_eq!(
        header_str(&head, header::CONTENT_LENGTH),
        Some(get_body.len().to_string().as_str())
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_paths_are_404() {
    let server = start(MetricsServer::new(recorded())).await;
    let client = http_client();
    for path in ["/", "/other", "/metrics/", "/metricsx"] {
        let (res, body) = send(&client, Method::GET, server.local_addr(), path, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(body.is_empty());
    }
    // The query string is not part of the path.
    let (res, _) = send(
        &client,
        Method::GET,
        server.local_addr(),
        "/metrics?x=1",
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let server = start(MetricsServer::new(recorded())).await;
    let client = http_client();
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let (res, body) = send(
            &client,
            method.clone(),
            server.local_addr(),
            "/metrics",
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header_str(&res, header::ALLOW), Some("GET, HEAD"));
        assert!(body.is_empty());
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn gzip_when_accepted() {
    let server = start(MetricsServer::new(recorded())).await;
    let client = http_client();
    let addr = server.local_addr();
    let (plain, plain_body) = send(&client, Method::GET, addr, "/metrics", None).await;
    let (gz, gz_body) = send(&client, Method::GET, addr, "/metrics", Some("gzip")).await;

    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(header_str(&gz, header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(
        header_str(&gz, header::VARY),
        Some("accept, accept-encoding")
    );
    assert_eq!(header_str(&gz, header::CONTENT_TYPE), Some(CONTENT_TYPE));
    assert_eq!(
        header_str(&plain, header::VARY),
        Some("accept, accept-encoding")
    );
    assert_ne!(gz_body, plain_body);
    // Nothing was recorded between the two scrapes.
    assert_eq!(gunzip(&gz_body), std::str::from_utf8(&plain_body).unwrap());

    // Among other codings and with a q-value.
    let (res, body) = send(
        &client,
        Method::GET,
        addr,
        "/metrics",
        Some("br, gzip;q=0.8"),
    )
    .await;
    assert_eq!(header_str(&res, header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(gunzip(&body), std::str::from_utf8(&plain_body).unwrap());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_gzip_when_refused() {
    let server = start(MetricsServer::new(recorded())).await;
    let client = http_client();
    let addr = server.local_addr();
    let (_, plain_body) = send(&client, Method::GET, addr, "/metrics", None).await;
    for refusal in ["gzip;q=0", "gzip; q=0.0, deflate", "identity", "br"] {
        let (res, body) = send(&client, Method::GET, addr, "/metrics", Some(refusal)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_str(&res, header::CONTENT_ENCODING),
            None,
            "{refusal}"
        );
        assert_eq!(body, plain_body, "{refusal}");
    }
    server.shutdown().await.unwrap();
}

/// Each scrape answered 200 with the recorded request total.
async fn assert_all_served(scrapes: Vec<tokio::task::JoinHandle<(Response<()>, Bytes)>>) {
    for scrape in scrapes {
        let (res, body) = scrape.await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains(r#"vast_client_request_total{source_url="primary"} 3"#));
    }
}

#[tokio::test]
async fn fifty_concurrent_scrapes() {
    let metrics = recorded();
    let server = start(MetricsServer::new(metrics.clone())).await;
    let addr = server.local_addr();
    let client = http_client();
    let scrapes: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { send(&client, Method::GET, addr, "/metrics", None).await })
        })
        .collect();
    assert_all_served(scrapes).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_cap_queues_instead_of_refusing() {
    let server = start(MetricsServer::new(recorded()).max_concurrent_requests(1)).await;
    let addr = server.local_addr();
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            // One client each: twenty requests against one request slot.
            tokio::spawn(
                async move { send(&http_client(), Method::GET, addr, "/metrics", None).await },
            )
        })
        .collect();
    assert_all_served(scrapes).await;
    server.shutdown().await.unwrap();
}

/// Past the connection cap, accepting does not wait: the oldest idle
/// connection is closed and the scrape is served.
#[tokio::test]
async fn past_the_connection_cap_the_oldest_idle_connection_is_closed() {
    let server = start(
        MetricsServer::new(recorded())
            .max_connections(2)
            .header_read_timeout(Duration::from_secs(60)),
    )
    .await;
    let addr = server.local_addr();
    // Two clients that connect and never send a request: the cap is full.
    // The listen queue is FIFO, so they are accepted before the scrape.
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    let newer = TcpStream::connect(addr).await.unwrap();

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("the scrape is served at once, not after a header timeout")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(r#"vast_client_request_total{source_url="primary"} 3"#));

    // The oldest idle connection made room: closed without an answer.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), oldest.read(&mut buf))
        .await
        .expect("the oldest idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The newer one was not needed and is still open.
    let peek = newer.try_read(&mut buf);
    assert!(
        matches!(&peek, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{peek:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn custom_path() {
    let server = start(MetricsServer::new(recorded()).path("/custom")).await;
    let client = http_client();
    let (res, body) = send(&client, Method::GET, server.local_addr(), "/custom", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains(r#"vast_client_request_total{source_url="primary"} 3"#));
    let (res, _) = send(&client, Method::GET, server.local_addr(), "/metrics", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bind_to_a_used_port_is_a_typed_error() {
    let first = start(MetricsServer::new(PrometheusMetrics::new())).await;
    let addr = first.local_addr();
    let err = MetricsServer::new(PrometheusMetrics::new())
        .bind(addr)
        .await
        .expect_err("second bind fails");
    match &err {
        ServerError::Bind { addr: a, source } => {
            assert_eq!(*a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(err.to_string(), format!("address {addr} is already in use"));
    assert!(err.to_string().contains("already in use"));
    assert!(std::error::Error::source(&err).is_some());
    first.shutdown().await.unwrap();
}

#[tokio::test]
async fn service_answers_directly_through_oneshot() {
    let metrics = recorded();
    let service = MetricsService::new(metrics.clone());

    let res = service
        .clone()
        .oneshot(
            Request::get("/metrics")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE].to_str().unwrap(),
        CONTENT_TYPE
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, metrics.encode().as_bytes());

    // Values recorded later show in the next answer.
    metrics.increment(
        VastMetrics::CLIENT_REQUEST_TOTAL,
        7,
        &[(MetricLabels::SOURCE_URL, "primary")],
    );
    let res = service
        .clone()
        .oneshot(
            Request::get("/metrics")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(gunzip(&body).contains(r#"vast_client_request_total{source_url="primary"} 10"#));

    let res = service
        .clone()
        .path("/custom")
        .oneshot(Request::post("/custom").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
    let res = service
        .oneshot(Request::get("/nope").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graceful_shutdown_returns_and_stops_listening() {
    let server = start(MetricsServer::new(recorded())).await;
    let addr = server.local_addr();
    let client = http_client();
    // Leaves a keep-alive connection open in the client's pool.
    let (res, _) = send(&client, Method::GET, addr, "/metrics", None).await;
    assert_eq!(res.status(), StatusCode::OK);

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown finishes")
        .expect("shutdown is clean");
    // Idle keep-alive connections are closed at once, not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn serve_with_shutdown_ends_with_its_signal() {
    let bound = MetricsServer::new(recorded())
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = bound.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.serve_with_shutdown(async {
        let _ = rx.await;
    }));

    // A raw HTTP/1.1 exchange, closing after the answer.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(r#"vast_client_request_total{source_url="primary"} 3"#));

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("server ends")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_header_timeout() {
    let server =
        start(MetricsServer::new(recorded()).header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Reads the answer, then waits for the server to close the idle connection.
    let mut answer = Vec::new();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("idle keep-alive connection closed by the server")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(r#"vast_client_request_total{source_url="primary"} 3"#));
    server.shutdown().await.unwrap();
}

/// Metrics whose exposition is several megabytes: more than loopback
/// socket buffers hold, so a client that reads slowly keeps the answer
/// in progress.
fn big_metrics() -> PrometheusMetrics {
    let m = recorded();
    for i in 0..6_000 {
        let source = format!("source-{i:05}");
        m.timing(
            VastMetrics::CLIENT_REQUEST_DURATION_MS,
            120.0,
            &[
                (MetricLabels::SOURCE_URL, source.as_str()),
                (MetricLabels::RESULT, "success"),
            ],
        );
    }
    m
}

/// A connection that accepts few bytes at a time: the server's writes
/// block until it reads.
async fn slow_reader(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends a scrape and reads up to the end of the response head; returns
/// what was read and the announced content length.
async fn start_scrape(stream: &mut TcpStream) -> (Vec<u8>, usize) {
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response head");
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                return end + 4;
            }
        }
    })
    .await
    .expect("the response starts");
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    (got.split_off(head_end), length)
}

/// Shutdown while an answer is being sent: the listener closes at once
/// (new connections refused), the answer completes in full, then its
/// connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_a_response_in_progress_and_refuses_new_connections() {
    let server = start(MetricsServer::new(big_metrics())).await;
    let addr = server.local_addr();
    let mut stream = slow_reader(addr).await;
    let (mut body, length) = start_scrape(&mut stream).await;
    eprintln!(
        "exposition of {length} bytes; {} read before shutdown",
        body.len()
    );

    let shutting = tokio::spawn(server.shutdown());
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "new connections still accepted after shutdown"
    );
    // The unread answer holds the shutdown up.
    assert!(
        !shutting.is_finished(),
        "shutdown did not wait for the answer"
    );

    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut body))
        .await
        .expect("the connection closes after the answer")
        .expect("read");
    assert_eq!(body.len(), length, "the answer is complete");
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.ends_with('\n'));
    assert!(text.contains(r#"vast_client_request_total{source_url="primary"} 3"#));
    let counts = text
        .lines()
        .filter(|l| l.starts_with("vast_client_request_duration_seconds_count{"))
        .count();
    assert_eq!(counts, 6_001, "every series is in the answer");
    tokio::time::timeout(Duration::from_secs(10), shutting)
        .await
        .expect("shutdown ends after the answer")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_a_stuck_answer_after_the_grace_period() {
    let server =
        start(MetricsServer::new(big_metrics()).shutdown_timeout(Duration::from_millis(300))).await;
    let mut stream = slow_reader(server.local_addr()).await;
    let (mut body, length) = start_scrape(&mut stream).await;
    // The client stops reading: the answer cannot complete.
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .expect("shutdown is bounded by its grace period")
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut body))
        .await
        .expect("the connection is closed");
    eprintln!(
        "stuck answer cut after {} of {length} bytes ({read:?})",
        body.len()
    );
    assert!(body.len() < length, "the answer was cut");
}

#[tokio::test]
async fn shutdown_closes_a_half_sent_request_at_once() {
    // Timeouts far beyond the test's bounds: only shutdown closes it.
    let server = start(
        MetricsServer::new(recorded())
            .header_read_timeout(Duration::from_secs(120))
            .shutdown_timeout(Duration::from_secs(120)),
    )
    .await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .expect("a request not yet received is not waited for")
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the connection is closed");
    // Closed without an answer (EOF or reset).
    assert!(rest.is_empty(), "{read:?}: {rest:?}");
}
