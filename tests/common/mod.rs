//! Helpers shared by the integration tests: a parsed exposition.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample: family name, sorted labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text exposition format (0.0.4), label escapes included.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_owned(),
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").expect("label key");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

/// Sum of the samples of `name` whose labels include all of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The distinct values of one label in a family.
pub fn label_values(samples: &[Sample], name: &str, key: &str) -> Vec<String> {
    let mut values: Vec<String> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| s.labels.get(key).cloned())
        .collect();
    values.sort();
    values.dedup();
    values
}

/// Asserts, per source: total == success + failure, active == 0, and the
/// duration histogram counted every finished request.
pub fn assert_client_invariants(samples: &[Sample]) {
    let sources = label_values(samples, "vast_client_request_total", "source_url");
    assert!(!sources.is_empty(), "no client requests recorded");
    for source in sources {
        let s = [("source_url", source.as_str())];
        let total = sum(samples, "vast_client_request_total", &s);
        let success = sum(samples, "vast_client_request_success_total", &s);
        let failure = sum(samples, "vast_client_request_failure_total", &s);
        let active = sum(samples, "vast_client_active_requests", &s);
        let observed = sum(samples, "vast_client_request_duration_seconds_count", &s);
        assert_eq!(
            total,
            success + failure,
            "total != success + failure for {source}"
        );
        assert_eq!(active, 0.0, "active requests left for {source}");
        assert_eq!(observed, total, "duration count != total for {source}");
    }
}

/// Whether `promtool check metrics` accepts the exposition without a
/// complaint; `true` when promtool is missing (unless
/// `VAST_REQUIRE_PROMTOOL=1`, then it panics).
pub fn promtool_accepts(exposition: &str) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(_) if std::env::var("VAST_REQUIRE_PROMTOOL").as_deref() != Ok("1") => {
            eprintln!("skipping promtool check: promtool not found");
            return true;
        }
        Err(e) => panic!("VAST_REQUIRE_PROMTOOL=1 but promtool cannot run: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !printed.trim().is_empty() {
        eprintln!("promtool:\n{printed}");
        return false;
    }
    true
}
