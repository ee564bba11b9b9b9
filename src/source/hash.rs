//! The stable, keyable hash behind default labels, and the fast hash of
//! URLs as written that keys the resolver's cache.

use std::hash::Hasher;

use http::Uri;
use siphasher::sip::SipHasher24;

use super::OTHER_SOURCE;

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
    pub(crate) fn hash_parts(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
        path: &str,
    ) -> u64 {
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
    #[cfg(test)]
    pub(crate) fn hash_normalised(&self, normalised: &str) -> u64 {
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
pub(crate) fn label_of_hash(hash: u64) -> String {
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
    pub(super) fn new() -> Self {
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
