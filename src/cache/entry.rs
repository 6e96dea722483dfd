//! [`Entry`]: one stored page and its freshness.
//!
//! An entry is immutable once built (shared as `Arc<Entry>` by every request serving it), except for the
//! "marked stale" flag that tag revalidation sets. Freshness is computed from `generated_at` and a caller's
//! `now` — never from moka's TTL — so it survives persistence and can be tested with a manual clock.
//!
//! Besides the body as the origin sent it, an entry can hold gzip and brotli forms of it
//! ([`Entry::with_encodings`]), computed once per generation by `regen`; [`Entry::representation`] picks the
//! form a request gets, so serving never compresses.
//!
//! Two kinds of entries share this type. A time-based route's entry carries isr-proxy's own `Cache-Control` and
//! ETag and the route's [`Lifetime`]. A `revalidate = "origin"` route's entry keeps the origin's headers as sent
//! and carries [`HttpMeta`]: the RFC 9111 facts its reuse is decided from (see [`crate::http_cache`]).

mod coding;
mod stored_headers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

pub use coding::{BodyCoding, Encoded, Encodings, Representation};
use coding::{add_vary_accept_encoding, etag_with_suffix};
use stored_headers::{REPLACED_ON_TIME_BASED, UNSTORED_HTTP_HEADERS, detach_values, take_tags};
pub use stored_headers::{freshen_headers, strip_connection_listed};

use crate::cache::key::VaryValues;
use crate::compression::{AcceptEncoding, Coding, Compressed};

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

/// How an entry stored under a `revalidate = "origin"` route may be reused (RFC 9111 §4.2, RFC 5861), as
/// [`crate::http_cache::judge`] read it from the origin's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpFreshness {
    /// Freshness lifetime (§4.2.1).
    pub lifetime: Duration,
    /// RFC 5861 `stale-while-revalidate` window past the lifetime.
    pub stale_while_revalidate: Duration,
    /// RFC 5861 `stale-if-error` window past the lifetime.
    pub stale_if_error: Duration,
    /// Which stale uses the origin's directives allow.
    pub serve_stale: ServeStale,
    /// `no-cache`: validated before every use.
    pub no_cache: bool,
}

/// Which stale uses of a stored response its directives allow a shared cache (RFC 9111 §4.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServeStale {
    /// Every use a shared cache may make: RFC 5861's windows, a request's `max-stale`, and keep-last-good while
    /// the origin cannot be reached.
    #[default]
    Allowed,
    /// Only inside the response's own `stale-while-revalidate` and `stale-if-error` windows: `s-maxage`, which
    /// also means `proxy-revalidate` to a shared cache (§5.2.2.10), beside an RFC 5861 window. The window is the
    /// origin's explicit permission for exactly that stale use (§4.2.4 allows stale responses an extension
    /// directive permits), and `s-maxage=60, stale-while-revalidate=600` is how Next.js, Nuxt, SvelteKit and
    /// Remix say "ISR" to the cache in front; every other stale use stays forbidden.
    WithinWindows,
    /// Never: `must-revalidate` or `proxy-revalidate`, or `s-maxage` without an RFC 5861 window.
    Never,
}

/// What an entry stored under a `revalidate = "origin"` route knows beyond a time-based one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMeta {
    /// How it may be reused.
    pub freshness: HttpFreshness,
    /// The age the response already had on arrival (its `Age`); the time since the request adds to it.
    pub initial_age: Duration,
    /// The request's values of the headers its `Vary` names (empty without `Vary`): it answers only requests
    /// with the same values.
    pub selecting: VaryValues,
}

