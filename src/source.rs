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
//! # Idle sources expire
//!
//! A layer forgets a source (a hash label or a [`SourceLabel`]) idle for
//! longer than its idle expiry ([`DEFAULT_SOURCE_IDLE_EXPIRY`], see
//! [`VastMetricsLayer::source_idle_expiry`](crate::VastMetricsLayer::source_idle_expiry)):
//! its slot under the cap is freed, and its series are released to the
//! backend, which drops them. A source with a request in flight never
//! expires; aliases, the layer's fixed name and `other` never do. A source
//! seen again after it expired starts from zero: Prometheus sees a counter
//! reset, which `rate()` and `increase()` handle.
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_utils::sync::ShardedLock;
use std::time::Duration;

use http::Uri;
use siphasher::sip::SipHasher24;

/// Default cap on distinct source labels per layer: 256. Past it, new
/// sources are recorded as [`OTHER_SOURCE`].
pub const DEFAULT_MAX_SOURCES: usize = 256;

/// Default idle expiry of a source: 10 minutes. A source without requests
/// for that long (none in flight) is forgotten, freeing its slot under the
/// cap and its series.
pub const DEFAULT_SOURCE_IDLE_EXPIRY: Duration = Duration::from_secs(600);

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

    /// Hash of a name (a label given by the user, an event type): its own
    /// domain, never equal to a URL's input (a URL's starts with ASCII).
    pub(crate) fn hash_name(&self, name: &str) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(&[0xFF]);
        h.write(name.as_bytes());
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

/// A request URL that can be hashed into a source label.
pub(crate) trait UrlHash {
    /// The keyed hash of the normalised URL (the label's source).
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64>;
    /// A fast hash of the URL's scheme, authority and path as written: the
    /// key of the resolver's cache of [`hash_with`](Self::hash_with).
    fn raw_key(&self, raw: &RawHasher) -> u64;
}

impl UrlHash for Uri {
    #[inline]
    fn hash_with(&self, hasher: &SourceHasher) -> Option<u64> {
        hasher.hash_uri(self)
    }

    #[inline]
    fn raw_key(&self, raw: &RawHasher) -> u64 {
        raw.hash(
            self.scheme_str().unwrap_or(""),
            self.authority().map_or("", |a| a.as_str()),
            self.path(),
        )
    }
}

/// Hashes URLs as written, fast, with a per-resolver random seed: a cache
/// key, never a label (labels come from [`SourceHasher`]).
pub(crate) struct RawHasher(foldhash::fast::RandomState);

impl RawHasher {
    fn new() -> Self {
        RawHasher(foldhash::fast::RandomState::default())
    }

    #[inline]
    pub(crate) fn hash(&self, scheme: &str, authority: &str, path: &str) -> u64 {
        use std::hash::BuildHasher;
        let mut h = self.0.build_hasher();
        // Lengths first: the three parts cannot run into each other.
        h.write_usize(scheme.len());
        h.write_usize(authority.len());
        h.write(scheme.as_bytes());
        h.write(authority.as_bytes());
        h.write(path.as_bytes());
        h.finish()
    }
}

/// URLs as written (their [`RawHasher`] hash) -> source hash: a URL seen
/// before skips URI parsing and SipHash. At most this many per source slot
/// (the same source written with another case, port or user info).
const RAW_PER_SOURCE: usize = 4;

/// An alias given for a URL that cannot label anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AliasError {
    /// The URL does not parse.
    #[error("the aliased URL does not parse")]
    InvalidUrl(#[source] http::uri::InvalidUri),
    /// The URL has no host, so no request can match it.
    #[error("the aliased URL has no host")]
    NoHost,
}

/// How one layer names its sources: the configuration of a
/// [`SourceResolver`].
#[derive(Clone, Debug)]
pub(crate) struct SourceConfig {
    pub(crate) hasher: SourceHasher,
    pub(crate) max: usize,
    pub(crate) fixed: Option<Cow<'static, str>>,
    /// An aliased URL (with a host), and its alias.
    pub(crate) aliases: Vec<(Uri, Cow<'static, str>)>,
    /// How long a source may stay idle before it expires; `None`: never.
    /// Applies to resolvers made [`SourceResolver::expiring`] only.
    pub(crate) idle_expiry: Option<Duration>,
}

impl SourceConfig {
    pub(crate) fn new(max: usize) -> Self {
        SourceConfig {
            hasher: SourceHasher::default(),
            max,
            fixed: None,
            aliases: Vec::new(),
            idle_expiry: Some(DEFAULT_SOURCE_IDLE_EXPIRY),
        }
    }

