//! What a fetcher needs from a document, read in the same pass as the
//! verdict: the seconds of each linear creative of an `<InLine>` ad, and
//! the first wrapper's tag URI and flags. The scan follows one path of
//! element names inside each ad and reads only the text at its end.

use super::cursor::*;
use super::parser::Parser;

/// A path of elements whose text a fetcher needs, from inside `<InLine>`
/// or `<Wrapper>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Track {
    None,
    /// To `<Duration>`, through the linear creative (the element before it).
    Durations(&'static [&'static [u8]]),
    /// To the tag URI of the first wrapper.
    TagUri(&'static [&'static [u8]]),
}

impl Track {
    pub(super) fn path(self) -> &'static [&'static [u8]] {
        match self {
            Track::None => &[],
            Track::Durations(path) | Track::TagUri(path) => path,
        }
    }
}

pub(super) const DURATIONS: &[&[u8]] = &[b"Creatives", b"Creative", b"Linear", b"Duration"];
pub(super) const DURATIONS_VAST1: &[&[u8]] = &[b"Video", b"Duration"];
pub(super) const TAG_URI: &[&[u8]] = &[b"VASTAdTagURI"];
pub(super) const TAG_URI_VAST1: &[&[u8]] = &[b"VASTAdTagURL", b"URL"];

/// A wrapper's flags: `followAdditionalWrappers`, `fallbackOnNoAd`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Flags {
    pub(super) follow_additional_wrappers: bool,
    pub(super) fallback_on_no_ad: Option<bool>,
}

/// The first `<Ad>` whose first child is a `<Wrapper>`. Plain data (its
/// URI waits in [`Buffers`](super::parser::Buffers)): the parser needs no
/// drop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstWrapper {
    NotSeen,
    /// Inside it, before its tag URI.
    Reading(Flags),
    /// Read: its flags when it named a URI.
    Done(Option<Flags>),
}

impl Parser<'_, '_> {
    /// Starts following `track` inside an `<InLine>` or `<Wrapper>`.
    pub(super) fn follow(&mut self, track: Track, open: bool) {
        if open {
            self.track = track;
            self.expect(3);
        }
    }

    /// The next element on the path is at `depth` (0: none): the start
    /// tag compares its name with one slice, and calls here only on a match.
    fn expect(&mut self, depth: usize) {
        self.want = depth;
        self.want_name = match depth.checked_sub(3) {
            Some(i) => self.track.path().get(i).copied().unwrap_or_default(),
            None => b"",
        };
    }

    /// The next element on the path opened (or was empty).
    #[cold]
    pub(super) fn on_path(&mut self, open: bool) {
        let path = self.track.path();
        let i = self.want - 3;
        let leaf = i + 1 == path.len();
        let linear = matches!(self.track, Track::Durations(_)) && i + 2 == path.len();
        if open {
            self.expect(self.want + 1);
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
    pub(super) fn closed_on_path(&mut self, depth: usize, content_end: usize) {
        let path = self.track.path();
        if depth < 3 {
            // The `<InLine>` or `<Wrapper>` ended.
            if let FirstWrapper::Reading { .. } = self.first_wrapper {
                if matches!(self.track, Track::TagUri(_)) {
                    self.first_wrapper = FirstWrapper::Done(None);
                }
            }
            self.track = Track::None;
            self.expect(0);
            return;
        }
        self.expect(depth);
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
    pub(super) fn leaf_read(&mut self, content: &[u8]) {
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
            (Track::TagUri(_), &FirstWrapper::Reading(flags)) => {
                let uri = text.trim_ascii();
                self.b.uri.clear();
                self.b.uri.extend_from_slice(uri);
                self.first_wrapper = FirstWrapper::Done((!uri.is_empty()).then_some(flags));
            }
            _ => {}
        }
        self.b.text = text;
    }
}

/// An `xs:boolean`, as the schema spells it.
pub(super) fn boolean(value: &[u8]) -> Option<bool> {
    match value.trim_ascii() {
        b"true" | b"1" => Some(true),
        b"false" | b"0" => Some(false),
        _ => None,
    }
}

/// `HH:MM:SS` or `HH:MM:SS.mmm` in milliseconds: hours of any width,
/// minutes and seconds of two digits below 60, one to three digits of
/// fraction.
pub(super) fn duration_ms(text: &[u8]) -> Option<u64> {
    pub(super) fn digits(d: &[u8], width: std::ops::RangeInclusive<usize>) -> Option<u64> {
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
pub(super) fn text_of(content: &[u8], out: &mut Vec<u8>) {
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
            let mut s = Cursor {
                buf: content,
                pos: i,
            };
            // Checked by the scan: it resolves.
            let _ = reference(&mut s, (depth == 0).then_some(&mut *out));
            i = s.pos.max(i + 1);
        } else if let Some(inner) = rest.strip_prefix(b"<![CDATA[") {
            let end = find(inner, b"]]>").unwrap_or(inner.len());
            if depth == 0 {
                out.extend_from_slice(&inner[..end]);
            }
            i += 9 + end + 3;
        } else if rest.starts_with(b"<!--") {
            i += 4 + find(&rest[4..], b"-->").map_or(rest.len(), |e| e + 3);
        } else if rest.starts_with(b"<?") {
            i += 2 + find(&rest[2..], b"?>").map_or(rest.len(), |e| e + 2);
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

/// Where `pat` first starts in `hay`: by its first byte, as the texts read
/// here are short (a `memmem` finder costs more to build than to run).
fn find(hay: &[u8], pat: &[u8]) -> Option<usize> {
    memchr::memchr_iter(pat[0], hay).find(|&at| hay[at..].starts_with(pat))
}
