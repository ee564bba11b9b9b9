//! A custom backend: a StatsD/DogStatsD collector implementing
//! `MetricsCollector`.
//!
//! It sends real UDP datagrams (`name:value|type|#key:value,...`) to a socket
//! the example binds on 127.0.0.1, then reads back and prints what arrived.
//!
//! Run: `cargo run --example custom_collector`

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use vast_metrics::collector::Labels;
use vast_metrics::{MetricLabels, MetricsCollector, VastMetrics};
use vast_test_support::simulate::simulate_requests;

/// Sends each call as one DogStatsD datagram. Fire and forget: a failed send
/// is ignored, because metrics must never break the application.
struct StatsdMetrics {
    socket: UdpSocket,
    /// Prepended to every metric name, e.g. `myapp.`.
    prefix: String,
}

impl StatsdMetrics {
    fn new(agent: SocketAddr, prefix: &str) -> io::Result<Self> {
        let socket = UdpSocket::bind(("127.0.0.1", 0))?;
        socket.connect(agent)?;
        // A full socket buffer drops the metric instead of blocking the caller.
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            prefix: prefix.to_owned(),
        })
    }

    /// `prefix.name:value|type|#k:v,k2:v2`
    fn send(&self, metric: &str, value: &str, kind: &str, labels: Labels<'_>) {
        let mut datagram = String::with_capacity(96);
        datagram.push_str(&self.prefix);
        push_clean(&mut datagram, metric);
        let _ = write!(datagram, ":{value}|{kind}");
        for (i, (key, value)) in labels.iter().enumerate() {
            datagram.push_str(if i == 0 { "|#" } else { "," });
            push_clean(&mut datagram, key);
            datagram.push(':');
            push_clean(&mut datagram, value);
        }
        let _ = self.socket.send(datagram.as_bytes());
    }
}

/// Appends `s` with the characters that delimit a DogStatsD datagram
/// (`:` `|` `,` `#` and line breaks) replaced by `_`.
fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| match c {
        ':' | '|' | ',' | '#' | '\n' | '\r' => '_',
        c => c,
    }));
}

impl MetricsCollector for StatsdMetrics {
    fn increment(&self, metric: &str, value: u64, labels: Labels<'_>) {
        self.send(metric, &value.to_string(), "c", labels);
    }

    fn histogram(&self, metric: &str, value: f64, labels: Labels<'_>) {
        self.send(metric, &value.to_string(), "h", labels);
    }

    fn gauge(&self, metric: &str, delta: f64, labels: Labels<'_>) {
        // StatsD gauges take a signed value as a change, not a new value.
        if delta != 0.0 {
            self.send(metric, &format!("{delta:+}"), "g", labels);
        }
    }

    fn timing(&self, metric: &str, ms: f64, labels: Labels<'_>) {
        self.send(metric, &ms.to_string(), "ms", labels);
    }
}

fn main() -> io::Result<()> {
    // Stands in for the StatsD / Datadog agent.
    let agent = UdpSocket::bind(("127.0.0.1", 0))?;
    agent.set_read_timeout(Some(Duration::from_millis(300)))?;
    let metrics = StatsdMetrics::new(agent.local_addr()?, "myapp.")?;
    println!(
        "== Custom collector: DogStatsD over UDP to {} ==",
        agent.local_addr()?
    );

    // One call of each type, as the crate makes them.
    let src = [(MetricLabels::SOURCE_URL, "primary")];
    metrics.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, 1.0, &src);
    metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &src);
    metrics.increment(
        VastMetrics::CLIENT_REQUEST_SUCCESS,
        1,
        &[
            (MetricLabels::SOURCE_URL, "primary"),
            (MetricLabels::RESULT, "success"),
        ],
    );
    metrics.timing(
        VastMetrics::CLIENT_REQUEST_DURATION_MS,
        87.5,
        &[
            (MetricLabels::SOURCE_URL, "primary"),
            (MetricLabels::RESULT, "success"),
        ],
    );
    metrics.histogram("vast.ad.size_bytes", 5120.0, &[]);
    metrics.gauge(VastMetrics::CLIENT_ACTIVE_REQUESTS, -1.0, &src);
    let explicit = 6;

    // Then a few simulated fetches through the same trait.
    simulate_requests(&metrics, 3, 7);

    println!("\nreceived:");
    let mut buf = [0u8; 1500];
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && received < 10_000 {
        match agent.recv(&mut buf) {
            Ok(n) => {
                received += 1;
                if received <= explicit + 10 {
                    println!("  {}", String::from_utf8_lossy(&buf[..n]));
                }
            }
            // Read timeout: everything sent has arrived.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    if received > explicit + 10 {
        println!("  ... and {} more", received - explicit - 10);
    }
    println!("\n{received} datagrams in all ({explicit} explicit calls, the rest from 3 simulated fetches)");

    // Sends to a closed port are dropped, not raised: the app carries on.
    drop(agent);
    metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &src);
    metrics.increment(VastMetrics::CLIENT_REQUEST_TOTAL, 1, &src);
    println!("sending after the agent went away: ignored, no panic");
    Ok(())
}