    /// Adds an alias for `url`.
    pub(crate) fn alias(&mut self, url: &str, alias: Cow<'static, str>) -> Result<(), AliasError> {
        let uri: Uri = url.parse().map_err(AliasError::InvalidUrl)?;
        if uri.host().is_none() {
            return Err(AliasError::NoHost);
        }
        self.aliases.push((uri, alias));
        Ok(())
    }
}

/// One table entry: a label, and its handles once first used.
struct Entry<T> {
    /// Shared with the handles made for it.
    label: Arc<str>,
    value: OnceLock<Arc<T>>,
    /// Counts against the cap and may expire (all but aliases).
    counted: bool,
    /// When last used, in [`Expiry`] milliseconds; updated at most once
    /// per tick.
    used: AtomicU64,
}

/// Handles of an expired source, given back by the resolver's owner.
type Release<T> = Box<dyn Fn(&T) + Send + Sync>;

/// Idle expiry of a resolver's sources, on a coarse clock: milliseconds
/// since the resolver was made, read with `quanta` (no system call).
struct Expiry<T> {
    epoch: quanta::Instant,
    /// Idle time after which a source expires, in milliseconds.
    after: u64,
    /// Granularity: `used` is stored at most once per tick per entry, and
    /// sources arriving sweep at most once per tick.
    tick: u64,
    /// When the table was last swept.
    swept: AtomicU64,
    release: Release<T>,
}

impl<T> Expiry<T> {
    fn new(after: Duration, release: Release<T>) -> Self {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        Expiry {
            epoch: quanta::Instant::now(),
            after,
            tick: (after / 8).clamp(1, 1000),
            swept: AtomicU64::new(0),
            release,
        }
    }

