//! Source labels: what `source_url` holds instead of a URL.
//!
//! A label is, in order of precedence: a [`SourceLabel`] put in the
//! request's extensions, the fixed name of a layer that wraps one upstream,
//! an alias given for the source's URL, or a short stable hash of the
//! normalised URL: `scheme://host[:port]/path` with the scheme and host
//! lower-cased, the default port dropped, and no userinfo, query or fragment
//! (queries carry cache-busters and user ids).
//!
//! The hash is SipHash-2-4 (the `siphasher` crate) of the normalised bytes,
//! with a 128-bit key that is all zeros unless you set one; the label is the
//! top 48 bits in 12 lower-case hex digits. It is the same on every machine,
//! process and crate version. Test vectors (unkeyed):
//!
//! | URL | normalised | label |
//! |---|---|---|
//! | `https://ads.example.com/vast?cb=1` | `https://ads.example.com/vast` | `438ca5eac38d` |
//! | `HTTP://127.0.0.1:8080` | `http://127.0.0.1:8080/` | `a0271f5ff6d3` |
//!
//! (Checked against an independent SipHash-2-4 implementation.)
//!
//! Paths are hashed as the request carries them: `http::Uri` keeps dot
//! segments (`/a/../vast`) that `reqwest::Url` resolves, so the two clients
//! agree on every URL without them.
//!
//! With a secret key (see [`SourceHasher::keyed`]) nobody can hash a list of
//! known ad-server URLs to tell which one a label stands for.
//!
//! # Example
//!
//! ```
//! use vast_metrics::source::{normalise, SourceHasher};
//!
//! let uri: http::Uri = "HTTPS://User:pw@Ads.Example.com:443/vast?cb=123#x".parse().unwrap();
//! assert_eq!(normalise(&uri).as_deref(), Some("https://ads.example.com/vast"));
//! let hasher = SourceHasher::default();
//! assert_eq!(hasher.label_for(&uri), hasher.label_for(&"https://ads.example.com/vast".parse().unwrap()));
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use http::Uri;
use siphasher::sip::SipHasher24;

/// Default cap on distinct source labels per layer: 256. Past it, new
/// sources are recorded as [`OTHER_SOURCE`].
pub const DEFAULT_MAX_SOURCES: usize = 256;

/// Label of sources past the cap, and of requests without a host.
pub const OTHER_SOURCE: &str = "other";

/// A per-request source label, put in the request's extensions; wins over
/// every other way of naming the source.
///
/// ```
/// use vast_metrics::source::SourceLabel;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(SourceLabel::new("backup"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceLabel(Cow<'static, str>);

impl SourceLabel {
    /// A label for this request's source.
    pub fn new(label: impl Into<Cow<'static, str>>) -> Self {
        SourceLabel(label.into())
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The stable, optionally keyed hash behind default source labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceHasher {
    key: [u8; 16],
}

impl SourceHasher {
    /// A hasher keyed with a secret: labels cannot be matched against
    /// hashes of known URLs without it. Keep the key the same across a
    /// fleet so its labels agree.
    pub const fn keyed(key: [u8; 16]) -> Self {
        SourceHasher { key }
    }

    /// Hash of the normalised URL; `None` when the URI has no host.
    pub fn hash_uri(&self, uri: &Uri) -> Option<u64> {
        Some(self.hash_parts(
            uri.scheme_str().unwrap_or("http"),
            uri.host()?,
            uri.port_u16(),
            uri.path(),
        ))
    }

    /// Hash of a URL given by its parts (the query and fragment are not
    /// parts of a source).
    pub fn hash_parts(&self, scheme: &str, host: &str, port: Option<u16>, path: &str) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        write_lowercase(&mut h, scheme.as_bytes());
        h.write(b"://");
        write_lowercase(&mut h, host.as_bytes());
        if let Some(port) = port.filter(|&p| Some(p) != default_port(scheme)) {
            h.write(b":");
            let mut digits = [0u8; 5];
            h.write(port_digits(port, &mut digits));
        }
        h.write(if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        });
        h.finish()
    }

    /// Hash of an already normalised URL string.
    pub fn hash_normalised(&self, normalised: &str) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(normalised.as_bytes());
        h.finish()
    }

    /// The label for a URI: the hash's top 48 bits in hex, or
    /// [`OTHER_SOURCE`] when the URI has no host.
    pub fn label_for(&self, uri: &Uri) -> String {
        self.hash_uri(uri)
            .map_or_else(|| OTHER_SOURCE.to_owned(), label_of_hash)
    }
}

/// The label text of a source hash: 12 lower-case hex digits.
pub fn label_of_hash(hash: u64) -> String {
    format!("{:012x}", hash >> 16)
}

