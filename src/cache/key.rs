//! [`CacheKey`]: what identifies one cached page.
//!
//! A key is the normalised path, the query the route's policy keeps, and the request-header variant (Next.js's
//! RSC headers); for a host-specific route, also the normalised host, so each site has its own pages. The key alone determines the origin request, so nothing a key ignores can change what is stored
//! (no cache poisoning), and a background regeneration can replay the request without the client.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

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

/// [`VARIANT_HEADERS`] as header names, so that reading them from a request parses nothing.
const VARIANT_HEADER_NAMES: [HeaderName; VARIANT_HEADERS.len()] = [
    HeaderName::from_static(VARIANT_HEADERS[0]),
    HeaderName::from_static(VARIANT_HEADERS[1]),
    HeaderName::from_static(VARIANT_HEADERS[2]),
    HeaderName::from_static(VARIANT_HEADERS[3]),
    HeaderName::from_static(VARIANT_HEADERS[4]),
];

/// Separates the host from the tag in a [`scoped_tag`]: a control character, which no header value (and so no
/// origin tag) contains.
const TAG_SCOPE: char = '\u{1}';

/// The name under which a page's `tag` is indexed (memory, Redis): the tag itself for a host-less page, the tag
/// scoped by the page's host for a host-specific one, so one site's tag never reaches another site's pages.
pub fn scoped_tag<'a>(host: Option<&str>, tag: &'a str) -> std::borrow::Cow<'a, str> {
    match host {
        Some(host) => std::borrow::Cow::Owned(format!("{host}{TAG_SCOPE}{tag}")),
        None => std::borrow::Cow::Borrowed(tag),
    }
}

/// The origin's tag inside a [`scoped_tag`].
pub fn unscoped_tag(scoped: &str) -> &str {
    scoped.split_once(TAG_SCOPE).map_or(scoped, |(_, tag)| tag)
}

/// Identifies one cached page. Cheap to clone (one `Arc`), and cheap to hash: the hash is computed once, when
/// the key is made, so a cache lookup hashes eight bytes instead of the path and the variant headers.
#[derive(Clone)]
pub struct CacheKey(Arc<KeyParts>);

struct KeyParts {
    /// xxh3 of the host, path, query and variant, seeded per process so that nobody can choose colliding paths.
    hash: u64,
    /// The site, for host-specific routes only (`None` costs nothing on the hit path).
    host: Option<Box<str>>,
    path_and_query: Box<str>,
    variant: Box<[(HeaderName, HeaderValue)]>,
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash
                && self.0.path_and_query == other.0.path_and_query
                && self.0.variant == other.0.variant
                && self.0.host == other.0.host)
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// The per-process seed of [`KeyParts::hash`].
fn hash_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u8))
}

impl CacheKey {
    /// A key from an already normalised path, the query the route keeps, and the variant headers.
    pub fn new(path: &str, query: Option<&str>, variant: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self::on_host(None, path, query, variant)
    }

    /// [`CacheKey::new`] for a host-specific route: `host` (already normalised) is part of the key.
    pub fn on_host(
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        variant: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
        let path_and_query = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(hash_seed());
        if let Some(host) = host {
            // A path starts with '/', which no host contains: host and path cannot run into each other.
            hasher.update(host.as_bytes());
        }
        hasher.update(path_and_query.as_bytes());
        for (name, value) in &variant {
            hasher.update(&[0]);
            hasher.update(name.as_str().as_bytes());
            hasher.update(&[0]);
            hasher.update(value.as_bytes());
        }
        Self(Arc::new(KeyParts {
            hash: hasher.digest(),
            host: host.map(Box::from),
            path_and_query: path_and_query.into_boxed_str(),
            variant: variant.into_boxed_slice(),
        }))
    }

    /// The variant headers present on a request, in [`VARIANT_HEADERS`] order; empty for a plain page request.
    pub fn variant_of(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        if headers.is_empty() {
            return Vec::new();
        }
        VARIANT_HEADER_NAMES
            .iter()
            .filter_map(|name| Some((name.clone(), headers.get(name)?.clone())))
            .collect()
    }

    /// The site of a host-specific route's page; `None` for host-less routes.
    pub fn host(&self) -> Option<&str> {
        self.0.host.as_deref()
    }

    /// What the origin is asked for: `/path?kept=query`.
    pub fn path_and_query(&self) -> &str {
        &self.0.path_and_query
    }

    /// The page's path on its site, without the query: `host/path` for a host-specific key, `/path` otherwise.
    /// A path's variants (RSC payloads) share it.
    pub fn site_path(&self) -> std::borrow::Cow<'_, str> {
        match self.host() {
            Some(host) => std::borrow::Cow::Owned(format!("{host}{}", self.path())),
            None => std::borrow::Cow::Borrowed(self.path()),
        }
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
        self.0.host.as_ref().map_or(0, |host| host.len())
            + self.0.path_and_query.len()
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
        if let Some(host) = self.host() {
            f.write_str(host)?;
        }
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

    #[test]
    fn each_host_has_its_own_key() {
        let a = CacheKey::on_host(Some("a.example.com"), "/blog/x", None, Vec::new());
        let b = CacheKey::on_host(Some("b.example.com"), "/blog/x", None, Vec::new());
        assert_ne!(a, b);
        assert_ne!(a, CacheKey::new("/blog/x", None, Vec::new()));
        assert_eq!(a, CacheKey::on_host(Some("a.example.com"), "/blog/x", None, Vec::new()));
        assert_eq!((a.host(), a.path()), (Some("a.example.com"), "/blog/x"));
        assert_eq!(a.to_string(), "a.example.com/blog/x");
        assert_eq!(a.site_path(), "a.example.com/blog/x");
        assert_eq!(CacheKey::new("/blog/x", Some("q=1"), Vec::new()).site_path(), "/blog/x");
    }

    #[test]
    fn tags_are_scoped_by_host() {
        assert_eq!(scoped_tag(None, "blog"), "blog");
        let scoped = scoped_tag(Some("a.example.com"), "blog");
        assert_ne!(scoped, scoped_tag(Some("b.example.com"), "blog"));
        assert_eq!(unscoped_tag(&scoped), "blog");
        assert_eq!(unscoped_tag("blog"), "blog");
    }
}