    /// Milliseconds from the epoch to `at`.
    #[inline]
    fn ms(&self, at: quanta::Instant) -> u64 {
        let elapsed = at.duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a use: one relaxed store at most once per tick; `true` when
    /// it stored.
    #[inline]
    fn touch(&self, used: &AtomicU64, now: u64) -> bool {
        let stale = now.saturating_sub(used.load(Ordering::Relaxed)) >= self.tick;
        if stale {
            used.store(now, Ordering::Relaxed);
        }
        stale
    }

    /// Whether an entry last stored `used` has surely been idle for
    /// `after` (its last use was at most a tick past `used`).
    fn idle(&self, used: u64, now: u64) -> bool {
        now.saturating_sub(used) > self.after.saturating_add(self.tick)
    }

    /// Claims a sweep if none ran for `every` milliseconds.
    fn claim(&self, now: u64, every: u64) -> bool {
        let last = self.swept.load(Ordering::Relaxed);
        now.saturating_sub(last) >= every
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Names the source of each request and holds its handles: precedence
/// ([`SourceLabel`] extension, fixed name, alias, hash, [`OTHER_SOURCE`]),
/// normalisation and keyed hashing ([`SourceHasher`]), the cap and its
/// overflow, in one table keyed by hash. Serves tracking event types too
/// (by name).
///
/// Made [`expiring`](Self::expiring), it forgets sources idle past the
/// configured expiry whose handles no request holds: when a new source
/// arrives (at most once per tick), and from a known source's request at
/// most once per expiry period.
pub(crate) struct SourceResolver<T> {
    config: SourceConfig,
    /// Read on every request from every core: a lock sharded per thread,
    /// so readers do not share a cache line; a new source locks all shards.
    table: ShardedLock<Tables<T>>,
    /// Under the table's lock: see [`RAW_PER_SOURCE`].
    raw: RawHasher,
    /// Entries that count against the cap (all but aliases).
    counted: AtomicUsize,
    fixed: OnceLock<Arc<T>>,
    other: OnceLock<Arc<T>>,
    expiry: Option<Expiry<T>>,
}

/// The sources by hash, and the cache of URLs as written.
struct Tables<T> {
    by_hash: HashMap<u64, Entry<T>, BuildHasherDefault<PassThrough>>,
    by_raw: HashMap<u64, u64, BuildHasherDefault<PassThrough>>,
}

impl<T> SourceResolver<T> {
    pub(crate) fn new(config: SourceConfig) -> Self {
        let table = config
            .aliases
            .iter()
            .filter_map(|(uri, alias)| {
                let entry = Entry {
                    label: alias.as_ref().into(),
                    value: OnceLock::new(),
                    counted: false,
                    used: AtomicU64::new(0),
                };
                Some((config.hasher.hash_uri(uri)?, entry))
            })
            .collect();
        SourceResolver {
            config,
            table: ShardedLock::new(Tables {
                by_hash: table,
                by_raw: HashMap::default(),
            }),
            raw: RawHasher::new(),
            counted: AtomicUsize::new(0),
            fixed: OnceLock::new(),
            other: OnceLock::new(),
            expiry: None,
        }
    }

    /// Expires idle sources as configured, giving each expired source's
    /// handles to `release` (which tells the backend it may drop them).
    pub(crate) fn expiring(mut self, release: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.expiry = self
            .config
            .idle_expiry
            .map(|after| Expiry::new(after, Box::new(release)));
        self
    }

    /// The handles of a request's source, made by `make` from its label
    /// the first time; `overflow` is called for each source past the cap.
    /// `at` is the request's start: the clock read the idle expiry uses.
    #[inline]
    pub(crate) fn resolve(
        &self,
        label: Option<&SourceLabel>,
        url: &dyn UrlHash,
        at: quanta::Instant,
        make: impl Fn(&Arc<str>) -> T,
        overflow: impl FnOnce(),
    ) -> Arc<T> {
        if let Some(label) = label {
            let hash = self.config.hasher.hash_name(label.as_str());
            return self.lookup(hash, Some(label.as_str()), Some(at), make, overflow);
        }
        if let Some(fixed) = &self.config.fixed {
            return self
                .fixed
                .get_or_init(|| Arc::new(make(&Arc::from(&**fixed))))
                .clone();
        }
        // A URL seen before: one lock, no parsing, no SipHash.
        let raw = url.raw_key(&self.raw);
        let now = self.now(Some(at));
        let room = {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hash) = table.by_raw.get(&raw).copied() {
                if let Some((found, sweep)) = self.known(&table, hash, None, now, &make) {
                    drop(table);
                    if sweep {
                        self.sweep(now);
                    }
                    return found;
                }
            }
            table.by_raw.len() < self.raw_capacity()
        };
        let Some(hash) = url.hash_with(&self.config.hasher) else {
            return self.other(make);
        };
        let found = self.lookup(hash, None, Some(at), make, overflow);
        // Past the cap (`other`), or with the cache full, a URL is not
        // cached: it takes the slow path, without the write lock.
        if room && !self.other.get().is_some_and(|o| Arc::ptr_eq(o, &found)) {
            self.remember(raw, hash);
        }
        found
    }

    /// The handles of a name (a [`SourceLabel`], an event type).
    pub(crate) fn by_name(
        &self,
        name: &str,
        make: impl Fn(&Arc<str>) -> T,
        overflow: impl FnOnce(),
    ) -> Arc<T> {
        let hash = self.config.hasher.hash_name(name);
        self.lookup(hash, Some(name), None, make, overflow)
    }

    /// The expiry clock at `at` (or now); 0 without expiry.
    #[inline]
    fn now(&self, at: Option<quanta::Instant>) -> u64 {
        self.expiry.as_ref().map_or(0, |expiry| {
            expiry.ms(at.unwrap_or_else(quanta::Instant::now))
        })
    }

    /// The handles of a source already in the table, and whether the
    /// caller should sweep once the table is unlocked.
    #[inline]
    fn known(
        &self,
        table: &Tables<T>,
        hash: u64,
        name: Option<&str>,
        now: u64,
        make: &impl Fn(&Arc<str>) -> T,
    ) -> Option<(Arc<T>, bool)> {
        let entry = table.by_hash.get(&hash)?;
        if name.is_some_and(|n| *entry.label != *n) {
            return None;
        }
        let found = entry
            .value
            .get_or_init(|| Arc::new(make(&entry.label)))
            .clone();
        // Rarely (at most once per expiry period, from a request that
        // moved its source's clock): forget idle sources without waiting
        // for a new one.
        let sweep = self.expiry.as_ref().is_some_and(|expiry| {
            expiry.touch(&entry.used, now) && expiry.claim(now, expiry.after.max(1000))
        });
        Some((found, sweep))
    }

    fn lookup(
        &self,
        hash: u64,
        name: Option<&str>,
        at: Option<quanta::Instant>,
        make: impl Fn(&Arc<str>) -> T,
        overflow: impl FnOnce(),
    ) -> Arc<T> {
        let now = self.now(at);
        {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            if let Some((found, sweep)) = self.known(&table, hash, name, now, &make) {
                drop(table);
                if sweep {
                    self.sweep(now);
                }
                return found;
            }
        }
        // A name is compared in full: two names never share handles, even
        // when their 64-bit hashes collide (the second is then `other`).
        let matches = |e: &Entry<T>| name.is_none_or(|n| *e.label == *n);
        // A new source (or a colliding name): sweep first, at most once per
        // tick, so that expired sources free their slots.
        if let Some(expiry) = &self.expiry {
            if expiry.claim(now, expiry.tick) {
                self.sweep(now);
            }
        }
        if self.counted.load(Ordering::Relaxed) >= self.config.max {
            overflow();
            return self.other(make);
        }
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let entry = match table.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(e) if matches(e.get()) => e.into_mut(),
            std::collections::hash_map::Entry::Occupied(_) => {
                drop(table);
                overflow();
                return self.other(make);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                if self.counted.load(Ordering::Relaxed) >= self.config.max {
                    drop(table);
                    overflow();
                    return self.other(make);
                }
                self.counted.fetch_add(1, Ordering::Relaxed);
                let label = match name {
                    Some(name) => name.into(),
                    None => label_of_hash(hash).into(),
                };
                e.insert(Entry {
                    label,
                    value: OnceLock::new(),
                    counted: true,
                    used: AtomicU64::new(now),
                })
            }
        };
        if let Some(expiry) = &self.expiry {
            expiry.touch(&entry.used, now);
        }
        entry
            .value
            .get_or_init(|| Arc::new(make(&entry.label)))
            .clone()
    }

    /// Caches the source hash of a URL as written, if its source has a
    /// table entry and the cache has room.
    #[cold]
    fn remember(&self, raw: u64, hash: u64) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.by_raw.len() < self.raw_capacity() && table.by_hash.contains_key(&hash) {
            table.by_raw.insert(raw, hash);
        }
    }

