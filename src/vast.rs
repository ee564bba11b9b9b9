//! Streaming VAST inspection: is the body VAST, and does it carry an ad?
//!
//! Built on quick-xml, which never expands entities beyond the five
//! predefined ones and never fetches a DTD, so hostile documents cost
//! parse time only. Inspection looks at the root (`<VAST>`), its `<Ad>`
//! children and whether each is `<InLine>` or `<Wrapper>`, and checks that
//! the document is well-formed to the end.
//!
//! # Example
//!
//! ```
//! use vast_metrics::vast::{inspect, VastVerdict};
//!
//! let doc = br#"<VAST version="4.2"><Ad id="1"><InLine></InLine></Ad></VAST>"#;
//! assert_eq!(inspect(doc), VastVerdict::Ads { inline: 1, wrapper: 0 });
//! assert_eq!(inspect(br#"<VAST version="4.2"/>"#), VastVerdict::NoAd);
//! assert_eq!(inspect(b"<html>"), VastVerdict::InvalidXml);
//! assert_eq!(inspect(b""), VastVerdict::Empty);
//! ```

use std::io::{self, BufRead, Read};

use bytes::Buf;
use quick_xml::events::Event;
use quick_xml::Reader;

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
    /// Not well-formed XML, or a root other than `<VAST>`.
    InvalidXml,
    /// No bytes at all.
    Empty,
}

impl VastVerdict {
    /// The outcome of a 2xx fetch with this body.
    pub fn outcome(self) -> Outcome {
        match self {
            VastVerdict::Ads { .. } => Outcome::Ad,
            VastVerdict::NoAd => Outcome::NoAd,
            VastVerdict::InvalidXml => Outcome::Failure(ErrorType::InvalidXml),
            VastVerdict::Empty => Outcome::Failure(ErrorType::EmptyBody),
        }
    }

    /// Whether the body is a VAST document.
    pub fn is_vast(self) -> bool {
        matches!(self, VastVerdict::Ads { .. } | VastVerdict::NoAd)
    }
}

/// Inspects a whole body held in one slice.
pub fn inspect(body: &[u8]) -> VastVerdict {
    if body.is_empty() {
        return VastVerdict::Empty;
    }
    let mut reader = Reader::from_reader(body);
    let mut scan = Scan::default();
    loop {
        match reader.read_event() {
            Ok(event) => {
                if let Some(verdict) = scan.step(event) {
                    return verdict;
                }
            }
            Err(_) => return VastVerdict::InvalidXml,
        }
    }
}

/// Inspects a body held in several buffers (the frames of a stream), in
/// place: the buffers are read, not joined.
pub fn inspect_chunks<D: Buf + Clone>(chunks: &[D]) -> VastVerdict {
    match chunks {
        [] => VastVerdict::Empty,
        [one] if one.chunk().len() == one.remaining() => inspect(one.chunk()),
        _ => {
            if chunks.iter().all(|c| !c.has_remaining()) {
                return VastVerdict::Empty;
            }
            if chunks.iter().any(|c| c.chunk().len() != c.remaining()) {
                // A split `Buf` (a `Chain`, say) is rare: join a copy.
                let mut joined = Vec::with_capacity(chunks.iter().map(Buf::remaining).sum());
                for c in chunks {
                    let mut c = c.clone();
                    while c.has_remaining() {
                        let n = c.chunk().len();
                        joined.extend_from_slice(c.chunk());
                        c.advance(n);
                    }
                }
                return inspect(&joined);
            }
            let chunk_reader = ChunkReader::new(chunks);
            let mut reader = Reader::from_reader(chunk_reader);
            let mut scan = Scan::default();
            let mut buf = Vec::new();
            loop {
                match reader.read_event_into(&mut buf) {
                    Ok(event) => {
                        if let Some(verdict) = scan.step(event) {
                            return verdict;
                        }
                    }
                    Err(_) => return VastVerdict::InvalidXml,
                }
                buf.clear();
            }
        }
    }
}

/// What the scan has seen so far.
#[derive(Default)]
struct Scan {
    depth: usize,
    root_seen: bool,
    in_ad: bool,
    inline: u32,
    wrapper: u32,
    ads: u32,
}

