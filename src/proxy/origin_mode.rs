//! The request flow of a `revalidate = "origin"` route: isr-proxy as an RFC 9111 shared cache.
//!
//! ```text
//! request ─ directives ─ variant key (Vary) ─ cache ─ fresh ─────────────────────────► HIT
//!                                                   ├─ stale, request allows ──────────► STALE
//!                                                   ├─ stale-while-revalidate ─────────► STALE + one background validation
//!                                                   ├─ must validate ─┬─ 304 ──────────► REVALIDATED (freshened)
//!                                                   │                 ├─ 200 ──────────► MISS (stored) | BYPASS
//!                                                   │                 └─ failed ───────► STALE if allowed | error
//!                                                   └─ missing ─── only-if-cached ─────► 504
//!                                                                └─ fetch ──────────────► MISS | BYPASS
//! unsafe method ─ pass through ─ 2xx/3xx ─ invalidate the URL, its Location and Content-Location (same origin)
//! ```
//! What may be stored and reused is decided by [`crate::http_cache`]; this module only follows its answers.

use std::sync::Arc;

use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::{HeaderMap, Method, Request, Response, Uri};
use hyper::body::Incoming;

use super::Proxy;
use crate::cache::entry::ServeStale;
use crate::cache::{CacheKey, Entry};
use crate::http_cache::{self, OnError, RequestDirectives, Reuse};
use crate::origin::OriginError;
use crate::regen::{Fetch, HttpFetch};
use crate::response::{Body, CacheStatus, ProxyError, RequestFacts, entry_response};
use crate::route::{Revalidate, RouteRule, normalize_path};

/// The target of an unsafe request, for invalidation once its response is in (RFC 9111 §4.4).
pub(super) struct UnsafeTarget {
    /// The target URI's page, if it falls under a `revalidate = "origin"` route.
    key: Option<CacheKey>,
    /// The request's `Host`, which a `Location` or `Content-Location` must share to be invalidated.
    host: Option<String>,
}

impl Proxy {
    /// Answers a GET or HEAD on a `revalidate = "origin"` route. `key` is the URL's primary key.
    pub(super) async fn serve_origin_mode(
        &self,
        headers: &HeaderMap,
        key: CacheKey,
        rule: &RouteRule,
        facts: &RequestFacts,
    ) -> Response<Body> {
        let directives = RequestDirectives::from_headers(headers);
        let primary = key;
        let key = self.cache.variant_key(&primary, headers);
        let Some(entry) = self.cache.get(&key).await.filter(|entry| entry.http.is_some()) else {
            if directives.only_if_cached {
                return ProxyError::OnlyIfCached.into_response();
            }
            return match self.fallback(&primary, rule, headers, facts).await {
                Some(response) => response,
                None => self.validate(key, rule, headers, &directives, None, facts).await,
            };
        };
        let now = self.clock.now();
        let age = entry.age(now);
        match reuse_of(&entry, age, &directives) {
            Reuse::Fresh => entry_response(&entry, CacheStatus::Hit, age, facts),
            Reuse::StaleAccepted => entry_response(&entry, CacheStatus::Stale, age, facts),
            Reuse::StaleWhileRevalidate => {
                let fetch = HttpFetch {
                    request: Arc::new(headers.clone()),
                    stored: Some(entry.clone()),
                    may_store: !directives.no_store,
                };
                let started = self
                    .regen
                    .refresh_http_in_background(key.clone(), rule.store_policy(), fetch);
                tracing::debug!(key = %key, revalidating = started, "stale-while-revalidate");
                entry_response(&entry, CacheStatus::Stale, age, facts)
            }
            Reuse::Validate(_) if directives.only_if_cached => ProxyError::OnlyIfCached.into_response(),
            Reuse::Validate(on_error) => {
                self.validate(key, rule, headers, &directives, Some((entry, on_error)), facts)
                    .await
            }
        }
    }

