//! Streaming VAST inspection: is the body VAST, and does it carry an ad?
//!
//! The verdict is a strict XML parser's, as a player's parser would give
//! it, checked to the last byte and proven against `roxmltree` in the
//! tests (`tests/vast_oracle.rs`, `tests/fuzz_corpus.rs`):
//!
//! - Not well-formed XML is [`VastVerdict::InvalidXml`] (IAB 100): bytes
//!   that are not UTF-8, characters XML 1.0 forbids (U+0001, `&#0;`,
//!   `&#xD800;`), undefined entities (`&nbsp;`), a bare `&`, `<` in an
//!   attribute value, mismatched end tags, duplicate attributes (after
//!   namespace resolution), unbound namespace prefixes, anything but
//!   comments, processing instructions and white space after the root.
//! - **Encodings.** Bodies are read as UTF-8, whatever the XML declaration
//!   says: VAST is served as UTF-8, and a body that is not UTF-8 is
//!   `InvalidXml` (so a UTF-16 body, and an `ISO-8859-1` one with a byte
//!   past ASCII; an `ISO-8859-1` body in plain ASCII is accepted, as it is
//!   the same text). A leading UTF-8 byte-order mark is skipped.
//! - **DTDs.** A document type declaration makes the body `InvalidXml`:
//!   VAST has none (its schema is an XSD), and a DTD is how entity
//!   expansion (billion laughs) and external entities (XXE) get in, so,
//!   as hardened parsers (roxmltree's default, .NET's `XmlReader`) do,
//!   the crate refuses it rather than declare, expand or fetch anything.
//!   Only the five predefined entities and character references exist.
//! - Well-formed, but the root is neither `<VAST>` nor VAST 1.0's
//!   `<VideoAdServingTemplate>`: [`VastVerdict::NotVast`] (IAB 101).
//! - **Versions.** `<VAST version="...">` with major version 2, 3 or 4
//!   (`2.0`, `3.0`, `4`, `4.2`, …), or no `version` attribute at all, is
//!   supported; any other value (`9.0`, `1.0`, `four`) is
//!   [`VastVerdict::UnsupportedVersion`] (IAB 102), as a player rejects
//!   it. `<VideoAdServingTemplate>` is VAST 1.0 and needs no attribute.
//! - Otherwise the `<Ad>` children of the root are counted by their first
//!   child, `<InLine>` or `<Wrapper>`, in every version.
//!
//! Hostile bodies cost one pass: nothing is expanded or fetched, and memory
//! grows only with the depth of open elements and namespace declarations
//! (plus one copy of a body that came in several frames). Each thread keeps
//! the buffers of its last scan, up to 16 KiB, for the next one.
//!
//! # Example
//!
//! ```
//! use vast_metrics::vast::{inspect, wrapper_target, VastVerdict};
//!
//! let doc = br#"<VAST version="4.2"><Ad id="1"><InLine></InLine></Ad></VAST>"#;
//! assert_eq!(inspect(doc), VastVerdict::Ads { inline: 1, wrapper: 0 });
//! assert_eq!(inspect(br#"<VAST version="4.2"/>"#), VastVerdict::NoAd);
//! assert_eq!(inspect(b"<html>"), VastVerdict::InvalidXml);
//! assert_eq!(inspect(b"<AdTitle>Tom & Jerry</AdTitle>").iab_code(), Some(100));
//! assert_eq!(inspect(b"<html/>").iab_code(), Some(101));
//! assert_eq!(inspect(br#"<VAST version="9.0"/>"#).iab_code(), Some(102));
//! assert_eq!(inspect(b""), VastVerdict::Empty);
//!
//! let wrapper = br#"<VAST version="4.2"><Ad><Wrapper fallbackOnNoAd="true">
//!   <VASTAdTagURI><![CDATA[ https://ads.example/vast?a=1&b=2 ]]></VASTAdTagURI>
//! </Wrapper></Ad></VAST>"#;
//! let target = wrapper_target(wrapper).unwrap();
//! assert_eq!(target.uri, "https://ads.example/vast?a=1&b=2");
//! assert!(target.follow_additional_wrappers);
//! assert_eq!(target.fallback_on_no_ad, Some(true));
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Buf;

use crate::classify::{ErrorType, Outcome};

/// Default cap on the bytes the layer retains for inspection: 1 MiB. Past
/// it the verdict is the HTTP one.
pub const DEFAULT_INSPECT_LIMIT: usize = 1024 * 1024;

/// What a body turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VastVerdict {
    /// A VAST document with at least one `<Ad>`.
    Ads {
        /// `<Ad>`s with an `<InLine>`.
        inline: u32,
        /// `<Ad>`s with a `<Wrapper>`.
        wrapper: u32,
    },
    /// A VAST document without an `<Ad>`: no fill.
    NoAd,
    /// Not well-formed XML (IAB 100).
    InvalidXml,
    /// Well-formed XML whose root is not `<VAST>` nor
    /// `<VideoAdServingTemplate>` (IAB 101).
    NotVast,
    /// A `<VAST>` root whose `version` is not 2.x, 3.x or 4.x (IAB 102).
    UnsupportedVersion,
    /// No bytes at all.
    Empty,
}

impl VastVerdict {
    /// The outcome of a 2xx fetch with this body: the three IAB errors are
    /// all the contract's `invalid_xml`.
    pub fn outcome(self) -> Outcome {
        match self {
            VastVerdict::Ads { .. } => Outcome::Ad,
            VastVerdict::NoAd => Outcome::NoAd,
            VastVerdict::InvalidXml | VastVerdict::NotVast | VastVerdict::UnsupportedVersion => {
                Outcome::Failure(ErrorType::InvalidXml)
            }
            VastVerdict::Empty => Outcome::Failure(ErrorType::EmptyBody),
        }
    }

    /// Whether the body is a VAST document a player accepts.
    pub fn is_vast(self) -> bool {
        matches!(self, VastVerdict::Ads { .. } | VastVerdict::NoAd)
    }

    /// The IAB VAST error code of a rejected document: 100 (not
    /// well-formed), 101 (not VAST) or 102 (version not supported).
    pub fn iab_code(self) -> Option<u16> {
        match self {
            VastVerdict::InvalidXml => Some(100),
            VastVerdict::NotVast => Some(101),
            VastVerdict::UnsupportedVersion => Some(102),
            _ => None,
        }
    }
}

/// What one scan of a body found: the verdict, and what a fetcher needs
/// from the document (the pod, its seconds of linear ads, where a wrapper
/// sends the player next), read in the same pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// What the body is.
    pub verdict: VastVerdict,
    /// `<Ad>` children of the root: the pod's size (0 without an ad).
    pub ads: u32,
    /// The sum of the `<Duration>`s of the linear creatives of `<InLine>`
    /// ads (`InLine/Creatives/Creative/Linear/Duration`; VAST 1:
    /// `InLine/Video/Duration`).
    pub linear: Duration,
    /// Linear creatives of `<InLine>` ads whose first `<Duration>` is
    /// missing or not `HH:MM:SS` / `HH:MM:SS.mmm`: they add nothing to
    /// [`linear`](Self::linear).
    pub bad_durations: u32,
    /// Where the first `<Ad>` whose first child is a `<Wrapper>` sends
    /// the player: `None` without one, or when that wrapper names no URI.
    pub wrapper: Option<WrapperTarget>,
}

impl Inspection {
    /// Inspects a whole body held in one slice.
    pub fn of(body: &[u8]) -> Inspection {
        if body.is_empty() {
            return Inspection::verdict(VastVerdict::Empty);
        }
        scan(body)
    }

    /// Inspects a body held in several buffers (the frames of a stream):
    /// what [`Inspection::of`] gives on the joined bytes. One frame is read
    /// in place, several are joined into one copy (as long as the body,
    /// which the layer bounds with its inspection cap).
    pub fn of_chunks<D: Buf + Clone>(chunks: &[D]) -> Inspection {
        let mut filled = chunks.iter().filter(|c| c.has_remaining());
        match (filled.next(), filled.next()) {
            (None, _) => Inspection::verdict(VastVerdict::Empty),
            (Some(one), None) if one.chunk().len() == one.remaining() => scan(one.chunk()),
            _ => {
                let mut joined = Vec::with_capacity(chunks.iter().map(Buf::remaining).sum());
                for c in chunks {
                    if c.chunk().len() == c.remaining() {
                        joined.extend_from_slice(c.chunk());
                    } else {
                        // A split `Buf` (a `Chain`, say) is read from a copy.
                        let mut c = c.clone();
                        while c.has_remaining() {
                            let n = c.chunk().len();
                            joined.extend_from_slice(c.chunk());
                            c.advance(n);
                        }
                    }
                }
                scan(&joined)
            }
        }
    }