impl Scan {
    /// Consumes one event; `Some` once the verdict is known.
    fn step(&mut self, event: Event<'_>) -> Option<VastVerdict> {
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                if start.attributes().with_checks(true).any(|a| a.is_err()) {
                    return Some(VastVerdict::InvalidXml);
                }
                let name = start.local_name();
                match self.depth {
                    0 if self.root_seen => return Some(VastVerdict::InvalidXml),
                    0 if name.as_ref() != b"VAST" => return Some(VastVerdict::InvalidXml),
                    0 => self.root_seen = true,
                    1 if name.as_ref() == b"Ad" => {
                        self.ads += 1;
                        self.in_ad = !empty;
                    }
                    2 if self.in_ad && name.as_ref() == b"InLine" => self.inline += 1,
                    2 if self.in_ad && name.as_ref() == b"Wrapper" => self.wrapper += 1,
                    _ => {}
                }
                if !empty {
                    self.depth += 1;
                }
            }
            Event::End(_) => {
                self.depth = self.depth.checked_sub(1)?;
                if self.depth == 1 {
                    self.in_ad = false;
                }
            }
            Event::Text(text) if self.depth == 0 && !text.iter().all(u8::is_ascii_whitespace) => {
                return Some(VastVerdict::InvalidXml);
            }
            Event::CData(_) | Event::GeneralRef(_) if self.depth == 0 => {
                return Some(VastVerdict::InvalidXml);
            }
            Event::Eof => {
                return Some(if !self.root_seen || self.depth != 0 {
                    VastVerdict::InvalidXml
                } else if self.ads == 0 {
                    VastVerdict::NoAd
                } else {
                    VastVerdict::Ads {
                        inline: self.inline,
                        wrapper: self.wrapper,
                    }
                });
            }
            _ => {}
        }
        None
    }
}

/// `BufRead` over a list of contiguous buffers, without joining them.
struct ChunkReader<'a, D> {
    chunks: &'a [D],
    index: usize,
    offset: usize,
    /// The first bytes when the first chunk is shorter than a byte-order
    /// mark: quick-xml looks for one in its first read only.
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
}

impl<'a, D: Buf> ChunkReader<'a, D> {
    fn new(chunks: &'a [D]) -> Self {
        let mut reader = ChunkReader {
            chunks,
            index: 0,
            offset: 0,
            head: [0; 3],
            head_len: 0,
            head_pos: 0,
        };
        if chunks.first().is_some_and(|c| c.chunk().len() < 3) {
            while reader.head_len < 3 {
                let Some(&byte) = reader.fill_chunk().first() else {
                    break;
                };
                reader.head[reader.head_len] = byte;
                reader.head_len += 1;
                reader.offset += 1;
            }
        }
        reader
    }

    /// The rest of the current chunk, moving past empty ones.
    fn fill_chunk(&mut self) -> &'a [u8] {
        while let Some(chunk) = self.chunks.get(self.index) {
            let rest = &chunk.chunk()[self.offset..];
            if !rest.is_empty() {
                return rest;
            }
            self.index += 1;
            self.offset = 0;
        }
        &[]
    }
}

impl<D: Buf> Read for ChunkReader<'_, D> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<D: Buf> BufRead for ChunkReader<'_, D> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.head_pos < self.head_len {
            return Ok(&self.head[self.head_pos..self.head_len]);
        }
        Ok(self.fill_chunk())
    }

    fn consume(&mut self, amt: usize) {
        if self.head_pos < self.head_len {
            self.head_pos += amt;
        } else {
            self.offset += amt;
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

    #[test]
    fn verdicts() {
        assert_eq!(
            inspect(INLINE),
            VastVerdict::Ads {
                inline: 1,
                wrapper: 1
            }
        );
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
        assert_eq!(
            inspect(b"<VideoAdServingTemplate/>"),
            VastVerdict::InvalidXml
        );
        assert_eq!(inspect(b"not xml"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b"<VAST a=\"1\" a=\"2\"/>"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b"   \n"), VastVerdict::InvalidXml);
        assert_eq!(inspect(b""), VastVerdict::Empty);
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
        // text before the root in both paths.
        for doc in [
            &b"\xEF\xBB\xBF<VAST/>"[..],
            b"\xEF\xBB\xBF\xEF\xBB\xBF<VAST/>",
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
        assert_eq!(inspect_chunks::<Bytes>(&[]), VastVerdict::Empty);
        assert_eq!(
            inspect_chunks(&[Bytes::new(), Bytes::new()]),
            VastVerdict::Empty
        );
    }

    #[test]
    fn entities_are_not_expanded() {
        let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE VAST [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x SYSTEM "file:///etc/passwd">]>
<VAST version="4.0"><Ad><InLine><AdTitle>&b;&x;</AdTitle></InLine></Ad></VAST>"#;
        assert_eq!(
            inspect(laughs),
            VastVerdict::Ads {
                inline: 1,
                wrapper: 0
            }
        );
    }
}
