//! Characters and names: what XML 1.0 allows, and the table and
//! word-at-a-time look-ups the scan's hot loops use.

/// Whether `doc` is UTF-8 made only of characters XML 1.0 allows
/// (`Char`). Every character of a well-formed document is one, so this is
/// checked once, up front.
pub(super) fn chars_ok(doc: &[u8]) -> bool {
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

pub(super) fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// XML 1.0 `Char`.
pub(super) fn is_xml_char(c: char) -> bool {
    match c as u32 {
        0..0x20 => matches!(c, '\t' | '\n' | '\r'),
        0xFFFE | 0xFFFF => false,
        _ => true,
    }
}

pub(super) fn is_name_start_byte(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b':' | b'_')
}

#[inline]
pub(super) fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[b as usize]
}

/// How many ASCII name bytes but the colon `rest` starts with. Unrolled:
/// a byte costs a load, a table look-up and a branch.
#[inline(always)]
pub(super) fn plain_name_len(rest: &[u8]) -> usize {
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
pub(super) const VALUE_STOPS: [[bool; 256]; 2] = {
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
pub(super) const PLAIN_NAME: [bool; 256] = {
    let mut t = NAME_BYTES;
    t[b':' as usize] = false;
    t
};

/// ASCII name bytes, colon included.
pub(super) const NAME_BYTES: [bool; 256] = {
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
pub(super) fn local_hash(local: &[u8]) -> u32 {
    let n = local.len();
    let byte = |i: usize| u32::from(local[i]);
    (byte(0) + byte(1.min(n - 1)) * 3 + byte(n - 1) * 7 + n as u32 * 13) & 63
}

pub(super) const LO: u64 = 0x0101_0101_0101_0101;
pub(super) const HI: u64 = LO * 0x80;

/// The 8 bytes of `buf` at `at`, if there are 8, as one word (byte `i`
/// in bits `8i..8i+8`).
#[inline]
pub(super) fn word(buf: &[u8], at: usize) -> Option<u64> {
    let w = buf.get(at..at + 8)?;
    Some(u64::from_le_bytes(w.try_into().ok()?))
}

/// The high bit of each byte of `w` equal to `b`. Exact up to the first
/// one, which is all a search reads: a borrow only marks bytes after it.
#[inline]
pub(super) fn eq_bytes(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

/// Where the first `a`, `b` or `c` of `hay` is: a word at a time over the
/// first bytes (many runs, text and values, end there, and a `memchr` call
/// costs more), `memchr` past them.
#[inline]
pub(super) fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
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
pub(super) fn is_name_start_char(c: char) -> bool {
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
pub(super) fn is_name_char(c: char) -> bool {
    match c as u32 {
        0..=0x80 => is_name_byte(c as u8),
        0xB7 | 0x300..=0x36F | 0x203F..=0x2040 => true,
        _ => is_name_start_char(c),
    }
}

/// Whether a (valid UTF-8) name begins with a `NameStartChar`.
#[inline]
pub(super) fn starts_name(name: &[u8]) -> bool {
    match name.first() {
        None => false,
        Some(&b) if b < 0x80 => is_name_start_byte(b),
        Some(_) => std::str::from_utf8(&name[..utf8_len(name[0]).min(name.len())])
            .ok()
            .and_then(|s| s.chars().next())
            .is_some_and(is_name_start_char),
    }
}