    /// A body that is only its verdict: nothing else was read from it.
    pub(crate) fn verdict(verdict: VastVerdict) -> Inspection {
        Inspection {
            verdict,
            ads: 0,
            linear: Duration::ZERO,
            bad_durations: 0,
            wrapper: None,
        }
    }
}

/// Inspects a whole body held in one slice: [`Inspection::of`]'s verdict.
pub fn inspect(body: &[u8]) -> VastVerdict {
    Inspection::of(body).verdict
}

/// Inspects a body held in several buffers: [`Inspection::of_chunks`]'s
/// verdict.
pub fn inspect_chunks<D: Buf + Clone>(chunks: &[D]) -> VastVerdict {
    Inspection::of_chunks(chunks).verdict
}

fn scan(doc: &[u8]) -> Inspection {
    if !chars_ok(doc) {
        return Inspection::verdict(VastVerdict::InvalidXml);
    }
    SPARE.with(|spare| match spare.try_borrow_mut() {
        Ok(mut b) => {
            let verdict = parse(doc, &mut b);
            if b.bytes() > Buffers::KEEP {
                *b = Buffers::new();
            } else {
                b.clear();
            }
            verdict
        }
        // Not reached (a scan does not start another one), but fine.
        Err(_) => parse(doc, &mut Buffers::new()),
    })
}

fn parse(doc: &[u8], b: &mut Buffers) -> Inspection {
    let mut p = Parser::new(doc, b);
    if p.document().is_err() {
        return Inspection::verdict(VastVerdict::InvalidXml);
    }
    let verdict = match p.root {
        Root::Other => VastVerdict::NotVast,
        Root::Vast { supported: false } => VastVerdict::UnsupportedVersion,
        Root::Vast { supported: true } if p.ads == 0 => VastVerdict::NoAd,
        Root::Vast { supported: true } => VastVerdict::Ads {
            inline: p.inline,
            wrapper: p.wrapper,
        },
    };
    if !verdict.is_vast() {
        return Inspection::verdict(verdict);
    }
    Inspection {
        verdict,
        ads: p.ads,
        linear: Duration::from_millis(p.linear_ms),
        bad_durations: p.bad_durations,
        wrapper: match p.first_wrapper {
            FirstWrapper::Done(target) => target,
            _ => None,
        },
    }
}

fn supported_version(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let mut parts = value.split(|&b| b == b'.');
    let major = parts.next().unwrap_or_default();
    matches!(major, b"2" | b"3" | b"4")
        && parts.all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
}

/// Whether `doc` is UTF-8 made only of characters XML 1.0 allows
/// (`Char`). Every character of a well-formed document is one, so this is
/// checked once, up front.
fn chars_ok(doc: &[u8]) -> bool {
    // One branch-free (vectorised) pass for the usual body, ASCII without
    // a control but tab, LF and CR: as a signed byte, any other byte is
    // below 0x20.
    let mut odd = false;
    for &b in doc {
        odd |= ((b as i8) < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
    }
    if !odd {
        return true;
    }
    let bad_control = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
    !doc.iter().any(|&b| bad_control(b))
        && std::str::from_utf8(doc).is_ok()
        && !memchr::memchr_iter(0xEF, doc).any(|at| {
            doc.get(at + 1) == Some(&0xBF) && matches!(doc.get(at + 2), Some(0xBE | 0xBF))
        })
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    match c as u32 {
        0..0x20 => matches!(c, '\t' | '\n' | '\r'),
        0xFFFE | 0xFFFF => false,
        _ => true,
    }
}

fn is_name_start_byte(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b':' | b'_')
}

#[inline]
fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[b as usize]
}

/// How many ASCII name bytes but the colon `rest` starts with. Unrolled:
/// a byte costs a load, a table look-up and a branch.
#[inline(always)]
fn plain_name_len(rest: &[u8]) -> usize {
    let plain = |b: u8| PLAIN_NAME[b as usize];
    let mut i = 0;
    while let [a, b, c, d, ..] = rest[i..] {
        if !plain(a) {
            return i;
        }
        if !plain(b) {
            return i + 1;
        }
        if !plain(c) {
            return i + 2;
        }
        if !plain(d) {
            return i + 3;
        }
        i += 4;
    }
    i + rest[i..]
        .iter()
        .position(|&b| !plain(b))
        .unwrap_or(rest.len() - i)
}

/// Where an attribute value in double, or single, quotes needs a look.
const VALUE_STOPS: [[bool; 256]; 2] = {
    let mut t = [[false; 256]; 2];
    t[0][b'"' as usize] = true;
    t[1][b'\'' as usize] = true;
    t[0][b'<' as usize] = true;
    t[1][b'<' as usize] = true;
    t[0][b'&' as usize] = true;
    t[1][b'&' as usize] = true;
    t
};

/// ASCII name bytes but the colon.
const PLAIN_NAME: [bool; 256] = {
    let mut t = NAME_BYTES;
    t[b':' as usize] = false;
    t
};

/// ASCII name bytes, colon included.
const NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 128 {
        t[b] =
            matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b':' | b'_' | b'-' | b'.');
        b += 1;
    }
    t
};