    /// Asks the origin (single-flight): for a missing response, or to validate `stored`, which is served
    /// instead if the origin fails and `on_error` allows it.
    async fn validate(
        &self,
        key: CacheKey,
        rule: &RouteRule,
        headers: &HeaderMap,
        directives: &RequestDirectives,
        stored: Option<(Arc<Entry>, OnError)>,
        facts: &RequestFacts,
    ) -> Response<Body> {
        let fetch = HttpFetch {
            request: Arc::new(headers.clone()),
            stored: stored.as_ref().map(|(entry, _)| entry.clone()),
            may_store: !directives.no_store,
        };
        let fetched = self.regen.fetch_http(key, rule.store_policy(), fetch).await;
        let now = self.clock.now();
        let stale = |entry: &Entry| entry_response(entry, CacheStatus::Stale, entry.age(now), facts);
        match (fetched, stored) {
            (Fetch::Stored(entry), Some((old, _))) if shares_body(&entry, &old) => {
                entry_response(&entry, CacheStatus::Validated, entry.age(now), facts)
            }
            (Fetch::Stored(entry), _) => entry_response(&entry, CacheStatus::Miss, entry.age(now), facts),
            (Fetch::Passed(page, _), Some((old, on_error)))
                if page.status.is_server_error() && on_error.on_server_error =>
            {
                stale(&old)
            }
            (Fetch::Failed(err), Some((old, on_error))) if allows_stale(on_error, &err) => stale(&old),
            (Fetch::GaveUp, Some((old, on_error))) if on_error.on_unreachable => stale(&old),
            (Fetch::Passed(page, reason), _) => self.passed(page, reason),
            (Fetch::Oversized(oversized), _) => self.oversized(oversized),
            (Fetch::Failed(err), _) => ProxyError::Origin(err).into_response(),
            (Fetch::GaveUp, _) => ProxyError::GaveUp.into_response(),
        }
    }

    /// The target of a request with an unsafe method (anything but GET, HEAD, OPTIONS, TRACE), to invalidate
    /// once a non-error response to it is in; `None` for safe methods.
    pub(super) fn unsafe_target(&self, request: &Request<Incoming>, path: &str) -> Option<UnsafeTarget> {
        if matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return None;
        }
        Some(UnsafeTarget {
            key: self.origin_mode_key(path, request.uri().query()),
            host: request
                .headers()
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_ascii_lowercase),
        })
    }

    /// RFC 9111 §4.4: after a non-error response to an unsafe request, the stored responses for its target URI,
    /// and for the same-origin URIs in its `Location` and `Content-Location`, are invalidated: in memory, on disk
    /// and, through Redis, on every instance.
    pub(super) async fn invalidate_after(&self, target: UnsafeTarget, response: &Response<Body>) {
        let status = response.status();
        if !(status.is_success() || status.is_redirection()) {
            return;
        }
        let mut keys: Vec<CacheKey> = target.key.into_iter().collect();
        for name in [LOCATION, CONTENT_LOCATION] {
            let Some(uri) = response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let same_origin = match uri.authority() {
                None => true,
                Some(authority) => target.host.as_deref() == Some(authority.as_str().to_ascii_lowercase().as_str()),
            };
            if !same_origin || !uri.path().starts_with('/') {
                continue;
            }
            let Ok(path) = normalize_path(uri.path()) else { continue };
            keys.extend(self.origin_mode_key(&path, uri.query()));
        }
        for key in keys {
            let removed = self.cache.remove_url(&key).await;
            tracing::debug!(key = %key, removed, "invalidated by an unsafe request");
        }
    }

    /// The primary key of `path` if it falls under a `revalidate = "origin"` route.
    fn origin_mode_key(&self, path: &str, query: Option<&str>) -> Option<CacheKey> {
        self.routes
            .cached_route(path, query, Vec::new())
            .filter(|matched| matched.rule.revalidate == Revalidate::Origin)
            .map(|matched| matched.key)
    }
}

/// How `entry` may answer a request: as [`http_cache::reuse`] says, except that a page marked stale on demand
/// (revalidation by tag) is served stale while it is revalidated, as on time-based routes, when the origin's
/// directives allow serving it stale while revalidating at all.
fn reuse_of(entry: &Entry, age: std::time::Duration, directives: &RequestDirectives) -> Reuse {
    let Some(http) = &entry.http else {
        return Reuse::Validate(OnError::default());
    };
    let reuse = http_cache::reuse(&http.freshness, age, directives, entry.lifetime.expire);
    let while_revalidating = match http.freshness.serve_stale {
        ServeStale::Allowed => true,
        ServeStale::WithinWindows => !http.freshness.stale_while_revalidate.is_zero(),
        ServeStale::Never => false,
    };
    match reuse {
        Reuse::Fresh if entry.is_marked_stale() && while_revalidating => Reuse::StaleWhileRevalidate,
        Reuse::Fresh if entry.is_marked_stale() => Reuse::Validate(OnError::default()),
        other => other,
    }
}

/// Whether `entry` is `old` freshened by a `304` (same stored body), rather than a new response.
fn shares_body(entry: &Entry, old: &Entry) -> bool {
    entry.body.as_ptr() == old.body.as_ptr()
        && entry.body.len() == old.body.len()
        && entry.generated_at > old.generated_at
}

/// Whether a stored response may be served when the origin failed with `err`: a 5xx (passed on to waiters as
/// [`OriginError::Status`]) counts as a server error, anything else as an unreachable origin.
fn allows_stale(on_error: OnError, err: &OriginError) -> bool {
    match err {
        OriginError::Status(_) => on_error.on_server_error,
        _ => on_error.on_unreachable,
    }
}