/// A stored page.
#[derive(Debug)]
pub struct Entry {
    /// Origin status (200, 404, 301, ...).
    pub status: StatusCode,
    /// Headers sent with every response built from this entry: the origin's end-to-end headers, plus (on
    /// time-based routes) `ETag` and isr-proxy's `Cache-Control`. Per-response headers (`Age`, `x-isr-cache`)
    /// are added when serving.
    pub headers: HeaderMap,
    /// The body, shared without copying.
    pub body: Bytes,
    /// Validator of the identity body: computed from it on time-based routes, the origin's own (if any) on
    /// `revalidate = "origin"` routes.
    pub etag: Option<HeaderValue>,
    /// When isr-proxy requested it from the origin (its age counts from then; it also orders racing writers).
    pub generated_at: SystemTime,
    /// Freshness rules it was stored with.
    pub lifetime: Lifetime,
    /// Tags from the origin's tag headers, for revalidation by tag.
    pub tags: Box<[String]>,
    /// How `body` is coded: identity, unless the origin sent it encoded.
    pub coding: BodyCoding,
    /// Compressed forms of an identity `body`, beside it.
    pub encoded: Encodings,
    /// RFC 9111 facts of a `revalidate = "origin"` entry; `None` on time-based routes.
    pub http: Option<Box<HttpMeta>>,
    marked_stale: AtomicBool,
}

