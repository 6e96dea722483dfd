//! `Vary` (RFC 9111 §4.1): which request headers select among stored responses for one URL.
//!
//! The names a response varies on become part of its cache key together with the request's values for them,
//! so each variant is stored under a key of its own. Names isr-proxy keys on anyway are left out:
//! `Accept-Encoding` (the origin is always asked for identity and isr-proxy picks the coding per client) and
//! the Next.js RSC headers (already part of every key).

use std::sync::Arc;

use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, HeaderName, HeaderValue, VARY};

use crate::cache::key::{VARIANT_HEADERS, VaryValues};

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary` (or only names isr-proxy keys on anyway): one response serves every request for the URL.
    None,
    /// `*` in any position or form, or a name that is not a header name: no request can be known to match, so
    /// the response is not stored.
    Star,
    /// The selecting header names, lower-case, sorted and without duplicates.
    Names(Arc<[HeaderName]>),
}

impl Vary {
    /// Reads every `Vary` line of a response.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut names: Vec<HeaderName> = Vec::new();
        for line in headers.get_all(VARY) {
            let Ok(line) = line.to_str() else {
                return Self::Star;
            };
            for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name == "*" {
                    return Self::Star;
                }
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    return Self::Star;
                };
                let keyed_anyway = name == ACCEPT_ENCODING || VARIANT_HEADERS.contains(&name.as_str());
                if !keyed_anyway && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if names.is_empty() {
            return Self::None;
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Self::Names(names.into())
    }
}

/// A request's values for `names`, normalised (lines joined, whitespace around commas removed); a header the
/// request lacks is `None`, which matches only a stored request that lacked it too.
pub fn selecting_values(names: &[HeaderName], request: &HeaderMap) -> VaryValues {
    names
        .iter()
        .map(|name| (name.clone(), normalised(request, name)))
        .collect()
}

fn normalised(request: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut lines = request.get_all(name).iter().peekable();
    lines.peek()?;
    let mut joined: Vec<u8> = Vec::new();
    for line in lines {
        for member in line.as_bytes().split(|b| *b == b',') {
            let member = member.trim_ascii();
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(member);
        }
    }
    HeaderValue::from_bytes(&joined).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn vary_forms() {
        let names = |list: &[&'static str]| {
            Vary::Names(
                list.iter()
                    .map(|n| HeaderName::from_static(n))
                    .collect::<Vec<_>>()
                    .into(),
            )
        };
        let cases: Vec<(Vec<(&'static str, &'static str)>, Vary)> = vec![
            (vec![], Vary::None),
            (vec![("vary", "Accept-Encoding")], Vary::None),
            (vec![("vary", "RSC, Next-Router-State-Tree")], Vary::None),
            (vec![("vary", "*")], Vary::Star),
            (vec![("vary", "*, *")], Vary::Star),
            (vec![("vary", "*"), ("vary", "*")], Vary::Star),
            (vec![("vary", ", *")], Vary::Star),
            (vec![("vary", ""), ("vary", "*")], Vary::Star),
            (vec![("vary", "*, Foo")], Vary::Star),
            (vec![("vary", "Foo, *")], Vary::Star),
            (vec![("vary", "Fo o")], Vary::Star),
            (vec![("vary", "Foo")], names(&["foo"])),
            (
                vec![("vary", "Foo, Bar"), ("vary", "foo, Accept-Encoding")],
                names(&["bar", "foo"]),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(Vary::parse(&headers(&pairs)), want, "{pairs:?}");
        }
    }

    #[test]
    fn selecting_values_tell_absent_from_empty_and_normalise_lists() {
        let names = [HeaderName::from_static("foo"), HeaderName::from_static("bar")];
        let got = selecting_values(&names, &headers(&[("foo", "a ,b"), ("foo", "c"), ("bar", "")]));
        assert_eq!(got[0].1.as_ref().map(|v| v.as_bytes()), Some(&b"a, b, c"[..]));
        assert_eq!(got[1].1.as_ref().map(|v| v.as_bytes()), Some(&b""[..]));
        let absent = selecting_values(&names, &HeaderMap::new());
        assert!(absent.iter().all(|(_, value)| value.is_none()));
        assert_ne!(got, absent);
    }
}
