//! [`SourceResolver`]: one table that names each request's source and
//! holds its handles, with the cap, the overflow and idle expiry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_utils::sync::ShardedLock;
use http::Uri;

use super::expiry::Expiry;
use super::hash::{label_of_hash, PassThrough, RawHasher, SourceHasher, UrlHash};
use super::{AliasError, SourceLabel, DEFAULT_SOURCE_IDLE_EXPIRY, OTHER_SOURCE};

/// URLs as written (their [`RawHasher`] hash) -> source hash: a URL seen
/// before skips URI parsing and SipHash. At most this many per source slot
/// (the same source written with another case, port or user info).
const RAW_PER_SOURCE: usize = 4;

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
