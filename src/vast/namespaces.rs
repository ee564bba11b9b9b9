//! Namespaces: declarations in scope, prefixes looked up.

use std::collections::HashMap;

use super::parser::Parser;

pub(super) const XML_URI: &[u8] = b"http://www.w3.org/XML/1998/namespace";
pub(super) const XMLNS_URI: &[u8] = b"http://www.w3.org/2000/xmlns/";

/// A namespace declaration in scope: the prefix `doc[prefix.0..prefix.1]`
/// is bound to `uris[uri.0..uri.1]`.
#[derive(Clone, Copy)]
pub(super) struct Decl {
    pub(super) prefix: (usize, usize),
    pub(super) uri: (usize, usize),
}

/// Declarations in scope up to which a prefix is looked up by a walk down
/// them; past it, in a map (a hostile body declares thousands).
pub(super) const NS_WALK: usize = 16;

impl Parser<'_, '_> {
    /// The URI of the innermost declaration of `prefix` in scope.
    pub(super) fn lookup(&self, prefix: &[u8]) -> Option<&[u8]> {
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
    pub(super) fn declared_since(&self, mark: usize, prefix: &[u8]) -> bool {
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

    pub(super) fn declare(&mut self, prefix: (usize, usize), uri: (usize, usize)) {
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
    pub(super) fn undeclare(&mut self, mark: usize) {
        // Most elements declare nothing.
        if self.b.ns.len() > mark {
            self.undeclare_since(mark);
        }
    }

    pub(super) fn undeclare_since(&mut self, mark: usize) {
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
}