/// A 6-bit hash of a (non-empty) local name: its length, first, second
/// and last bytes. No multiply: the sum is all a bit set needs.
#[inline]
fn local_hash(local: &[u8]) -> u32 {
    let n = local.len();
    let byte = |i: usize| u32::from(local[i]);
    (byte(0) + byte(1.min(n - 1)) * 3 + byte(n - 1) * 7 + n as u32 * 13) & 63
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = LO * 0x80;

/// The 8 bytes of `buf` at `at`, if there are 8, as one word (byte `i`
/// in bits `8i..8i+8`).
#[inline]
fn word(buf: &[u8], at: usize) -> Option<u64> {
    let w = buf.get(at..at + 8)?;
    Some(u64::from_le_bytes(w.try_into().ok()?))
}

/// The high bit of each byte of `w` equal to `b`. Exact up to the first
/// one, which is all a search reads: a borrow only marks bytes after it.
#[inline]
fn eq_bytes(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

/// Where the first `a`, `b` or `c` of `hay` is: a word at a time over the
/// first bytes (many runs, text and values, end there, and a `memchr` call
/// costs more), `memchr` past them.
#[inline]
fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < 16 {
        let Some(w) = word(hay, i) else { break };
        let m = eq_bytes(w, a) | eq_bytes(w, b) | eq_bytes(w, c);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr3(a, b, c, &hay[i..]).map(|j| i + j)
}

/// XML 1.0 (fifth edition) `NameStartChar`.
fn is_name_start_char(c: char) -> bool {
    match c as u32 {
        // U+0080 included: the byte test rejects it, as the oracle does.
        0..=0x80 => is_name_start_byte(c as u8),
        0xC0..=0xD6
        | 0xD8..=0xF6
        | 0xF8..=0x2FF
        | 0x370..=0x37D
        | 0x37F..=0x1FFF
        | 0x200C..=0x200D
        | 0x2070..=0x218F
        | 0x2C00..=0x2FEF
        | 0x3001..=0xD7FF
        | 0xF900..=0xFDCF
        | 0xFDF0..=0xFFFD
        | 0x10000..=0xEFFFF => true,
        _ => false,
    }
}

/// XML 1.0 (fifth edition) `NameChar`.
fn is_name_char(c: char) -> bool {
    match c as u32 {
        0..=0x80 => is_name_byte(c as u8),
        0xB7 | 0x300..=0x36F | 0x203F..=0x2040 => true,
        _ => is_name_start_char(c),
    }
}

/// Whether a (valid UTF-8) name begins with a `NameStartChar`.
#[inline]
fn starts_name(name: &[u8]) -> bool {
    match name.first() {
        None => false,
        Some(&b) if b < 0x80 => is_name_start_byte(b),
        Some(_) => std::str::from_utf8(&name[..utf8_len(name[0]).min(name.len())])
            .ok()
            .and_then(|s| s.chars().next())
            .is_some_and(is_name_start_char),
    }
}

const XML_URI: &[u8] = b"http://www.w3.org/XML/1998/namespace";
const XMLNS_URI: &[u8] = b"http://www.w3.org/2000/xmlns/";

/// Not well-formed.
struct Bad;

type Res<T = ()> = Result<T, Bad>;

/// A read position in the document.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn peek_at(&self, i: usize) -> Option<u8> {
        self.buf.get(self.pos + i).copied()
    }

    #[inline]
    fn starts_with(&self, lit: &[u8]) -> bool {
        self.rest().starts_with(lit)
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Consumes `lit` or fails.
    #[inline]
    fn expect(&mut self, lit: &[u8]) -> Res {
        if self.starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// Consumes a copy of `buf[from..to]` (at most 16 bytes compared at
    /// once) or fails.
    #[inline]
    fn expect_copy(&mut self, from: usize, to: usize) -> Res {
        let n = to - from;
        let pos = self.pos;
        match (self.buf.get(from..from + 16), self.buf.get(pos..pos + 16)) {
            (Some(a), Some(b)) if (1..=16).contains(&n) => {
                let a = u128::from_le_bytes(a.try_into().unwrap_or_default());
                let b = u128::from_le_bytes(b.try_into().unwrap_or_default());
                if (a ^ b) & (u128::MAX >> (128 - 8 * n)) != 0 {
                    return Err(Bad);
                }
                self.pos += n;
                Ok(())
            }
            _ => self.expect(&self.buf[from..to]),
        }
    }

    /// Moves to `found` bytes on, or to the end: a `memchr` answer.
    #[inline]
    fn skip_to(&mut self, found: Option<usize>) -> Option<u8> {
        match found {
            Some(i) => {
                self.pos += i;
                Some(self.buf[self.pos])
            }
            None => {
                self.pos = self.buf.len();
                None
            }
        }
    }

    /// Skips white space; whether there was any.
    #[inline]
    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.buf.get(self.pos) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The character here (the input is valid UTF-8) and its length.
    fn peek_char(&self) -> Option<(char, usize)> {
        let lead = self.peek()?;
        let len = utf8_len(lead);
        let bytes = self.buf.get(self.pos..self.pos + len)?;
        let c = std::str::from_utf8(bytes).ok()?.chars().next()?;
        Some((c, len))
    }
}

/// A qualified name in the document: `prefix` is `doc[start..colon]`,
/// `local` is `doc[local..end]` (`colon == local == start` without one).
#[derive(Clone, Copy)]
struct QName {
    start: usize,
    colon: usize,
    local: usize,
    end: usize,
}

impl QName {
    #[inline]
    fn prefix(self, doc: &[u8]) -> &[u8] {
        &doc[self.start..self.colon]
    }
    #[inline]
    fn local(self, doc: &[u8]) -> &[u8] {
        &doc[self.local..self.end]
    }
}

/// An open element.
#[derive(Clone, Copy)]
struct Open {
    name: QName,
    /// `ns.len()` before its namespace declarations.
    ns_mark: usize,
}

/// A namespace declaration in scope: the prefix `doc[prefix.0..prefix.1]`
/// is bound to `uris[uri.0..uri.1]`.
#[derive(Clone, Copy)]
struct Decl {
    prefix: (usize, usize),
    uri: (usize, usize),
}

/// Declarations in scope up to which a prefix is looked up by a walk down
/// them; past it, in a map (a hostile body declares thousands).
const NS_WALK: usize = 16;

/// A scan's growable state. Each thread keeps its last one for its next
/// scan, so that most scans allocate nothing.
struct Buffers {
    open: Vec<Open>,
    /// The current tag's attributes but namespace declarations.
    attrs: Vec<QName>,
    /// The current tag's `version`, decoded.
    version: Vec<u8>,
    /// A wrapper flag, a `<Duration>` or a tag URI, decoded.
    text: Vec<u8>,
    /// Namespace declarations in scope, innermost last.
    ns: Vec<Decl>,
    /// Their URIs, decoded, end to end.
    uris: Vec<u8>,
}

impl Buffers {
    /// Bytes kept past a scan at most: a body with deep nesting or many
    /// declarations does not leave its buffers behind.
    const KEEP: usize = 16 * 1024;

    const fn new() -> Self {
        Buffers {
            open: Vec::new(),
            attrs: Vec::new(),
            version: Vec::new(),
            text: Vec::new(),
            ns: Vec::new(),
            uris: Vec::new(),
        }
    }

    fn bytes(&self) -> usize {
        self.open.capacity() * size_of::<Open>()
            + self.attrs.capacity() * size_of::<QName>()
            + self.version.capacity()
            + self.text.capacity()
            + self.ns.capacity() * size_of::<Decl>()
            + self.uris.capacity()
    }

    fn clear(&mut self) {
        self.open.clear();
        self.attrs.clear();
        self.version.clear();
        self.text.clear();
        self.ns.clear();
        self.uris.clear();
    }
}

thread_local! {
    static SPARE: RefCell<Buffers> = const { RefCell::new(Buffers::new()) };
}

/// What the root says about the document.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    Vast { supported: bool },
    Other,
}

/// Well-formedness as roxmltree (the oracle) checks it, without a DTD,
/// counting `<Ad>`s on the way.
struct Parser<'a, 'b> {
    s: Cursor<'a>,
    b: &'b mut Buffers,
    /// Indexes in `b.ns` of each prefix's declarations, once there are more
    /// than `NS_WALK`.
    index: Option<HashMap<&'a [u8], Vec<usize>>>,
    root: Root,
    /// VAST 1.0 (`<VideoAdServingTemplate>`): its own paths to durations
    /// and tag URIs.
    vast1: bool,
    in_ad: bool,
    ads: u32,
    inline: u32,
    wrapper: u32,
    /// The path followed inside the current ad, if any.
    track: Track,
    /// Depth of the next element on the path (3 is the first, inside
    /// `<InLine>` or `<Wrapper>`); 0 when there is none.
    want: usize,
    /// Where the content of the path's last element starts.
    leaf_from: usize,
    /// The current linear creative's `<Duration>` was read.
    timed: bool,
    linear_ms: u64,
    bad_durations: u32,
    first_wrapper: FirstWrapper,
}

/// A path of elements whose text a fetcher needs, from inside `<InLine>`
/// or `<Wrapper>`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Track {
    None,
    /// To `<Duration>`, through the linear creative (the element before it).
    Durations(&'static [&'static [u8]]),
    /// To the tag URI of the first wrapper.
    TagUri(&'static [&'static [u8]]),
}

impl Track {
    fn path(self) -> &'static [&'static [u8]] {
        match self {
            Track::None => &[],
            Track::Durations(path) | Track::TagUri(path) => path,
        }
    }
}

const DURATIONS: &[&[u8]] = &[b"Creatives", b"Creative", b"Linear", b"Duration"];
const DURATIONS_VAST1: &[&[u8]] = &[b"Video", b"Duration"];
const TAG_URI: &[&[u8]] = &[b"VASTAdTagURI"];
const TAG_URI_VAST1: &[&[u8]] = &[b"VASTAdTagURL", b"URL"];

/// The first `<Ad>` whose first child is a `<Wrapper>`.
enum FirstWrapper {
    NotSeen,
    /// Inside it, before its tag URI: its flags.
    Reading {
        follow_additional_wrappers: bool,
        fallback_on_no_ad: Option<bool>,
    },
    /// Read: its target, if it named one.
    Done(Option<WrapperTarget>),
}

impl<'a, 'b> Parser<'a, 'b> {
    fn new(doc: &'a [u8], b: &'b mut Buffers) -> Self {
        Parser {
            s: Cursor { buf: doc, pos: 0 },
            b,
            index: None,
            root: Root::Other,
            vast1: false,
            in_ad: false,
            ads: 0,
            inline: 0,
            wrapper: 0,
            track: Track::None,
            want: 0,
            leaf_from: 0,
            timed: false,
            linear_ms: 0,
            bad_durations: 0,
            first_wrapper: FirstWrapper::NotSeen,
        }
    }

    fn document(&mut self) -> Res {
        self.declaration()?;
        self.misc()?;
        self.s.skip_spaces();
        if self.s.starts_with(b"<!DOCTYPE") {
            return Err(Bad);
        }
        if self.s.peek() != Some(b'<') {
            return Err(Bad);
        }
        if self.start_tag()? {
            self.content()?;
        }
        self.misc()?;
        if !self.s.at_end() || !self.b.open.is_empty() {
            return Err(Bad);
        }
        Ok(())
    }

