//! [`Entry`]: one stored page and its freshness.
//!
//! An entry is immutable once built (shared as `Arc<Entry>` by every request serving it), except for the
//! "marked stale" flag that tag revalidation sets. Freshness is computed from `generated_at` and a caller's
//! `now` — never from moka's TTL — so it survives persistence and can be tested with a manual clock.
//!
//! Besides the body as the origin sent it, an entry can hold gzip and brotli forms of it
//! ([`Entry::with_encodings`]), computed once per generation by `regen`; [`Entry::representation`] picks the
//! form a request gets, so serving never compresses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::compression::{AcceptEncoding, Coding, Compressed};

/// Response headers never stored: hop-by-hop (RFC 9110 §7.6.1), and those isr-proxy sets itself per response.
const UNSTORED_HEADERS: [HeaderName; 13] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::CONTENT_LENGTH,
    header::AGE,
    header::ETAG,
    header::CACHE_CONTROL,
    header::SET_COOKIE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("x-isr-revalidate"),
];

/// Next.js's own tag header, read as well as the configured one so a Next.js origin needs no changes.
pub const NEXT_TAGS_HEADER: HeaderName = HeaderName::from_static("x-next-cache-tags");

/// One year: the `s-maxage` advertised for pages that only change on demand.
const ON_DEMAND_SHARED_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long a page stays fresh and how long it may then be served stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Fresh for this long after generation; `None` = until regenerated on demand.
    pub revalidate: Option<Duration>,
    /// Past `revalidate`, served stale for at most this long; then a request waits for a fresh render.
    pub expire: Duration,
}

/// Where an entry is in its life, for one point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve as is.
    Fresh,
    /// Serve at once and regenerate in the background.
    Stale,
    /// Too old to serve without trying the origin first (`revalidate + expire` passed).
    Expired,
}

/// A stored page.
#[derive(Debug)]
pub struct Entry {
    /// Origin status (200, 404, 301, ...).
    pub status: StatusCode,
    /// Headers sent with every response built from this entry: the origin's end-to-end headers, plus `ETag` and
    /// isr-proxy's `Cache-Control`. Per-response headers (`Age`, `x-isr-cache`) are added when serving.
    pub headers: HeaderMap,
    /// The body, shared without copying.
    pub body: Bytes,
    /// Strong validator computed from the body.
    pub etag: HeaderValue,
    /// When the origin rendered it.
    pub generated_at: SystemTime,
    /// Freshness rules it was stored with.
    pub lifetime: Lifetime,
    /// Tags from the origin's tag headers, for revalidation by tag.
    pub tags: Box<[String]>,
    /// How `body` is coded: identity, unless the origin sent it encoded.
    pub coding: BodyCoding,
    /// Compressed forms of an identity `body`, beside it.
    pub encoded: Encodings,
    marked_stale: AtomicBool,
}

/// How an entry's `body` is coded. isr-proxy asks the origin for identity, but an origin can send an encoded
/// body anyway; it is then stored as sent, with its `Content-Encoding`, and never decoded or re-encoded.
///
/// An origin-encoded entry has no identity form, so a client whose `Accept-Encoding` refuses the coding gets
/// `406 Not Acceptable` (RFC 9110 §12.5.3, §15.5.7) instead of bytes it cannot decode. Fetching the page from
/// the origin for that client would not help: the origin already ignored `Accept-Encoding: identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCoding {
    /// Not encoded (the normal case); compressed forms may sit beside it in [`Entry::encoded`].
    Identity,
    /// Encoded by the origin in a coding isr-proxy knows; served to clients accepting it.
    Origin(Coding),
    /// Encoded by the origin in a coding isr-proxy does not know (deflate, zstd, several codings); served only
    /// to clients that send no `Accept-Encoding` (which RFC 9110 §12.5.3 reads as accepting any coding).
    OriginUnknown,
}

impl BodyCoding {
    /// The coding stated by stored headers' `Content-Encoding`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut codings = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            // A value that is not visible ASCII names no coding isr-proxy knows.
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        match (codings.next(), codings.next()) {
            (None, _) => Self::Identity,
            (Some(one), None) => Coding::from_token(one).map_or(Self::OriginUnknown, Self::Origin),
            (Some(_), Some(_)) => Self::OriginUnknown,
        }
    }
}