/// The normalised form of a URL: `scheme://host[:port]/path`; `None` when
/// the URI has no host.
pub fn normalise(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(port) = uri.port_u16().filter(|&p| Some(p) != default_port(&scheme)) {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(uri.path());
    Some(out)
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

fn write_lowercase(h: &mut SipHasher24, bytes: &[u8]) {
    // SipHash streams, so writing in pieces equals hashing the whole.
    let mut buf = [0u8; 64];
    for piece in bytes.chunks(buf.len()) {
        let out = &mut buf[..piece.len()];
        out.copy_from_slice(piece);
        out.make_ascii_lowercase();
        h.write(out);
    }
}

fn port_digits(mut port: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (port % 10) as u8;
        port /= 10;
        if port == 0 {
            return &buf[i..];
        }
    }
}

/// Hasher for keys that already are hashes.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Per-source handles of one layer, resolved once per source and capped.
pub(crate) struct SourceTable<T> {
    by_hash: RwLock<HashMap<u64, T, BuildHasherDefault<PassThrough>>>,
    by_name: RwLock<HashMap<Box<str>, T>>,
    len: AtomicUsize,
    max: usize,
}

/// Outcome of a table lookup.
pub(crate) enum Lookup<T> {
    Found(T),
    /// New and under the cap: resolved and stored.
    Added(T),
    /// Past the cap: the caller records it as [`OTHER_SOURCE`].
    Overflow,
}

impl<T: Clone> SourceTable<T> {
    pub(crate) fn new(max: usize) -> Self {
        SourceTable {
            by_hash: RwLock::default(),
            by_name: RwLock::default(),
            len: AtomicUsize::new(0),
            max,
        }
    }

    /// Stores an entry that does not count against the cap (aliases).
    pub(crate) fn preset(&self, hash: u64, value: T) {
        self.by_hash
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, value);
    }

    pub(crate) fn by_hash(&self, hash: u64, resolve: impl FnOnce() -> T) -> Lookup<T> {
        if let Some(v) = self
            .by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
        {
            return Lookup::Found(v.clone());
        }
        if self.full() {
            return Lookup::Overflow;
        }
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(&hash) {
            return Lookup::Found(v.clone());
        }
        if !self.reserve() {
            return Lookup::Overflow;
        }
        let value = resolve();
        map.insert(hash, value.clone());
        Lookup::Added(value)
    }

    pub(crate) fn by_name(&self, name: &str, resolve: impl FnOnce() -> T) -> Lookup<T> {
        if let Some(v) = self
            .by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Lookup::Found(v.clone());
        }
        if self.full() {
            return Lookup::Overflow;
        }
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(name) {
            return Lookup::Found(v.clone());
        }
        if !self.reserve() {
            return Lookup::Overflow;
        }
        let value = resolve();
        map.insert(name.into(), value.clone());
        Lookup::Added(value)
    }

    /// Past the cap, unknown sources skip the write lock.
    fn full(&self) -> bool {
        self.len.load(Ordering::Relaxed) >= self.max
    }

    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn normalisation() {
        let cases = [
            (
                "https://ads.example.com/vast?cb=1",
                "https://ads.example.com/vast",
            ),
            (
                "HTTP://Ads.Example.COM:80/Path/X#frag",
                "http://ads.example.com/Path/X",
            ),
            (
                "https://u:p@ads.example.com:8443/v",
                "https://ads.example.com:8443/v",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("http://[::1]:9000/a", "http://[::1]:9000/a"),
        ];
        for (raw, normalised) in cases {
            assert_eq!(normalise(&uri(raw)).as_deref(), Some(normalised), "{raw}");
            let h = SourceHasher::default();
            assert_eq!(
                h.hash_uri(&uri(raw)),
                Some(h.hash_normalised(normalised)),
                "{raw}"
            );
        }
        assert_eq!(normalise(&uri("/relative?q=1")), None);
    }

    #[test]
    fn hash_test_vectors() {
        // Fixed forever: dashboards and fleets depend on these.
        let h = SourceHasher::default();
        let vectors = [
            ("https://ads.example.com/vast", "438ca5eac38d"),
            ("http://127.0.0.1:8080/", "a0271f5ff6d3"),
        ];
        for (normalised, label) in vectors {
            assert_eq!(
                label_of_hash(h.hash_normalised(normalised)),
                label,
                "{normalised}"
            );
        }
    }

    #[test]
    fn keyed_hashes_differ() {
        let u = uri("https://ads.example.com/vast");
        let plain = SourceHasher::default().label_for(&u);
        let a = SourceHasher::keyed([1; 16]).label_for(&u);
        let b = SourceHasher::keyed([2; 16]).label_for(&u);
        assert_ne!(plain, a);
        assert_ne!(a, b);
        assert_eq!(a, SourceHasher::keyed([1; 16]).label_for(&u));
    }

    #[test]
    fn table_caps_and_presets() {
        let t = SourceTable::new(2);
        t.preset(99, "alias");
        assert!(matches!(t.by_hash(1, || "a"), Lookup::Added("a")));
        assert!(matches!(t.by_hash(1, || "x"), Lookup::Found("a")));
        assert!(matches!(t.by_name("n", || "b"), Lookup::Added("b")));
        assert!(matches!(t.by_hash(3, || "c"), Lookup::Overflow));
        assert!(matches!(t.by_hash(99, || "x"), Lookup::Found("alias")));
    }
}