    /// The XML declaration, as loosely as the oracle reads it.
    fn declaration(&mut self) -> Res {
        if self.s.starts_with(b"\xEF\xBB\xBF") {
            self.s.advance(3);
        }
        if !self.s.starts_with(b"<?xml ") {
            return Ok(());
        }
        self.s.advance(5);
        self.decl_spaces()?;
        if !self.s.starts_with(b"version") {
            return Err(Bad);
        }
        self.decl_attribute()?;
        self.decl_spaces()?;
        if self.s.starts_with(b"encoding") {
            self.decl_attribute()?;
            self.decl_spaces()?;
        }
        if self.s.starts_with(b"standalone") {
            self.decl_attribute()?;
        }
        self.s.skip_spaces();
        self.s.expect(b"?>")
    }

    fn decl_spaces(&mut self) -> Res {
        if !self.s.skip_spaces() && !self.s.starts_with(b"?>") && !self.s.at_end() {
            return Err(Bad);
        }
        Ok(())
    }

    fn decl_attribute(&mut self) -> Res {
        qname(&mut self.s)?;
        self.eq()?;
        let quote = self.quote()?;
        match self.s.skip_to(memchr::memchr2(quote, b'<', self.s.rest())) {
            Some(b) if b == quote => {
                self.s.advance(1);
                Ok(())
            }
            _ => Err(Bad),
        }
    }

