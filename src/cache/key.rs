//! [`CacheKey`]: what identifies one cached page.
//!
//! A key is the normalised path, the query the route's policy keeps, and the request-header variant (Next.js's
//! RSC headers); for a host-specific route, also the normalised host, so each site has its own pages. On
//! time-based routes the key alone determines the origin request, so nothing a key ignores can
//! change what is stored (no cache poisoning), and a background regeneration can replay the request without the
//! client. On `revalidate = "origin"` routes a key can also carry the request's values for the headers a
//! response's `Vary` names ([`CacheKey::with_vary`]): one key per stored variant (RFC 9111 §4.1).

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

/// A request's values of the headers a stored response's `Vary` names, in the order of the names; `None` where
/// the request lacked the header (which only a request lacking it too matches).
pub type VaryValues = Box<[(HeaderName, Option<HeaderValue>)]>;

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
    vary: VaryValues,
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash
                && self.0.path_and_query == other.0.path_and_query
                && self.0.variant == other.0.variant
                && self.0.vary == other.0.vary
                && self.0.host == other.0.host)
    }
}

impl Eq for CacheKey {}

/// Keys sort by path and query, then by variant headers, then by `Vary` values, then by host (a host-less key
/// first), so that every key under a path prefix is one contiguous range of an ordered index (the admin listing
/// and prefix revalidation read it without a scan), with a page's variants right after it. Consistent with `Eq`:
/// the keys of two sites' pages at one path are two keys of the index, not one.
impl Ord for CacheKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        fn variant(key: &CacheKey) -> impl Iterator<Item = (&[u8], &[u8])> {
            let variant = key.0.variant.iter();
            variant.map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        }
        fn vary(key: &CacheKey) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
            let vary = key.0.vary.iter();
            vary.map(|(name, value)| (name.as_str().as_bytes(), value.as_ref().map(HeaderValue::as_bytes)))
        }
        self.0
            .path_and_query
            .cmp(&other.0.path_and_query)
            .then_with(|| variant(self).cmp(variant(other)))
            .then_with(|| vary(self).cmp(vary(other)))
            .then_with(|| self.0.host.cmp(&other.0.host))
    }
}

