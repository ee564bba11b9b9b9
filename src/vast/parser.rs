//! The scanner: one pass over a document, well-formedness as the oracle
//! (`roxmltree`) checks it, counting `<Ad>`s on the way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use super::chars::*;
use super::cursor::*;
use super::extract::{FirstWrapper, Track};
use super::namespaces::Decl;
use super::{Inspection, VastVerdict, WrapperTarget};

pub(super) fn scan(doc: &[u8]) -> Inspection {
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

pub(super) fn parse(doc: &[u8], b: &mut Buffers) -> Inspection {
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
            FirstWrapper::Done(Some(flags)) => Some(WrapperTarget {
                uri: String::from_utf8_lossy(&p.b.uri).into_owned(),
                follow_additional_wrappers: flags.follow_additional_wrappers,
                fallback_on_no_ad: flags.fallback_on_no_ad,
            }),
            _ => None,
        },
    }
}

pub(super) fn supported_version(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let mut parts = value.split(|&b| b == b'.');
    let major = parts.next().unwrap_or_default();
    matches!(major, b"2" | b"3" | b"4")
        && parts.all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
}

/// An open element.
#[derive(Clone, Copy)]
pub(super) struct Open {
    pub(super) name: QName,
    /// `ns.len()` before its namespace declarations.
    pub(super) ns_mark: usize,
}

/// A scan's growable state. Each thread keeps its last one for its next
/// scan, so that most scans allocate nothing.
pub(super) struct Buffers {
    pub(super) open: Vec<Open>,
    /// The current tag's attributes but namespace declarations.
    pub(super) attrs: Vec<QName>,
    /// The current tag's `version`, decoded.
    pub(super) version: Vec<u8>,
    /// A wrapper flag, a `<Duration>` or a tag URI, decoded.
    pub(super) text: Vec<u8>,
    /// The first wrapper's tag URI, trimmed.
    pub(super) uri: Vec<u8>,
    /// Namespace declarations in scope, innermost last.
    pub(super) ns: Vec<Decl>,
    /// Their URIs, decoded, end to end.
    pub(super) uris: Vec<u8>,
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
            uri: Vec::new(),
            ns: Vec::new(),
            uris: Vec::new(),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        self.open.capacity() * size_of::<Open>()
            + self.attrs.capacity() * size_of::<QName>()
            + self.version.capacity()
            + self.text.capacity()
            + self.uri.capacity()
            + self.ns.capacity() * size_of::<Decl>()
            + self.uris.capacity()
    }

    pub(super) fn clear(&mut self) {
        self.open.clear();
        self.attrs.clear();
        self.version.clear();
        self.text.clear();
        self.uri.clear();
        self.ns.clear();
        self.uris.clear();
    }
}

thread_local! {
    static SPARE: RefCell<Buffers> = const { RefCell::new(Buffers::new()) };
}

/// What the root says about the document.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    Vast { supported: bool },
    Other,
}

/// Well-formedness as roxmltree (the oracle) checks it, without a DTD,
/// counting `<Ad>`s on the way.
pub(super) struct Parser<'a, 'b> {
    pub(super) s: Cursor<'a>,
    pub(super) b: &'b mut Buffers,
    /// Indexes in `b.ns` of each prefix's declarations, once there are more
    /// than `NS_WALK`.
    pub(super) index: Option<HashMap<&'a [u8], Vec<usize>>>,
    pub(super) root: Root,
    /// VAST 1.0 (`<VideoAdServingTemplate>`): its own paths to durations
    /// and tag URIs.
    pub(super) vast1: bool,
    pub(super) in_ad: bool,
    pub(super) ads: u32,
    pub(super) inline: u32,
    pub(super) wrapper: u32,
    /// The path followed inside the current ad, if any.
    pub(super) track: Track,
    /// Depth of the next element on the path (3 is the first, inside
    /// `<InLine>` or `<Wrapper>`); 0 when there is none.
    pub(super) want: usize,
    /// The name of the next element on the path.
    pub(super) want_name: &'static [u8],
    /// Where the content of the path's last element starts.
    pub(super) leaf_from: usize,
    /// The current linear creative's `<Duration>` was read.
    pub(super) timed: bool,
    pub(super) linear_ms: u64,
    pub(super) bad_durations: u32,
    pub(super) first_wrapper: FirstWrapper,
}

impl<'a, 'b> Parser<'a, 'b> {
    pub(super) fn new(doc: &'a [u8], b: &'b mut Buffers) -> Self {
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
            want_name: b"",
            leaf_from: 0,
            timed: false,
            linear_ms: 0,
            bad_durations: 0,
            first_wrapper: FirstWrapper::NotSeen,
        }
    }

    pub(super) fn document(&mut self) -> Res {
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
    pub(super) fn declaration(&mut self) -> Res {
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

    pub(super) fn decl_spaces(&mut self) -> Res {
        if !self.s.skip_spaces() && !self.s.starts_with(b"?>") && !self.s.at_end() {
            return Err(Bad);
        }
        Ok(())
    }

    pub(super) fn decl_attribute(&mut self) -> Res {
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
    pub(super) fn misc(&mut self) -> Res {
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

    pub(super) fn comment(&mut self) -> Res {
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

    pub(super) fn pi(&mut self) -> Res {
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

    pub(super) fn cdata(&mut self) -> Res {
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
    pub(super) fn name(&mut self) -> Res {
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
    pub(super) fn eq(&mut self) -> Res {
        self.s.skip_spaces();
        self.s.expect(b"=")?;
        self.s.skip_spaces();
        Ok(())
    }

    #[inline]
    pub(super) fn quote(&mut self) -> Res<u8> {
        match self.s.peek() {
            Some(q @ (b'"' | b'\'')) => {
                self.s.advance(1);
                Ok(q)
            }
            _ => Err(Bad),
        }
    }

    /// An end tag at `</`, matching the innermost open element.
    pub(super) fn end_tag(&mut self) -> Res {
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

    /// The content of the root, through its end tag.
    pub(super) fn content(&mut self) -> Res {
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
    pub(super) fn text(&mut self) -> Res {
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