/// The body in one content coding, with its own strong validator (RFC 9110 §8.8.3: representations that
/// differ in coding must not share an ETag).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The encoded bytes, shared without copying.
    pub body: Bytes,
    /// The identity ETag with the coding as a suffix inside the quotes: `"<hash>-br"`.
    pub etag: HeaderValue,
}

/// The compressed forms stored beside an identity body; each is present only if smaller than the body.
#[derive(Debug, Clone, Default)]
pub struct Encodings {
    /// gzip.
    pub gzip: Option<Encoded>,
    /// Brotli.
    pub br: Option<Encoded>,
}

/// What one response sends: a stored body, its ETag, and the `Content-Encoding` to add (none when the body is
/// identity, or when the origin's own `Content-Encoding` is already among the stored headers).
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    /// The body to send.
    pub body: &'a Bytes,
    /// Its validator, for `ETag` and `If-None-Match`.
    pub etag: &'a HeaderValue,
    /// `Content-Encoding` to set.
    pub content_encoding: Option<Coding>,
}

impl Entry {
    /// Builds an entry from an origin response: strips unstored and tag headers, reads the tags, computes the
    /// ETag and isr-proxy's `Cache-Control`.
    pub fn from_origin(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        generated_at: SystemTime,
        lifetime: Lifetime,
        tags_header: &HeaderName,
    ) -> Self {
        // A stored page outlives the connection that fetched it. hyper hands out header values as slices of its
        // read buffer, which they would keep alive whole (with the body, which `OriginClient` copies: 1.8x the
        // payload in resident memory at 100,000 pages); copying them once per generation costs what they hold.
        detach_values(&mut headers);
        let tags = take_tags(&mut headers, &[tags_header, &NEXT_TAGS_HEADER]);
        strip_connection_listed(&mut headers);
        for name in &UNSTORED_HEADERS {
            headers.remove(name);
        }
        let etag = etag_for(&body);
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CACHE_CONTROL, shared_cache_control(lifetime));
        let coding = BodyCoding::from_headers(&headers);
        match coding {
            BodyCoding::Identity => {
                headers.remove(header::CONTENT_ENCODING);
            }
            BodyCoding::Origin(_) | BodyCoding::OriginUnknown => add_vary_accept_encoding(&mut headers),
        }
        Self {
            status,
            headers,
            body,
            etag,
            generated_at,
            lifetime,
            tags,
            coding,
            encoded: Encodings::default(),
            marked_stale: AtomicBool::new(false),
        }
    }

    /// Whether the body is worth storing compressed forms of: identity, and a text-like `Content-Type`.
    pub fn is_compressible(&self) -> bool {
        self.coding == BodyCoding::Identity
            && crate::compression::is_compressible(self.headers.get(header::CONTENT_TYPE))
    }

    /// Stores compressed forms of a compressible body beside it, with their ETags, and adds `Vary:
    /// Accept-Encoding` (merged into the origin's `Vary`), since responses now depend on that header. Does
    /// nothing to an entry that is not [`Entry::is_compressible`].
    pub fn with_encodings(mut self, compressed: Compressed) -> Self {
        if !self.is_compressible() {
            return self;
        }
        let encoded = |body: Option<Bytes>, coding: Coding| {
            body.map(|body| Encoded {
                body,
                etag: etag_with_suffix(&self.etag, coding.as_str()),
            })
        };
        self.encoded = Encodings {
            gzip: encoded(compressed.gzip, Coding::Gzip),
            br: encoded(compressed.br, Coding::Br),
        };
        add_vary_accept_encoding(&mut self.headers);
        self
    }

    /// The form of this page a request with `accept` gets (see [`crate::compression::AcceptEncoding::choose`]);
    /// `None` when the body is origin-encoded in a coding the request refuses (answer 406, see [`BodyCoding`]).
    pub fn representation(&self, accept: &AcceptEncoding) -> Option<Representation<'_>> {
        let as_sent = Representation {
            body: &self.body,
            etag: &self.etag,
            content_encoding: None,
        };
        let chosen = match self.coding {
            BodyCoding::Identity => accept.choose(self.encoded.br.is_some(), self.encoded.gzip.is_some()),
            BodyCoding::Origin(coding) => return accept.accepts(coding).then_some(as_sent),
            BodyCoding::OriginUnknown => return (!accept.is_sent()).then_some(as_sent),
        };
        let encoded = match chosen {
            Coding::Identity => None,
            Coding::Gzip => self.encoded.gzip.as_ref(),
            Coding::Br => self.encoded.br.as_ref(),
        };
        Some(encoded.map_or(as_sent, |encoded| Representation {
            body: &encoded.body,
            etag: &encoded.etag,
            content_encoding: Some(chosen),
        }))
    }

    /// Rebuilds an entry read back from a store tier (disk, Redis): the headers are already filtered and carry
    /// the ETag and `Cache-Control` computed when it was first stored.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        etag: HeaderValue,
        generated_at: SystemTime,
        lifetime: Lifetime,
        tags: Box<[String]>,
        marked_stale: bool,
    ) -> Self {
        let coding = BodyCoding::from_headers(&headers);
        Self {
            status,
            headers,
            body,
            etag,
            generated_at,
            lifetime,
            tags,
            coding,
            encoded: Encodings::default(),
            marked_stale: AtomicBool::new(marked_stale),
        }
    }

    /// Fresh, stale or expired at `now`.
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        let age = self.age(now);
        let marked = self.is_marked_stale();
        let revalidate = match self.lifetime.revalidate {
            Some(revalidate) => revalidate,
            None if marked => Duration::ZERO,
            None => return Freshness::Fresh,
        };
        if !marked && age <= revalidate {
            Freshness::Fresh
        } else if age <= revalidate.saturating_add(self.lifetime.expire) {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// Time since generation; zero if the clock went backwards.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.generated_at).unwrap_or_default()
    }

    /// Makes the next request serve this entry stale and trigger a regeneration (revalidation by tag).
    pub fn mark_stale(&self) {
        self.marked_stale.store(true, Ordering::Relaxed);
    }

    /// Whether [`Entry::mark_stale`] was called.
    pub fn is_marked_stale(&self) -> bool {
        self.marked_stale.load(Ordering::Relaxed)
    }

    /// Whether the origin tagged this page with `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Approximate bytes held, for the cache weigher: body, headers and a fixed overhead.
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 256;
        let headers: usize = self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
        let tags: usize = self.tags.iter().map(String::len).sum();
        let encoded: usize = [&self.encoded.gzip, &self.encoded.br]
            .into_iter()
            .flatten()
            .map(|e| e.body.len() + e.etag.len())
            .sum();
        OVERHEAD + self.body.len() + headers + tags + encoded
    }
}