impl Entry {
    /// Builds a time-based route's entry from an origin response: strips unstored and tag headers, reads the
    /// tags, computes the ETag and isr-proxy's `Cache-Control`.
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
        for name in UNSTORED_HTTP_HEADERS.iter().chain(&REPLACED_ON_TIME_BASED) {
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
            etag: Some(etag),
            generated_at,
            lifetime,
            tags,
            coding,
            encoded: Encodings::default(),
            http: None,
            marked_stale: AtomicBool::new(false),
        }
    }

    /// Builds a `revalidate = "origin"` route's entry: the origin's headers as sent, minus hop-by-hop fields,
    /// those a cache recomputes per response, and the tag headers (whose tags it reads). `expire` bounds how
    /// long past its freshness it is kept as a fallback for an unreachable origin.
    pub fn from_origin_http(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        generated_at: SystemTime,
        meta: HttpMeta,
        expire: Duration,
        tags_header: &HeaderName,
    ) -> Self {
        detach_values(&mut headers);
        let tags = take_tags(&mut headers, &[tags_header, &NEXT_TAGS_HEADER]);
        strip_connection_listed(&mut headers);
        for name in &UNSTORED_HTTP_HEADERS {
            headers.remove(name);
        }
        if !headers.contains_key(header::DATE)
            && let Ok(date) = HeaderValue::try_from(httpdate::fmt_http_date(generated_at))
        {
            // RFC 9110 §6.6.1: a cache that stores a response without `Date` adds one.
            headers.insert(header::DATE, date);
        }
        Self::http(status, headers, body, generated_at, meta, expire, tags)
    }

    fn http(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        generated_at: SystemTime,
        meta: HttpMeta,
        expire: Duration,
        tags: Box<[String]>,
    ) -> Self {
        Self {
            status,
            etag: headers.get(header::ETAG).cloned(),
            coding: BodyCoding::from_headers(&headers),
            headers,
            body,
            generated_at,
            lifetime: Lifetime {
                revalidate: Some(meta.freshness.lifetime),
                expire,
            },
            tags,
            encoded: Encodings::default(),
            http: Some(Box::new(meta)),
            marked_stale: AtomicBool::new(false),
        }
    }

    /// This entry after a `304 Not Modified` (RFC 9111 §4.3.4): the same body and compressed forms under
    /// `headers` (the stored ones updated by the `304`, see [`freshen_headers`]), requested at `generated_at`,
    /// reusable as `meta` says. Tag headers in the `304` replace the tags.
    pub fn revalidated(
        &self,
        mut headers: HeaderMap,
        generated_at: SystemTime,
        meta: HttpMeta,
        tags_header: &HeaderName,
    ) -> Self {
        let tags = if headers.contains_key(tags_header) || headers.contains_key(NEXT_TAGS_HEADER) {
            take_tags(&mut headers, &[tags_header, &NEXT_TAGS_HEADER])
        } else {
            self.tags.clone()
        };
        let mut entry = Self::http(
            self.status,
            headers,
            self.body.clone(),
            generated_at,
            meta,
            self.lifetime.expire,
            tags,
        );
        entry.coding = self.coding;
        entry.encoded = self.encoded.with_etag(entry.etag.as_ref());
        entry
    }

    /// Whether the body is worth storing compressed forms of: identity, and a text-like `Content-Type`.
    pub fn is_compressible(&self) -> bool {
        self.coding == BodyCoding::Identity
            && crate::compression::is_compressible(self.headers.get(header::CONTENT_TYPE))
    }

    /// Stores compressed forms of a compressible body beside it, with their ETags, and adds `Vary:
    /// Accept-Encoding` (merged into the origin's `Vary`), since responses now depend on that header. Does
    /// nothing to an entry that is not [`Entry::is_compressible`]. A `revalidate = "origin"` entry gets `Vary`
    /// only when a compressed form was actually stored: its headers otherwise stay as the origin sent them.
    pub fn with_encodings(mut self, compressed: Compressed) -> Self {
        if !self.is_compressible() {
            return self;
        }
        let etag = self.etag.clone();
        let encoded = |body: Option<Bytes>, coding: Coding| {
            body.map(|body| Encoded {
                body,
                etag: etag.as_ref().map(|etag| etag_with_suffix(etag, coding.as_str())),
            })
        };
        self.encoded = Encodings {
            gzip: encoded(compressed.gzip, Coding::Gzip),
            br: encoded(compressed.br, Coding::Br),
        };
        if self.http.is_none() || !self.encoded.is_empty() {
            add_vary_accept_encoding(&mut self.headers);
        }
        self
    }

    /// The form of this page a request with `accept` gets (see [`crate::compression::AcceptEncoding::choose`]);
    /// `None` when the body is origin-encoded in a coding the request refuses (answer 406, see [`BodyCoding`]).
    pub fn representation(&self, accept: &AcceptEncoding) -> Option<Representation<'_>> {
        let as_sent = Representation {
            body: &self.body,
            etag: self.etag.as_ref(),
            content_encoding: None,
        };
        let chosen = match self.coding {
            BodyCoding::Identity => accept.choose(self.encoded.br.is_some(), self.encoded.gzip.is_some()),
            BodyCoding::Origin(_) | BodyCoding::OriginUnknown if self.http.is_some() => return Some(as_sent),
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
            etag: encoded.etag.as_ref(),
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
        etag: Option<HeaderValue>,
        generated_at: SystemTime,
        lifetime: Lifetime,
        tags: Box<[String]>,
        marked_stale: bool,
        http: Option<HttpMeta>,
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
            http: http.map(Box::new),
            marked_stale: AtomicBool::new(marked_stale),
        }
    }

    /// Fresh, stale or expired at `now`, by the route's [`Lifetime`] (for a `revalidate = "origin"` entry, by
    /// its freshness lifetime; the proxy decides its reuse with [`crate::http_cache::reuse`]).
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        let age = self.age(now);
        let marked = self.is_marked_stale();
        let revalidate = match self.lifetime.revalidate {
            Some(revalidate) => revalidate,
            None if marked => Duration::ZERO,
            None => return Freshness::Fresh,
        };
        let fresh = match &self.http {
            // RFC 9111 §4.2: fresh while the lifetime exceeds the age; `no-cache` is never fresh to reuse.
            Some(http) => age < revalidate && !http.freshness.no_cache,
            None => age <= revalidate,
        };
        if !marked && fresh {
            Freshness::Fresh
        } else if age <= revalidate.saturating_add(self.lifetime.expire) {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// Time since generation (zero if the clock went backwards), plus, for a `revalidate = "origin"` entry, the
    /// age it had on arrival: its current age (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.generated_at).unwrap_or_default();
        match &self.http {
            Some(http) => resident.saturating_add(http.initial_age),
            None => resident,
        }
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

    /// Whether a request whose selecting header values are `selecting` may get this entry (RFC 9111 §4.1).
    pub fn matches_vary(&self, selecting: &VaryValues) -> bool {
        self.http.as_ref().is_none_or(|http| http.selecting == *selecting)
    }

    /// Approximate bytes held, for the cache weigher: body, headers and a fixed overhead.
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 256;
        let headers: usize = self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
        let tags: usize = self.tags.iter().map(String::len).sum();
        let encoded: usize = [&self.encoded.gzip, &self.encoded.br]
            .into_iter()
            .flatten()
            .map(|e| e.body.len() + e.etag.as_ref().map_or(0, HeaderValue::len))
            .sum();
        let http = self.http.as_ref().map_or(0, |http| {
            64 + http
                .selecting
                .iter()
                .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, HeaderValue::len))
                .sum::<usize>()
        });
        OVERHEAD + self.body.len() + headers + tags + encoded + http
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

#[cfg(test)]
mod tests;
