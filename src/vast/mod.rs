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

mod chars;
mod cursor;
mod extract;
mod namespaces;
mod parser;
mod start_tag;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Buf;

use self::parser::scan;
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
