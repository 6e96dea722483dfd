//! [`CacheKey`]: what identifies one cached page.
//!
//! A key is the normalised path, the query the route's policy keeps, and the request-header variant (Next.js's
//! RSC headers). The key alone determines the origin request, so nothing a key ignores can change what is stored
//! (no cache poisoning), and a background regeneration can replay the request without the client.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// Request headers that make a separate variant of a page. Next.js answers a request carrying them with a React
/// Server Components payload (`text/x-component`) instead of HTML, so they must never share an entry. `Next-Url`
/// is part of the hash Next.js checks `_rsc` against (and selects intercepting routes): without it the origin
/// answers every navigation with a 307.
pub const VARIANT_HEADERS: [&str; 5] = [
    "rsc",
    "next-router-prefetch",
    "next-router-segment-prefetch",
    "next-router-state-tree",
    "next-url",
];

/// Identifies one cached page. Cheap to clone (one `Arc`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash)]
struct KeyParts {
    path_and_query: Box<str>,
    variant: Box<[(HeaderName, HeaderValue)]>,
}

impl CacheKey {
    /// A key from an already normalised path, the query the route keeps, and the variant headers.
    pub fn new(path: &str, query: Option<&str>, variant: Vec<(HeaderName, HeaderValue)>) -> Self {
        let path_and_query = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Self(Arc::new(KeyParts {
            path_and_query: path_and_query.into_boxed_str(),
            variant: variant.into_boxed_slice(),
        }))
    }

    /// The variant headers present on a request, in [`VARIANT_HEADERS`] order; empty for a plain page request.
    pub fn variant_of(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        if headers.is_empty() {
            return Vec::new();
        }
        VARIANT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?;
                Some((HeaderName::from_static(name), value.clone()))
            })
            .collect()
    }

    /// What the origin is asked for: `/path?kept=query`.
    pub fn path_and_query(&self) -> &str {
        &self.0.path_and_query
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        let pq = self.path_and_query();
        pq.split_once('?').map_or(pq, |(path, _)| path)
    }

    /// Variant headers replayed on the origin request.
    pub fn variant(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0.variant
    }

    /// Approximate bytes this key occupies, for the cache weigher.
    pub fn weight(&self) -> usize {
        self.0.path_and_query.len()
            + self
                .0
                .variant
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path_and_query())?;
        for (name, value) in self.variant() {
            write!(f, " [{name}: {}]", value.to_str().unwrap_or("<binary>"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsc_requests_are_a_separate_variant() {
        let mut rsc = HeaderMap::new();
        rsc.insert("rsc", HeaderValue::from_static("1"));
        rsc.insert("accept", HeaderValue::from_static("*/*"));
        let html = CacheKey::new("/blog/a", None, CacheKey::variant_of(&HeaderMap::new()));
        let flight = CacheKey::new("/blog/a", None, CacheKey::variant_of(&rsc));
        assert_ne!(html, flight, "an RSC payload must never be served for an HTML request");
        assert_eq!(flight.variant().len(), 1, "only variant headers are keyed");
        assert_eq!(flight.to_string(), "/blog/a [rsc: 1]");
    }

    #[test]
    fn path_and_query_round_trip() {
        let key = CacheKey::new("/list", Some("page=2"), Vec::new());
        assert_eq!(key.path_and_query(), "/list?page=2");
        assert_eq!(key.path(), "/list");
        assert_eq!(key, CacheKey::new("/list", Some("page=2"), Vec::new()));
    }
}