/// `Cache-Control` for downstream shared caches, in Next.js's format: fresh for `revalidate` (one year for
/// on-demand pages), then usable stale for the expire window while they revalidate.
fn shared_cache_control(lifetime: Lifetime) -> HeaderValue {
    let max_age = lifetime.revalidate.unwrap_or(ON_DEMAND_SHARED_MAX_AGE).as_secs();
    let value = format!(
        "s-maxage={max_age}, stale-while-revalidate={}",
        lifetime.expire.as_secs()
    );
    HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static("no-cache"))
}

fn etag_for(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_128(body);
    HeaderValue::try_from(format!("\"{hash:032x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `"<hash>"` → `"<hash>-<suffix>"`.
fn etag_with_suffix(etag: &HeaderValue, suffix: &str) -> HeaderValue {
    let quoted = etag.as_bytes();
    let inner = quoted.strip_suffix(b"\"").unwrap_or(quoted);
    let mut value = Vec::with_capacity(quoted.len() + suffix.len() + 2);
    value.extend_from_slice(inner);
    value.push(b'-');
    value.extend_from_slice(suffix.as_bytes());
    value.push(b'"');
    HeaderValue::from_bytes(&value).unwrap_or_else(|_| etag.clone())
}

/// Adds `Accept-Encoding` to `Vary` unless listed already (or `*`), folding the origin's `Vary` lines into one.
/// Gives every header value its own allocation (see [`Entry::from_origin`]).
fn detach_values(headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
}

fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let listed: Vec<&str> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if listed
        .iter()
        .any(|name| *name == "*" || name.eq_ignore_ascii_case("accept-encoding"))
    {
        return;
    }
    let mut merged = listed.join(", ");
    if !merged.is_empty() {
        merged.push_str(", ");
    }
    merged.push_str("Accept-Encoding");
    if let Ok(value) = HeaderValue::try_from(merged) {
        headers.insert(header::VARY, value);
    }
}

fn take_tags(headers: &mut HeaderMap, names: &[&HeaderName]) -> Box<[String]> {
    let mut tags: Vec<String> = Vec::new();
    for name in names {
        for value in headers.get_all(*name) {
            let Ok(value) = value.to_str() else { continue };
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
        headers.remove(*name);
    }
    tags.into_boxed_slice()
}

/// Removes headers named in `Connection` (they are hop-by-hop for this connection only).
pub fn strip_connection_listed(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn entry(revalidate: Option<Duration>) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/html"));
        headers.insert("x-isr-tags", HeaderValue::from_static("post-1, blog"));
        headers.insert("x-next-cache-tags", HeaderValue::from_static("blog,_N_T_/layout"));
        headers.insert("set-cookie", HeaderValue::from_static("a=b"));
        headers.insert("connection", HeaderValue::from_static("x-private-hop"));
        headers.insert("x-private-hop", HeaderValue::from_static("1"));
        Entry::from_origin(
            StatusCode::OK,
            headers,
            Bytes::from_static(b"<p>hi</p>"),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            Lifetime {
                revalidate,
                expire: 10 * MINUTE,
            },
            &HeaderName::from_static("x-isr-tags"),
        )
    }

    #[test]
    fn freshness_follows_generated_at_revalidate_and_expire() {
        let e = entry(Some(MINUTE));
        let at = |secs| e.generated_at + Duration::from_secs(secs);
        assert_eq!(e.freshness(at(0)), Freshness::Fresh);
        assert_eq!(e.freshness(at(60)), Freshness::Fresh);
        assert_eq!(e.freshness(at(61)), Freshness::Stale);
        assert_eq!(e.freshness(at(660)), Freshness::Stale);
        assert_eq!(e.freshness(at(661)), Freshness::Expired);
        assert_eq!(
            e.freshness(e.generated_at - MINUTE),
            Freshness::Fresh,
            "clock skew is not staleness"
        );
    }

    #[test]
    fn on_demand_pages_stay_fresh_until_marked() {
        let e = entry(None);
        let later = e.generated_at + Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(e.freshness(later), Freshness::Fresh);
        e.mark_stale();
        assert_eq!(e.freshness(e.generated_at + MINUTE), Freshness::Stale);
    }

    #[test]
    fn marked_stale_entries_are_stale_at_once() {
        let e = entry(Some(MINUTE));
        e.mark_stale();
        assert_eq!(e.freshness(e.generated_at), Freshness::Stale);
    }

    #[test]
    fn origin_headers_are_filtered_and_tags_read() {
        let e = entry(Some(MINUTE));
        assert_eq!(&*e.tags, ["post-1", "blog", "_N_T_/layout"]);
        for gone in [
            "x-isr-tags",
            "x-next-cache-tags",
            "set-cookie",
            "connection",
            "x-private-hop",
        ] {
            assert!(!e.headers.contains_key(gone), "{gone} must not be stored");
        }
        assert_eq!(e.headers["cache-control"], "s-maxage=60, stale-while-revalidate=600");
        assert_eq!(e.headers["etag"], e.etag);
        assert!(e.has_tag("blog") && !e.has_tag("post-2"));
        assert_eq!(
            entry(None).headers["cache-control"],
            "s-maxage=31536000, stale-while-revalidate=600"
        );
    }
}
