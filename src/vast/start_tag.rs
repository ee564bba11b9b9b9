//! Start tags: the element's name, its attributes checked (unique after
//! namespace resolution, values well-formed), namespace declarations
//! taken, and what the tag means for the document (the root, an `<Ad>`, its
//! `<InLine>` or `<Wrapper>`).

use super::chars::*;
use super::cursor::*;
use super::extract::{
    boolean, FirstWrapper, Flags, Track, DURATIONS, DURATIONS_VAST1, TAG_URI, TAG_URI_VAST1,
};
use super::namespaces::{XMLNS_URI, XML_URI};
use super::parser::{supported_version, Open, Parser, Root};

impl Parser<'_, '_> {
    /// A start tag at `<`; whether it opened an element (not `<x/>`).
    #[inline(always)]
    pub(super) fn start_tag(&mut self) -> Res<bool> {
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
                let path = if self.vast1 {
                    DURATIONS_VAST1
                } else {
                    DURATIONS
                };
                self.follow(Track::Durations(path), open);
            }
            2 if self.in_ad && local == b"Wrapper" => {
                self.wrapper += 1;
                self.in_ad = false;
                if first_wrapper {
                    self.first_wrapper = if open {
                        FirstWrapper::Reading(Flags {
                            follow_additional_wrappers: follow,
                            fallback_on_no_ad: fallback,
                        })
                    } else {
                        FirstWrapper::Done(None)
                    };
                    let path = if self.vast1 { TAG_URI_VAST1 } else { TAG_URI };
                    self.follow(Track::TagUri(path), open);
                }
            }
            d if d == self.want && local == self.want_name => self.on_path(open),
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
    pub(super) fn check_attributes(&self) -> Res {
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
    pub(super) fn key(&self, attr: QName) -> Res<(Option<&[u8]>, &[u8])> {
        let prefix = attr.prefix(self.s.buf);
        let uri: Option<&[u8]> = match prefix {
            b"" => None,
            b"xml" => Some(XML_URI),
            _ => Some(self.lookup(prefix).ok_or(Bad)?),
        };
        Ok((uri, attr.local(self.s.buf)))
    }
}