    /// How many URLs as written the cache holds at most.
    fn raw_capacity(&self) -> usize {
        self.config.max.saturating_add(16) * RAW_PER_SOURCE
    }

    /// Forgets the sources idle past the expiry that no request holds, and
    /// releases their handles (after the table is unlocked: a source seen
    /// again meanwhile gets new handles, and the backend keeps a series
    /// while any handle of its source is held).
    #[cold]
    fn sweep(&self, now: u64) {
        let Some(expiry) = &self.expiry else {
            return;
        };
        let mut expired = Vec::new();
        {
            let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
            // Under the write lock nobody can clone a handle: a count of
            // one is the table's own, so no request is in flight. A source
            // in flight counts as used now: its idle time starts again.
            let idle = |e: &Entry<T>| {
                if e.value.get().is_some_and(|v| Arc::strong_count(v) > 1) {
                    e.used.store(now, Ordering::Relaxed);
                    return false;
                }
                e.counted && expiry.idle(e.used.load(Ordering::Relaxed), now)
            };
            let keys: Vec<u64> = table
                .by_hash
                .iter()
                .filter(|(_, e)| idle(e))
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                if let Some(entry) = table.by_hash.remove(&key) {
                    self.counted.fetch_sub(1, Ordering::Relaxed);
                    expired.extend(entry.value.into_inner());
                }
            }
            let Tables { by_hash, by_raw } = &mut *table;
            by_raw.retain(|_, hash| by_hash.contains_key(hash));
            if by_hash.capacity() > 64 && by_hash.len() < by_hash.capacity() / 4 {
                by_hash.shrink_to_fit();
            }
            if by_raw.capacity() > 64 && by_raw.len() < by_raw.capacity() / 4 {
                by_raw.shrink_to_fit();
            }
        }
        for handles in expired {
            (expiry.release)(&handles);
        }
    }