impl PartialOrd for CacheKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// Feeds `sink` the bytes a key's hashes are computed from: the host (host-specific routes only; a path starts
/// with '/', which no host contains), path and query, then each variant header and each `Vary` value (absent and
/// empty values differ), with separators no header can contain. Streaming, so the per-request hash allocates
/// nothing.
fn feed(parts: &KeyParts, mut sink: impl FnMut(&[u8])) {
    let KeyParts {
        host,
        path_and_query,
        variant,
        vary,
        ..
    } = parts;
    if let Some(host) = host {
        sink(host.as_bytes());
    }
    sink(path_and_query.as_bytes());
    for (name, value) in variant {
        sink(&[0]);
        sink(name.as_str().as_bytes());
        sink(&[0]);
        sink(value.as_bytes());
    }
    for (name, value) in vary.iter() {
        sink(&[1]);
        sink(name.as_str().as_bytes());
        match value {
            Some(value) => {
                sink(&[0]);
                sink(value.as_bytes());
            }
            None => sink(&[2]),
        }
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
        Self::from_parts(KeyParts {
            hash: 0,
            host: host.map(Box::from),
            path_and_query: path_and_query.into_boxed_str(),
            variant: variant.into_boxed_slice(),
            vary: Box::new([]),
        })
    }

    /// The key of `parts`, with its hash computed.
    fn from_parts(mut parts: KeyParts) -> Self {
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(hash_seed());
        feed(&parts, |bytes| hasher.update(bytes));
        parts.hash = hasher.digest();
        Self(Arc::new(parts))
    }

    /// This page's key narrowed to one variant of a response that varies on request headers: `vary` holds the
    /// request's values for the names the response's `Vary` lists.
    pub fn with_vary(&self, vary: VaryValues) -> Self {
        Self::from_parts(KeyParts {
            hash: 0,
            host: self.0.host.clone(),
            path_and_query: self.0.path_and_query.clone(),
            variant: self.0.variant.clone(),
            vary,
        })
    }

    /// The key without its `Vary` part: the page's primary key, under which the names it varies on are kept.
    pub fn primary(&self) -> Self {
        if self.0.vary.is_empty() {
            return self.clone();
        }
        self.with_vary(Box::new([]))
    }

    /// Whether `other` is this key or a `Vary` variant of the same page (same host, path, query and variant).
    pub fn same_primary(&self, other: &Self) -> bool {
        self.0.path_and_query == other.0.path_and_query
            && self.0.variant == other.0.variant
            && self.0.host == other.0.host
    }

    /// The `Vary` part ([`CacheKey::with_vary`]); empty for most keys.
    pub fn vary(&self) -> &[(HeaderName, Option<HeaderValue>)] {
        &self.0.vary
    }

    /// Bytes that identify the key (host, path and query, variant, `Vary` part), for hashes that outlive the
    /// process (file names of the disk tier, Redis keys). A host-less key's bytes do not depend on hosts at all.
    pub fn stable_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.weight() + 8);
        feed(&self.0, |part| bytes.extend_from_slice(part));
        bytes
    }

    /// The variant headers present on a request, in [`VARIANT_HEADERS`] order; empty for a plain page request.
    pub fn variant_of(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        // One pass over the request's few headers, comparing names, instead of five hashed lookups: most
        // requests carry none of them, and every request pays for looking.
        let mut found: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in headers {
            let bytes = name.as_str().as_bytes();
            let candidate = matches!(bytes.first(), Some(b'r' | b'n')) && bytes.len() <= 28;
            if candidate && VARIANT_HEADER_NAMES.contains(name) && !found.iter().any(|(n, _)| n == name) {
                found.push((name.clone(), value.clone()));
            }
        }
        if found.len() > 1 {
            found.sort_by_key(|(name, _)| VARIANT_HEADER_NAMES.iter().position(|n| n == name));
        }
        found
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

    /// The key as one line of text per part, which [`CacheKey::from_cursor`] reads back: the path and query, then
    /// `\n<name>: <value>` per variant header, then `\nvary <name>: <value>` (or `\nvary <name>` for an absent
    /// header) per `Vary` value, then `\nhost <host>` for a host-specific key. A newline occurs in neither a
    /// request path nor a header value, and a header name has no space, so the form is unambiguous; it is the
    /// admin listing's page cursor.
    pub fn to_cursor(&self) -> String {
        let mut text = self.path_and_query().to_owned();
        let lossy = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        for (name, value) in self.variant() {
            text.push_str(&format!("\n{name}: {}", lossy(value)));
        }
        for (name, value) in self.vary() {
            match value {
                Some(value) => text.push_str(&format!("\nvary {name}: {}", lossy(value))),
                None => text.push_str(&format!("\nvary {name}")),
            }
        }
        if let Some(host) = self.host() {
            text.push_str(&format!("\nhost {host}"));
        }
        text
    }

    /// Reads [`CacheKey::to_cursor`]'s form back; `None` if it is not one.
    pub fn from_cursor(text: &str) -> Option<Self> {
        let mut lines = text.split('\n');
        let path_and_query = lines.next().filter(|pq| pq.starts_with('/'))?;
        let header = |name: &str| HeaderName::from_bytes(name.as_bytes()).ok();
        let mut variant = Vec::new();
        let mut vary = Vec::new();
        let mut host = None;
        for line in lines {
            if let Some(name) = line.strip_prefix("host ") {
                host = Some(Box::from(name));
                continue;
            }
            match line.strip_prefix("vary ") {
                Some(part) => match part.split_once(": ") {
                    Some((name, value)) => vary.push((header(name)?, Some(HeaderValue::from_str(value).ok()?))),
                    None => vary.push((header(part)?, None)),
                },
                None => {
                    let (name, value) = line.split_once(": ")?;
                    variant.push((header(name)?, HeaderValue::from_str(value).ok()?));
                }
            }
        }
        Some(Self::from_parts(KeyParts {
            hash: 0,
            host,
            path_and_query: path_and_query.into(),
            variant: variant.into_boxed_slice(),
            vary: vary.into_boxed_slice(),
        }))
    }

    /// Approximate bytes this key occupies, for the cache weigher.
    pub fn weight(&self) -> usize {
        let variant: usize = self.0.variant.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let vary: usize = self
            .0
            .vary
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, HeaderValue::len))
            .sum();
        let host = self.0.host.as_ref().map_or(0, |host| host.len());
        host + self.0.path_and_query.len() + variant + vary
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
        for (name, value) in self.vary() {
            match value {
                Some(value) => write!(f, " [vary {name}: {}]", value.to_str().unwrap_or("<binary>"))?,
                None => write!(f, " [vary {name} absent]")?,
            }
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
    fn cursors_read_back_as_the_same_key() {
        let mut rsc = HeaderMap::new();
        rsc.insert("rsc", HeaderValue::from_static("1"));
        rsc.insert("next-url", HeaderValue::from_static("/blog"));
        for key in [
            CacheKey::new("/blog/a", None, Vec::new()),
            CacheKey::new("/list", Some("page=2&sort=asc"), Vec::new()),
            CacheKey::new("/blog/a", Some("_rsc=x1"), CacheKey::variant_of(&rsc)),
            CacheKey::new("/blog/a", None, Vec::new()).with_vary(Box::new([
                (
                    HeaderName::from_static("accept-language"),
                    Some(HeaderValue::from_static("en")),
                ),
                (HeaderName::from_static("x-absent"), None),
            ])),
        ] {
            assert_eq!(CacheKey::from_cursor(&key.to_cursor()), Some(key.clone()), "{key}");
        }
        for bad in ["", "blog", "/a\nno-colon", "/a\nbad name: 1"] {
            assert_eq!(CacheKey::from_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_sort_by_path_then_variant() {
        let rsc = vec![(HeaderName::from_static("rsc"), HeaderValue::from_static("1"))];
        let mut keys = [
            CacheKey::new("/b", None, Vec::new()),
            CacheKey::new("/a", None, rsc.clone()),
            CacheKey::new("/a", Some("x=1"), Vec::new()),
            CacheKey::new("/a", None, Vec::new()),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["/a", "/a [rsc: 1]", "/a?x=1", "/b"]);
        let language = |value: Option<&'static str>| {
            let value = value.map(HeaderValue::from_static);
            CacheKey::new("/a", None, Vec::new())
                .with_vary(Box::new([(HeaderName::from_static("accept-language"), value)]))
        };
        assert!(language(None) < language(Some("de")) && language(Some("de")) < language(Some("en")));
        assert!(
            CacheKey::new("/a", None, Vec::new()) < language(None),
            "a page's Vary variants follow it"
        );
        let on = |host| CacheKey::on_host(host, "/a", None, Vec::new());
        assert!(on(None) < on(Some("a.example.com")) && on(Some("a.example.com")) < on(Some("b.example.com")));
        assert!(
            on(Some("b.example.com")) < CacheKey::new("/a", None, rsc.clone()),
            "sites only break ties: a path's keys stay one run"
        );
        assert_ne!(
            language(Some("de")).cmp(&language(Some("en"))),
            std::cmp::Ordering::Equal
        );
        assert_eq!(
            CacheKey::new("/a", None, rsc.clone()).cmp(&CacheKey::new("/a", None, rsc)),
            std::cmp::Ordering::Equal
        );
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
