//! The read position in a document, and the lexical pieces read from it:
//! names, references, attribute values.

use super::chars::*;

/// Not well-formed.
pub(super) struct Bad;

pub(super) type Res<T = ()> = Result<T, Bad>;

/// A read position in the document.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl Cursor<'_> {
    #[inline]
    pub(super) fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn peek_at(&self, i: usize) -> Option<u8> {
        self.buf.get(self.pos + i).copied()
    }

    #[inline]
    pub(super) fn starts_with(&self, lit: &[u8]) -> bool {
        self.rest().starts_with(lit)
    }

    #[inline]
    pub(super) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Consumes `lit` or fails.
    #[inline]
    pub(super) fn expect(&mut self, lit: &[u8]) -> Res {
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
    pub(super) fn expect_copy(&mut self, from: usize, to: usize) -> Res {
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
    pub(super) fn skip_to(&mut self, found: Option<usize>) -> Option<u8> {
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
    pub(super) fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.buf.get(self.pos) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The character here (the input is valid UTF-8) and its length.
    pub(super) fn peek_char(&self) -> Option<(char, usize)> {
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
pub(super) struct QName {
    pub(super) start: usize,
    pub(super) colon: usize,
    pub(super) local: usize,
    pub(super) end: usize,
}

impl QName {
    #[inline]
    pub(super) fn prefix(self, doc: &[u8]) -> &[u8] {
        &doc[self.start..self.colon]
    }
    #[inline]
    pub(super) fn local(self, doc: &[u8]) -> &[u8] {
        &doc[self.local..self.end]
    }
}

/// A reference at `&`: one of the five predefined entities or a character
/// reference to a `Char`. With `out`, its character goes there.
pub(super) fn reference(s: &mut Cursor<'_>, out: Option<&mut Vec<u8>>) -> Res {
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
pub(super) fn skip_value(s: &mut Cursor<'_>, quote: u8) -> Res {
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
pub(super) fn attr_value(s: &mut Cursor<'_>, quote: u8, out: Option<&mut Vec<u8>>) -> Res {
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
pub(super) fn qname(s: &mut Cursor<'_>) -> Res<QName> {
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
pub(super) fn qname_slow(s: &mut Cursor<'_>) -> Res<QName> {
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