    /// Comments, processing instructions and white space.
    fn misc(&mut self) -> Res {
        while !self.s.at_end() {
            self.s.skip_spaces();
            if self.s.starts_with(b"<!--") {
                self.comment()?;
            } else if self.s.starts_with(b"<?") {
                self.pi()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn comment(&mut self) -> Res {
        self.s.advance(4);
        loop {
            self.s
                .skip_to(memchr::memchr(b'-', self.s.rest()))
                .ok_or(Bad)?;
            if self.s.starts_with(b"--") {
                // `--` ends the comment, and only as `-->`.
                return self.s.expect(b"-->");
            }
            self.s.advance(1);
        }
    }

    fn pi(&mut self) -> Res {
        if self.s.starts_with(b"<?xml ") {
            return Err(Bad);
        }
        self.s.advance(2);
        self.name()?;
        loop {
            self.s
                .skip_to(memchr::memchr(b'?', self.s.rest()))
                .ok_or(Bad)?;
            if self.s.starts_with(b"?>") {
                self.s.advance(2);
                return Ok(());
            }
            self.s.advance(1);
        }
    }

    fn cdata(&mut self) -> Res {
        self.s.advance(9);
        loop {
            self.s
                .skip_to(memchr::memchr(b']', self.s.rest()))
                .ok_or(Bad)?;
            if self.s.starts_with(b"]]>") {
                self.s.advance(3);
                return Ok(());
            }
            self.s.advance(1);
        }
    }

    /// A `Name` (a processing instruction's target).
    fn name(&mut self) -> Res {
        match self.s.peek_char() {
            Some((c, n)) if is_name_start_char(c) => self.s.advance(n),
            _ => return Err(Bad),
        }
        while let Some((c, n)) = self.s.peek_char() {
            if !is_name_char(c) {
                break;
            }
            self.s.advance(n);
        }
        Ok(())
    }

    #[inline]
    fn eq(&mut self) -> Res {
        self.s.skip_spaces();
        self.s.expect(b"=")?;
        self.s.skip_spaces();
        Ok(())
    }

    #[inline]
    fn quote(&mut self) -> Res<u8> {
        match self.s.peek() {
            Some(q @ (b'"' | b'\'')) => {
                self.s.advance(1);
                Ok(q)
            }
            _ => Err(Bad),
        }
    }

    /// A start tag at `<`; whether it opened an element (not `<x/>`).
    #[inline(always)]
    fn start_tag(&mut self) -> Res<bool> {
        self.s.advance(1);
        let doc = self.s.buf;
        let depth = self.b.open.len();
        let name = qname(&mut self.s)?;
        if name.prefix(doc) == b"xmlns" {
            return Err(Bad);
        }
        let ns_mark = self.b.ns.len();
        self.b.attrs.clear();
        let mut version = false;
        // One bit per attribute's local name (a hash of it): a tag whose
        // names all differ, and have no prefix, needs no other check.
        let mut seen = 0u64;
        let mut suspect = false;
        // The first wrapper's flags are read on the way.
        let first_wrapper = depth == 2
            && self.in_ad
            && matches!(self.first_wrapper, FirstWrapper::NotSeen)
            && name.local(doc) == b"Wrapper";
        let (mut follow, mut fallback) = (true, None);
        let open = loop {
            let spaced = self.s.skip_spaces();
            match self.s.peek().ok_or(Bad)? {
                b'/' => {
                    self.s.advance(1);
                    self.s.expect(b">")?;
                    break false;
                }
                b'>' => {
                    self.s.advance(1);
                    break true;
                }
                _ if !spaced => return Err(Bad),
                _ => {}
            }
            let attr = qname(&mut self.s)?;
            // Most attributes: `name="value"`.
            let quote = match self.s.rest() {
                [b'=', q @ (b'"' | b'\''), ..] => {
                    let q = *q;
                    self.s.pos += 2;
                    q
                }
                _ => {
                    self.eq()?;
                    self.quote()?
                }
            };
            let prefix = attr.prefix(doc);
            let local = attr.local(doc);
            let is_decl = prefix == b"xmlns";
            let is_default = !is_decl && local == b"xmlns";
            if !(is_decl || is_default) {
                if depth == 0 && prefix.is_empty() && local == b"version" {
                    self.b.version.clear();
                    attr_value(&mut self.s, quote, Some(&mut self.b.version))?;
                    version = true;
                } else if first_wrapper
                    && matches!(local, b"followAdditionalWrappers" | b"fallbackOnNoAd")
                {
                    self.b.text.clear();
                    attr_value(&mut self.s, quote, Some(&mut self.b.text))?;
                    let flag = boolean(&self.b.text);
                    if local == b"fallbackOnNoAd" {
                        fallback = flag;
                    } else {
                        follow = flag.unwrap_or(true);
                    }
                } else {
                    skip_value(&mut self.s, quote)?;
                }
                let bit = 1u64 << local_hash(local);
                suspect |= (seen & bit != 0) | !prefix.is_empty();
                seen |= bit;
                self.b.attrs.push(attr);
                continue;
            }
            let at = self.b.uris.len();
            attr_value(&mut self.s, quote, Some(&mut self.b.uris))?;
            let value = &self.b.uris[at..];
            let xml_prefix = local == b"xml";
            if value == XMLNS_URI
                || (is_default && value == XML_URI)
                || (is_decl && xml_prefix != (value == XML_URI))
            {
                return Err(Bad);
            }
            if is_decl && !xml_prefix {
                if self.declared_since(ns_mark, local) {
                    return Err(Bad);
                }
                self.declare((attr.local, attr.end), (at, self.b.uris.len()));
            } else {
                // Checked, not kept.
                self.b.uris.truncate(at);
            }
        };
        if suspect || self.b.attrs.len() > 16 {
            self.check_attributes()?;
        }
        let prefix = name.prefix(doc);
        if !prefix.is_empty() && self.lookup(prefix).is_none() {
            return Err(Bad);
        }
        let local = name.local(doc);
        match depth {
            0 => {
                self.vast1 = local == b"VideoAdServingTemplate";
                self.root = match local {
                    b"VAST" => Root::Vast {
                        supported: !version || supported_version(&self.b.version),
                    },
                    b"VideoAdServingTemplate" => Root::Vast { supported: true },
                    _ => Root::Other,
                }
            }
            1 if local == b"Ad" => {
                self.ads += 1;
                self.in_ad = open;
            }
            2 if self.in_ad && local == b"InLine" => {
                self.inline += 1;
                self.in_ad = false;
                let path = if self.vast1 { DURATIONS_VAST1 } else { DURATIONS };
                self.follow(Track::Durations(path), open);
            }
            2 if self.in_ad && local == b"Wrapper" => {
                self.wrapper += 1;
                self.in_ad = false;
                if first_wrapper {
                    self.first_wrapper = if open {
                        FirstWrapper::Reading {
                            follow_additional_wrappers: follow,
                            fallback_on_no_ad: fallback,
                        }
                    } else {
                        FirstWrapper::Done(None)
                    };
                    let path = if self.vast1 { TAG_URI_VAST1 } else { TAG_URI };
                    self.follow(Track::TagUri(path), open);
                }
            }
            d if d == self.want => self.on_path(local, open),
            _ => {}
        }
        if open {
            self.b.open.push(Open { name, ns_mark });
        } else {
            self.undeclare(ns_mark);
        }
        Ok(open)
    }

    /// Attribute prefixes are bound, and no two attributes share a
    /// namespace and local name.
    fn check_attributes(&self) -> Res {
        let attrs = &self.b.attrs[..];
        let doc = self.s.buf;
        if attrs.len() <= 16 {
            // One bit per local name seen (a hash of it): only a name whose
            // bit is already set is compared with the others.
            let mut seen = 0u64;
            for (i, &a) in attrs.iter().enumerate() {
                let local = a.local(doc);
                let bit = 1u64 << local_hash(local);
                if seen & bit != 0 {
                    let key = self.key(a)?;
                    for &b in &attrs[..i] {
                        if b.local(doc) == local && self.key(b)? == key {
                            return Err(Bad);
                        }
                    }
                } else if a.colon != a.start {
                    // Its prefix is bound.
                    self.key(a)?;
                }
                seen |= bit;
            }
            return Ok(());
        }
        let mut keys = Vec::with_capacity(attrs.len());
        for &attr in attrs {
            keys.push(self.key(attr)?);
        }
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(Bad);
        }
        Ok(())
    }

    /// An attribute's namespace URI (none without a prefix) and local name.
    #[inline]
    fn key(&self, attr: QName) -> Res<(Option<&[u8]>, &[u8])> {
        let prefix = attr.prefix(self.s.buf);
        let uri: Option<&[u8]> = match prefix {
            b"" => None,
            b"xml" => Some(XML_URI),
            _ => Some(self.lookup(prefix).ok_or(Bad)?),
        };
        Ok((uri, attr.local(self.s.buf)))
    }

    /// The URI of the innermost declaration of `prefix` in scope.
    fn lookup(&self, prefix: &[u8]) -> Option<&[u8]> {
        let doc = self.s.buf;
        let at = match &self.index {
            Some(index) => *index.get(prefix)?.last()?,
            None => self
                .b
                .ns
                .iter()
                .rposition(|d| &doc[d.prefix.0..d.prefix.1] == prefix)?,
        };
        let (start, end) = self.b.ns[at].uri;
        Some(&self.b.uris[start..end])
    }

    /// Whether `prefix` was declared since `mark` (by the current tag).
    fn declared_since(&self, mark: usize, prefix: &[u8]) -> bool {
        let doc = self.s.buf;
        match &self.index {
            Some(index) => index
                .get(prefix)
                .and_then(|at| at.last())
                .is_some_and(|&at| at >= mark),
            None => self.b.ns[mark..]
                .iter()
                .any(|d| &doc[d.prefix.0..d.prefix.1] == prefix),
        }
    }

    fn declare(&mut self, prefix: (usize, usize), uri: (usize, usize)) {
        let doc = self.s.buf;
        let at = self.b.ns.len();
        self.b.ns.push(Decl { prefix, uri });
        if let Some(index) = &mut self.index {
            index.entry(&doc[prefix.0..prefix.1]).or_default().push(at);
        } else if self.b.ns.len() > NS_WALK {
            let mut index: HashMap<&[u8], Vec<usize>> = HashMap::new();
            for (i, d) in self.b.ns.iter().enumerate() {
                index
                    .entry(&doc[d.prefix.0..d.prefix.1])
                    .or_default()
                    .push(i);
            }
            self.index = Some(index);
        }
    }

    /// Ends the scope of the namespaces declared since `mark`.
    #[inline]
    fn undeclare(&mut self, mark: usize) {
        // Most elements declare nothing.
        if self.b.ns.len() > mark {
            self.undeclare_since(mark);
        }
    }

    fn undeclare_since(&mut self, mark: usize) {
        let Some(first) = self.b.ns.get(mark) else {
            return;
        };
        self.b.uris.truncate(first.uri.0);
        if let Some(index) = &mut self.index {
            let doc = self.s.buf;
            for d in &self.b.ns[mark..] {
                if let Some(at) = index.get_mut(&doc[d.prefix.0..d.prefix.1]) {
                    at.pop();
                }
            }
        }
        self.b.ns.truncate(mark);
    }

    /// An end tag at `</`, matching the innermost open element.
    fn end_tag(&mut self) -> Res {
        let content_end = self.s.pos;
        self.s.advance(2);
        let open = self.b.open.pop().ok_or(Bad)?;
        // The start tag's prefix and local name, then no name character:
        // what a `QName` reading would give, without reading one. A
        // leading colon is an empty prefix there (`</:a>` ends `<a>`).
        let name = open.name;
        let from = if name.colon == name.start {
            if self.s.peek() == Some(b':') {
                self.s.advance(1);
            }
            name.local
        } else {
            name.start
        };
        self.s.expect_copy(from, name.end)?;
        if self.s.peek() == Some(b'>') {
            self.s.pos += 1;
        } else {
            self.s.skip_spaces();
            self.s.expect(b">")?;
        }
        self.undeclare(open.ns_mark);
        let depth = self.b.open.len();
        if depth == 1 {
            self.in_ad = false;
        }
        if self.want > depth {
            self.closed_on_path(depth, content_end);
        }
        Ok(())
    }

    /// Starts following `track` inside an `<InLine>` or `<Wrapper>`.
    fn follow(&mut self, track: Track, open: bool) {
        if open {
            self.track = track;
            self.want = 3;
        }
    }

    /// An element at the depth of the next one on the path opened.
    #[cold]
    fn on_path(&mut self, local: &[u8], open: bool) {
        let path = self.track.path();
        let i = self.want - 3;
        if path.get(i) != Some(&local) {
            return;
        }
        let leaf = i + 1 == path.len();
        let linear = matches!(self.track, Track::Durations(_)) && i + 2 == path.len();
        if open {
            self.want += 1;
            if leaf {
                self.leaf_from = self.s.pos;
            } else if linear {
                self.timed = false;
            }
        } else if leaf {
            self.leaf_read(b"");
        } else if linear {
            self.bad_durations += 1;
        }
    }

    /// The element on the path at `depth` closed; its content ended at
    /// `content_end`.
    #[cold]
    fn closed_on_path(&mut self, depth: usize, content_end: usize) {
        let path = self.track.path();
        if depth < 3 {
            // The `<InLine>` or `<Wrapper>` ended.
            if let FirstWrapper::Reading { .. } = self.first_wrapper {
                if matches!(self.track, Track::TagUri(_)) {
                    self.first_wrapper = FirstWrapper::Done(None);
                }
            }
            self.track = Track::None;
            self.want = 0;
            return;
        }
        self.want = depth;
        let i = depth - 3;
        match self.track {
            Track::Durations(_) if i + 1 == path.len() => {
                let doc = self.s.buf;
                self.leaf_read(&doc[self.leaf_from..content_end]);
            }
            Track::Durations(_) if i + 2 == path.len() && !self.timed => self.bad_durations += 1,
            Track::TagUri(_) if i + 1 == path.len() => {
                let doc = self.s.buf;
                self.leaf_read(&doc[self.leaf_from..content_end]);
            }
            Track::TagUri(_) => {
                // Its container ended without one.
                if let FirstWrapper::Reading { .. } = self.first_wrapper {
                    self.first_wrapper = FirstWrapper::Done(None);
                }
            }
            _ => {}
        }
    }

    /// The content of the path's last element: a `<Duration>` or a tag URI.
    fn leaf_read(&mut self, content: &[u8]) {
        let mut text = std::mem::take(&mut self.b.text);
        text.clear();
        text_of(content, &mut text);
        match (self.track, &self.first_wrapper) {
            (Track::Durations(_), _) if !self.timed => {
                self.timed = true;
                match duration_ms(&text) {
                    Some(ms) => self.linear_ms = self.linear_ms.saturating_add(ms),
                    None => self.bad_durations += 1,
                }
            }
            (
                Track::TagUri(_),
                &FirstWrapper::Reading {
                    follow_additional_wrappers,
                    fallback_on_no_ad,
                },
            ) => {
                let uri = String::from_utf8_lossy(text.trim_ascii()).into_owned();
                self.first_wrapper = FirstWrapper::Done((!uri.is_empty()).then_some(WrapperTarget {
                    uri,
                    follow_additional_wrappers,
                    fallback_on_no_ad,
                }));
            }
            _ => {}
        }
        self.b.text = text;
    }

    /// The content of the root, through its end tag.
    fn content(&mut self) -> Res {
        while let Some(b) = self.s.peek() {
            if b != b'<' {
                self.text()?;
                continue;
            }
            match self.s.peek_at(1).ok_or(Bad)? {
                b'!' if self.s.starts_with(b"<!--") => self.comment()?,
                b'!' if self.s.starts_with(b"<![CDATA[") => self.cdata()?,
                b'!' => return Err(Bad),
                b'?' => self.pi()?,
                b'/' => {
                    self.end_tag()?;
                    if self.b.open.is_empty() {
                        break;
                    }
                }
                _ => {
                    self.start_tag()?;
                }
            }
        }
        Ok(())
    }

    /// Character data up to the next `<`: valid references, no `]]>`.
    fn text(&mut self) -> Res {
        // Most text is a line break and an indent before the next tag:
        // spaces are skipped eight at a time, a byte-wise compare each.
        let rest = self.s.rest();
        let mut n = usize::from(rest.first() == Some(&b'\n'));
        while let Some(w) = word(rest, n) {
            let other = w ^ (LO * u64::from(b' '));
            if other != 0 {
                n += (other.trailing_zeros() / 8) as usize;
                if rest[n] == b'<' {
                    self.s.pos += n;
                    return Ok(());
                }
                break;
            }
            n += 8;
        }
        loop {
            match self.s.skip_to(find3(b'<', b'&', b']', self.s.rest())) {
                None | Some(b'<') => return Ok(()),
                Some(b'&') => reference(&mut self.s, None)?,
                Some(_) if self.s.starts_with(b"]]>") => return Err(Bad),
                Some(_) => self.s.advance(1),
            }
        }
    }
}

/// A reference at `&`: one of the five predefined entities or a character
/// reference to a `Char`. With `out`, its character goes there.
fn reference(s: &mut Cursor<'_>, out: Option<&mut Vec<u8>>) -> Res {
    s.advance(1);
    let c = if s.peek() == Some(b'#') {
        s.advance(1);
        let radix = if s.peek() == Some(b'x') {
            s.advance(1);
            16
        } else {
            10
        };
        let mut value: u32 = 0;
        let mut digits = 0;
        while let Some(d) = s.peek().and_then(|b| (b as char).to_digit(radix)) {
            value = value
                .checked_mul(radix)
                .and_then(|v| v.checked_add(d))
                .ok_or(Bad)?;
            digits += 1;
            s.advance(1);
        }
        // Surrogates and values past U+10FFFF are not characters
        // (stricter than the oracle, which reads them as U+FFFD).
        match char::from_u32(value) {
            Some(c) if digits > 0 && is_xml_char(c) => c,
            _ => return Err(Bad),
        }
    } else {
        let (len, c) = [
            (b"lt".as_slice(), '<'),
            (b"gt", '>'),
            (b"amp", '&'),
            (b"apos", '\''),
            (b"quot", '"'),
        ]
        .into_iter()
        .find(|(name, _)| s.starts_with(name) && s.peek_at(name.len()) == Some(b';'))
        .map(|(name, c)| (name.len(), c))
        .ok_or(Bad)?;
        s.advance(len);
        c
    };
    s.expect(b";")?;
    if let Some(out) = out {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
    Ok(())
}

/// An attribute value after its quote, through the closing one.
#[inline(always)]
fn skip_value(s: &mut Cursor<'_>, quote: u8) -> Res {
    // Most values are short and plain: four bytes a step, a table look-up
    // each, as names.
    let stops = &VALUE_STOPS[usize::from(quote == b'\'')];
    let rest = s.rest();
    let mut i = 0;
    let stop = |b: u8| stops[b as usize];
    while let [a, b, c, d, ..] = rest[i..] {
        let at = if stop(a) {
            i
        } else if stop(b) {
            i + 1
        } else if stop(c) {
            i + 2
        } else if stop(d) {
            i + 3
        } else {
            i += 4;
            if i < 16 {
                continue;
            }
            break;
        };
        if rest[at] == quote {
            s.pos += at + 1;
            return Ok(());
        }
        break;
    }
    loop {
        match s.skip_to(find3(quote, b'<', b'&', s.rest())).ok_or(Bad)? {
            b'<' => return Err(Bad),
            b'&' => reference(s, None)?,
            _ => {
                s.advance(1);
                return Ok(());
            }
        }
    }
}

/// An attribute value after its quote, through the closing one. With
/// `out`, its normalised value is appended there.
fn attr_value(s: &mut Cursor<'_>, quote: u8, out: Option<&mut Vec<u8>>) -> Res {
    let Some(out) = out else {
        return skip_value(s, quote);
    };
    // Most values have nothing to decode: no reference, no white space to
    // normalise.
    let rest = s.rest();
    if let Some(n) = find3(quote, b'<', b'&', rest) {
        let value = &rest[..n];
        if rest[n] == quote && !value.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
            out.extend_from_slice(value);
            s.advance(n + 1);
            return Ok(());
        }
    }
    loop {
        let b = s.peek().ok_or(Bad)?;
        match b {
            b if b == quote => {
                s.advance(1);
                return Ok(());
            }
            b'<' => return Err(Bad),
            b'&' => reference(s, Some(out))?,
            b => {
                s.advance(1);
                match b {
                    b'\r' if s.peek() == Some(b'\n') => {}
                    b'\t' | b'\n' | b'\r' => out.push(b' '),
                    _ => out.push(b),
                }
            }
        }
    }
}

/// A `QName` (the oracle's reading: at most one colon, both parts start
/// with a `NameStartChar`).
#[inline(always)]
fn qname(s: &mut Cursor<'_>) -> Res<QName> {
    // Most names: ASCII, no colon. A byte at a time: the short names of
    // VAST end before a word-wide test would pay off.
    let start = s.pos;
    let rest = s.rest();
    let n = plain_name_len(rest);
    // A colon or a byte past ASCII where the name stops: the long way.
    if n > 0
        && rest.get(n).is_some_and(|&b| b != b':' && b < 0x80)
        && matches!(rest[0], b'A'..=b'Z' | b'a'..=b'z' | b'_')
    {
        s.pos += n;
        return Ok(QName {
            start,
            colon: start,
            local: start,
            end: s.pos,
        });
    }
    qname_slow(s)
}

/// [`qname`] of any name.
#[cold]
#[inline(never)]
fn qname_slow(s: &mut Cursor<'_>) -> Res<QName> {
    let start = s.pos;
    let mut colon = None;
    while let Some(b) = s.peek() {
        // A run of ASCII name bytes at once.
        let n = s
            .rest()
            .iter()
            .position(|&b| !PLAIN_NAME[b as usize])
            .unwrap_or(s.buf.len() - s.pos);
        if n > 0 {
            s.pos += n;
            continue;
        }
        if b == b':' {
            if colon.is_some() {
                return Err(Bad);
            }
            colon = Some(s.pos);
            s.pos += 1;
        } else if b < 0x80 {
            break;
        } else {
            match s.peek_char() {
                Some((c, n)) if is_name_char(c) => s.pos += n,
                _ => break,
            }
        }
    }
    let name = match colon {
        Some(colon) => QName {
            start,
            colon,
            local: colon + 1,
            end: s.pos,
        },
        None => QName {
            start,
            colon: start,
            local: start,
            end: s.pos,
        },
    };
    let prefix = name.prefix(s.buf);
    if (!prefix.is_empty() && !starts_name(prefix)) || !starts_name(name.local(s.buf)) {
        return Err(Bad);
    }
    Ok(name)
}

/// Where a wrapper ad sends the player next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapperTarget {
    /// The `<VASTAdTagURI>` (VAST 1: `<VASTAdTagURL><URL>`) text, trimmed,
    /// with CDATA sections and references resolved.
    pub uri: String,
    /// `Wrapper@followAdditionalWrappers`: `true` unless it says `false`.
    pub follow_additional_wrappers: bool,
    /// `Wrapper@fallbackOnNoAd`, if present and a boolean.
    pub fallback_on_no_ad: Option<bool>,
}

/// The target of the first `<Ad>` whose `<Wrapper>` (rather than
/// `<InLine>`) is its first ad child, if the document is valid VAST (see
/// [`inspect`]) and that wrapper names a URI: [`Inspection::of`]'s
/// `wrapper`.
pub fn wrapper_target(doc: &[u8]) -> Option<WrapperTarget> {
    Inspection::of(doc).wrapper
}

/// An `xs:boolean`, as the schema spells it.
fn boolean(value: &[u8]) -> Option<bool> {
    match value.trim_ascii() {
        b"true" | b"1" => Some(true),
        b"false" | b"0" => Some(false),
        _ => None,
    }
}

/// `HH:MM:SS` or `HH:MM:SS.mmm` in milliseconds: hours of any width,
/// minutes and seconds of two digits below 60, one to three digits of
/// fraction.
fn duration_ms(text: &[u8]) -> Option<u64> {
    fn digits(d: &[u8], width: std::ops::RangeInclusive<usize>) -> Option<u64> {
        (width.contains(&d.len()) && d.iter().all(u8::is_ascii_digit))
            .then(|| d.iter().fold(0, |n, &b| n * 10 + u64::from(b - b'0')))
    }
    let text = text.trim_ascii();
    let (hms, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    let mut parts = hms.split(|&b| b == b':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (h, m, s) = (digits(h, 1..=6)?, digits(m, 2..=2)?, digits(s, 2..=2)?);
    if m >= 60 || s >= 60 {
        return None;
    }
    let ms = match fraction {
        Some(f) => digits(f, 1..=3)? * 10u64.pow(3 - f.len() as u32),
        None => 0,
    };
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// The character data directly inside an element whose content is
/// `content` (already checked well-formed): references and CDATA sections
/// resolved; comments, processing instructions and child elements left
/// out. Read only for the few elements a fetcher needs, so the scan's
/// text loop stays as it is.
fn text_of(content: &[u8], out: &mut Vec<u8>) {
    let mut depth = 0usize;
    let mut i = 0;
    while i < content.len() {
        let rest = &content[i..];
        let n = memchr::memchr2(b'<', b'&', rest).unwrap_or(rest.len());
        if depth == 0 {
            out.extend_from_slice(&rest[..n]);
        }
        i += n;
        let rest = &content[i..];
        if rest.is_empty() {
            break;
        }
        if rest[0] == b'&' {
            let mut s = Cursor { buf: content, pos: i };
            // Checked by the scan: it resolves.
            let _ = reference(&mut s, (depth == 0).then_some(&mut *out));
            i = s.pos.max(i + 1);
        } else if let Some(inner) = rest.strip_prefix(b"<![CDATA[") {
            let end = memchr::memmem::find(inner, b"]]>").unwrap_or(inner.len());
            if depth == 0 {
                out.extend_from_slice(&inner[..end]);
            }
            i += 9 + end + 3;
        } else if rest.starts_with(b"<!--") {
            i += 4 + memchr::memmem::find(&rest[4..], b"-->").map_or(rest.len(), |e| e + 3);
        } else if rest.starts_with(b"<?") {
            i += 2 + memchr::memmem::find(&rest[2..], b"?>").map_or(rest.len(), |e| e + 2);
        } else {
            // A child's tag; a quoted value may hold `>`.
            let mut quote = None;
            let mut j = 1;
            while j < rest.len() {
                match (quote, rest[j]) {
                    (None, b'>') => break,
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), c) if c == q => quote = None,
                    _ => {}
                }
                j += 1;
            }
            if rest.get(1) == Some(&b'/') {
                depth = depth.saturating_sub(1);
            } else if rest[j - 1] != b'/' {
                depth += 1;
            }
            i += j + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const INLINE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST">
  <Ad id="1"><InLine><AdSystem>x</AdSystem><AdTitle>t &amp; t</AdTitle></InLine></Ad>
  <Ad id="2"><Wrapper><VASTAdTagURI><![CDATA[https://x/y?a=1&b=2]]></VASTAdTagURI></Wrapper></Ad>
</VAST>"#;

    fn ads(inline: u32, wrapper: u32) -> VastVerdict {
        VastVerdict::Ads { inline, wrapper }
    }

    #[test]
    fn verdicts() {
        assert_eq!(inspect(INLINE), ads(1, 1));
        assert_eq!(inspect(b"<VAST version=\"3.0\"></VAST>"), VastVerdict::NoAd);
        assert_eq!(
            inspect(b"<VAST version=\"3.0\"><Error>x</Error></VAST>"),
            VastVerdict::NoAd
        );
        assert_eq!(inspect(b"<VAST><Ad></VAST>"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b"<VAST><Ad>"), VastVerdict::InvalidXml);
        assert_eq!(
            inspect(b"<VAST></VAST><VAST></VAST>"),
            VastVerdict::InvalidXml
        );
        assert_eq!(inspect(b"not xml"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b"<VAST a=\"1\" a=\"2\"/>"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b"   \n"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b""), VastVerdict::Empty);
    }

    #[test]
    fn what_a_strict_parser_rejects_is_invalid() {
        let title = |t: &str| {
            format!(
                r#"<VAST version="4.2"><Ad><InLine><AdTitle>{t}</AdTitle></InLine></Ad></VAST>"#
            )
        };
        assert_eq!(inspect(title("ok &lt;&#233;&#xE9;").as_bytes()), ads(1, 0));
        for bad in [
            "&nbsp;",
            "Tom & Jerry;",
            "&amp",
            "&#0;",
            "&#xD800;",
            "&#x110000;",
            "&#99999999999;",
            "&#X41;",
            "\u{1}",
            "\u{FFFE}",
            "]]>",
            "<b></c>",
            "<b a='1' a='2'/>",
            "<b a='<'/>",
            "<b a='&nope;'/>",
            "<b a='1'c='2'/>",
            "<p:b/>",
            "<b xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
            "<!-- a -- b -->",
            "<!DOCTYPE x>",
        ] {
            assert_eq!(
                inspect(title(bad).as_bytes()),
                VastVerdict::InvalidXml,
                "{bad:?}"
            );
        }
        let mut latin1 = title("caf").into_bytes();
        latin1.insert(latin1.len() - 38, 0xE9);
        assert_eq!(inspect(&latin1), VastVerdict::InvalidXml);
        for after in ["x", "<VAST/>", "&amp;", "<![CDATA[x]]>"] {
            let doc = format!("<VAST/>{after}");
            assert_eq!(inspect(doc.as_bytes()), VastVerdict::InvalidXml, "{doc}");
        }
        assert_eq!(inspect(b"<VAST/> <!-- c --> <?pi x?>\n"), VastVerdict::NoAd);
    }

    #[test]
    fn roots_and_versions() {
        assert_eq!(inspect(b"<html/>"), VastVerdict::NotVast);
        assert_eq!(
            inspect(b"<VAST version=\"9.0\"/>"),
            VastVerdict::UnsupportedVersion
        );
        assert_eq!(
            inspect(b"<VAST version=\"1.0\"/>"),
            VastVerdict::UnsupportedVersion
        );
        assert_eq!(
            inspect(b"<VAST version=\"\"/>"),
            VastVerdict::UnsupportedVersion
        );
        for v in ["2.0", "3.0", "4", "4.1", " 4.2 ", "4&#46;3"] {
            let doc = format!("<VAST version=\"{v}\"><Ad><InLine/></Ad></VAST>");
            assert_eq!(inspect(doc.as_bytes()), ads(1, 0), "{v}");
        }
        assert_eq!(inspect(b"<VAST><Ad><Wrapper/></Ad></VAST>"), ads(0, 1));
        assert_eq!(
            inspect(b"<VideoAdServingTemplate><Ad><InLine/></Ad><Ad><Wrapper/></Ad></VideoAdServingTemplate>"),
            ads(1, 1)
        );
        assert_eq!(
            inspect(b"<v:VAST xmlns:v=\"http://www.iab.com/VAST\" version=\"4.2\"><v:Ad><v:InLine/></v:Ad></v:VAST>"),
            ads(1, 0)
        );
        // Broken XML is 100 whatever the root.
        assert_eq!(inspect(b"<VAST version=\"9.0\">"), VastVerdict::InvalidXml);
        assert_eq!(
            VastVerdict::NotVast.outcome(),
            VastVerdict::InvalidXml.outcome()
        );
        assert!(!VastVerdict::UnsupportedVersion.is_vast());
        assert_eq!(VastVerdict::Empty.iab_code(), None);
        assert_eq!(VastVerdict::NoAd.iab_code(), None);
    }

    #[test]
    fn every_split_of_a_document_gives_the_same_verdict() {
        let whole = inspect(INLINE);
        for at in 0..=INLINE.len() {
            let chunks = [
                Bytes::from_static(&INLINE[..at]),
                Bytes::from_static(&INLINE[at..]),
            ];
            assert_eq!(inspect_chunks(&chunks), whole, "split at {at}");
        }
        let bytewise: Vec<Bytes> = INLINE.chunks(1).map(Bytes::copy_from_slice).collect();
        assert_eq!(inspect_chunks(&bytewise), whole);
        // A byte-order mark split across chunks, and a second one that is
        // text before the root in both paths; a character split.
        for doc in [
            &b"\xEF\xBB\xBF<VAST/>"[..],
            b"\xEF\xBB\xBF\xEF\xBB\xBF<VAST/>",
            "<VAST><Ad><InLine><AdTitle>caf\u{e9} \u{1F3AC}</AdTitle></InLine></Ad></VAST>"
                .as_bytes(),
            b"<VAST>\xEF\xBF\xBE</VAST>",
            b"<VAST>\xE9</VAST>",
        ] {
            for at in 0..doc.len() {
                let chunks = [
                    Bytes::copy_from_slice(&doc[..at]),
                    Bytes::copy_from_slice(&doc[at..]),
                ];
                assert_eq!(
                    inspect_chunks(&chunks),
                    inspect(doc),
                    "{doc:?} split at {at}"
                );
            }
        }
        assert_eq!(
            inspect(b"\xEF\xBB\xBF\xEF\xBB\xBF<VAST/>"),
            VastVerdict::InvalidXml
        );
        assert_eq!(inspect(b"\xEF\xBB\xBF<VAST/>"), VastVerdict::NoAd);
        assert_eq!(inspect_chunks::<Bytes>(&[]), VastVerdict::Empty);
        assert_eq!(
            inspect_chunks(&[Bytes::new(), Bytes::new()]),
            VastVerdict::Empty
        );
    }

    #[test]
    fn dtds_are_refused_and_nothing_is_expanded() {
        let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE VAST [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x SYSTEM "file:///etc/passwd">]>
<VAST version="4.0"><Ad><InLine><AdTitle>&b;&x;</AdTitle></InLine></Ad></VAST>"#;
        assert_eq!(inspect(laughs), VastVerdict::InvalidXml);
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vast/");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{rel}")).unwrap()
    }

    #[test]
    fn wrapper_targets_of_the_iab_samples() {
        let iab =
            "https://raw.githubusercontent.com/InteractiveAdvertisingBureau/VAST_Samples/master/";
        let t = wrapper_target(&fixture("vast3/Wrapper_Tag-test.xml")).unwrap();
        assert_eq!(
            t.uri,
            format!("{iab}VAST%203.0%20Samples/Inline_Companion_Tag-test.xml")
        );
        assert!(t.follow_additional_wrappers);
        assert_eq!(t.fallback_on_no_ad, None);
        let t = wrapper_target(&fixture("vast4.2/Wrapper_Tag-test.xml")).unwrap();
        assert_eq!(
            t.uri,
            format!("{iab}VAST%204.2%20Samples/Inline_Companion_Tag-test.xml")
        );
        assert!(!t.follow_additional_wrappers);
        assert_eq!(t.fallback_on_no_ad, Some(false));
        let t = wrapper_target(&fixture("vast2/tremor/vast_wrapper_linear_1.xml")).unwrap();
        assert_eq!(
            t.uri,
            "http://demo.tremormedia.com/proddev/vast/vast_inline_linear.xml"
        );
        assert_eq!(wrapper_target(&fixture("vast4.2/Inline_Simple.xml")), None);
    }

    #[test]
    fn wrapper_targets() {
        let vast1 = br#"<VideoAdServingTemplate><Ad id="1"><Wrapper><AdSystem>x</AdSystem>
<VASTAdTagURL><URL><![CDATA[https://a/b?c=1&d=2]]></URL></VASTAdTagURL></Wrapper></Ad></VideoAdServingTemplate>"#;
        assert_eq!(
            wrapper_target(vast1),
            Some(WrapperTarget {
                uri: "https://a/b?c=1&d=2".into(),
                follow_additional_wrappers: true,
                fallback_on_no_ad: None,
            })
        );
        let escaped = br#"<VAST version="3.0"><Ad><InLine/></Ad><Ad><Wrapper followAdditionalWrappers=" false " fallbackOnNoAd="1"><VASTAdTagURI>
  https://a/b?c=1&amp;d=&#x32;
</VASTAdTagURI></Wrapper></Ad></VAST>"#;
        assert_eq!(
            wrapper_target(escaped),
            Some(WrapperTarget {
                uri: "https://a/b?c=1&d=2".into(),
                follow_additional_wrappers: false,
                fallback_on_no_ad: Some(true),
            })
        );
        // Not valid VAST, or no URI: nothing to follow.
        for doc in [
            &br#"<VAST version="9.0"><Ad><Wrapper><VASTAdTagURI>https://a</VASTAdTagURI></Wrapper></Ad></VAST>"#[..],
            br#"<VAST><Ad><Wrapper><VASTAdTagURI>https://a</VASTAdTagURI></Wrapper></Ad></VAST"#,
            br#"<VAST><Ad><Wrapper><VASTAdTagURI>&nbsp;https://a</VASTAdTagURI></Wrapper></Ad></VAST>"#,
            br#"<VAST><Ad><Wrapper><Impression>x</Impression></Wrapper></Ad></VAST>"#,
            br#"<VAST><Ad><Wrapper><VASTAdTagURI/></Wrapper></Ad></VAST>"#,
            br#"<VAST><Ad><Wrapper><VASTAdTagURI> </VASTAdTagURI></Wrapper></Ad></VAST>"#,
            br#"<VAST><Ad><InLine><VASTAdTagURI>https://a</VASTAdTagURI></InLine></Ad></VAST>"#,
        ] {
            assert_eq!(wrapper_target(doc), None, "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn pods_and_durations_come_from_the_same_scan() {
        let pod = br#"<VAST version="4.2">
  <Ad id="1" sequence="1"><InLine><Creatives><Creative><Linear><Duration>00:00:15</Duration></Linear></Creative>
    <Creative><CompanionAds/></Creative></Creatives></InLine></Ad>
  <Ad id="2" sequence="2"><InLine><Creatives><Creative><Linear>
    <Duration><![CDATA[ 00:00:30.500 ]]></Duration><Duration>00:09:00</Duration></Linear></Creative></Creatives></InLine></Ad>
  <Ad id="3" sequence="3"><InLine><Creatives><Creative><Linear><Duration>0:30</Duration></Linear></Creative>
    <Creative><Linear/></Creative><Creative><Linear><MediaFiles/></Linear></Creative></Creatives></InLine></Ad>
  <Ad id="4"><Wrapper><VASTAdTagURI>http://a/b</VASTAdTagURI><Creatives><Creative><Linear><Duration>00:01:00</Duration></Linear></Creative></Creatives></Wrapper></Ad>
</VAST>"#;
        let i = Inspection::of(pod);
        assert_eq!(i.verdict, ads(3, 1));
        assert_eq!(i.ads, 4);
        // 15 s + 30.5 s; a wrapper's creatives are not the ad's.
        assert_eq!(i.linear, Duration::from_millis(45_500));
        // `0:30`, a `<Linear/>`, a linear without a duration.
        assert_eq!(i.bad_durations, 3);
        assert_eq!(i.wrapper.as_ref().unwrap().uri, "http://a/b");
        let vast1 = br#"<VideoAdServingTemplate><Ad><InLine><Video><Duration>00:00:20</Duration></Video></InLine></Ad></VideoAdServingTemplate>"#;
        assert_eq!(Inspection::of(vast1).linear, Duration::from_secs(20));
        // A broken document yields nothing but its verdict.
        let broken = br#"<VAST><Ad><InLine><Creatives><Creative><Linear><Duration>00:00:15</Duration></Linear></Creative></Creatives></InLine></Ad>"#;
        assert_eq!(Inspection::of(broken), Inspection::verdict(VastVerdict::InvalidXml));
        let split = [Bytes::from_static(&pod[..100]), Bytes::from_static(&pod[100..])];
        assert_eq!(Inspection::of_chunks(&split), i);
    }

    #[test]
    fn durations() {
        for (text, ms) in [
            ("00:00:30", Some(30_000)),
            (" 01:02:03.004 ", Some(3_723_004)),
            ("0:00:05.5", Some(5_500)),
            ("00:00:05.25", Some(5_250)),
            ("0:30", None),
            ("00:60:00", None),
            ("00:00:5", None),
            ("00:00:05.", None),
            ("00:00:05.1234", None),
            ("-1:00:00", None),
            ("", None),
            ("00:00:30:00", None),
        ] {
            assert_eq!(duration_ms(text.as_bytes()), ms, "{text:?}");
        }
    }
}