    fn other(&self, make: impl FnOnce(&Arc<str>) -> T) -> Arc<T> {
        self.other
            .get_or_init(|| Arc::new(make(&Arc::from(OTHER_SOURCE))))
            .clone()
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
    fn resolver_caps_presets_and_precedence() {
        let mut config = SourceConfig::new(2);
        config
            .alias("http://alias.example/vast?x=1", "aliased".into())
            .unwrap();
        assert!(matches!(
            config.alias("http://[bad", "x".into()),
            Err(AliasError::InvalidUrl(_))
        ));
        assert!(matches!(
            config.alias("/relative", "x".into()),
            Err(AliasError::NoHost)
        ));
        let r = SourceResolver::<String>::new(config);
        let overflows = std::cell::Cell::new(0);
        let resolve = |url: &str, label: Option<SourceLabel>| {
            r.resolve(
                label.as_ref(),
                &uri(url),
                quanta::Instant::now(),
                |l: &Arc<str>| l.to_string(),
                || overflows.set(overflows.get() + 1),
            )
        };
        assert_eq!(*resolve("http://alias.example/vast?cb=2", None), "aliased");
        assert_eq!(
            *resolve("http://a.example/", None),
            label_of_hash(SourceHasher::default().hash_normalised("http://a.example/"))
        );
        assert_eq!(
            *resolve("http://a.example/?q", Some(SourceLabel::new("named"))),
            "named"
        );
        // The cap (2) is reached; the alias did not count.
        assert_eq!(*resolve("http://b.example/", None), "other");
        assert_eq!(
            *resolve("http://b.example/", Some(SourceLabel::new("x"))),
            "other"
        );
        assert_eq!(overflows.get(), 2);
        assert_eq!(*resolve("http://alias.example/vast", None), "aliased");
        assert_eq!(*resolve("/no-host", None), "other");
    }

    #[test]
    fn idle_sources_expire_unless_held() {
        let mut config = SourceConfig::new(2);
        config.idle_expiry = Some(Duration::from_millis(10));
        config
            .alias("http://alias.example/", "aliased".into())
            .unwrap();
        let released = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let r = SourceResolver::<String>::new(config).expiring({
            let released = released.clone();
            move |label: &String| released.lock().unwrap().push(label.clone())
        });
        let resolve = |url: &str| {
            r.resolve(
                None,
                &uri(url),
                quanta::Instant::now(),
                |l: &Arc<str>| l.to_string(),
                || (),
            )
        };
        let held = resolve("http://a.example/");
        resolve("http://alias.example/");
        let named = r.by_name("named", |l: &Arc<str>| l.to_string(), || ());
        drop(named);
        assert_eq!(*resolve("http://b.example/"), "other");
        std::thread::sleep(Duration::from_millis(50));
        // "named" expires (idle, not held) and frees a slot; "a" is held.
        let c = resolve("http://c.example/");
        assert_eq!(
            *c,
            label_of_hash(SourceHasher::default().hash_normalised("http://c.example/"))
        );
        assert_eq!(*released.lock().unwrap(), ["named"]);
        assert_eq!(*resolve("http://d.example/"), "other");
        drop((held, c));
        std::thread::sleep(Duration::from_millis(50));
        assert_ne!(*resolve("http://d.example/"), "other");
        let mut released = released.lock().unwrap().clone();
        released.sort();
        assert_eq!(released.len(), 3);
        assert!(released.contains(&"named".to_owned()));
        assert_eq!(*resolve("http://alias.example/"), "aliased");
    }
}
