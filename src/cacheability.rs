//! Whether an origin response may be stored and shared with every client, and for how long.
//!
//! Pure and table-tested. A shared cache that stores the wrong response leaks one user's page to everyone, so
//! anything personal or explicitly uncacheable is passed through (RFC 9111 §3, §5.2.2). A route's
//! [`StorePolicy`] turns its rule plus the origin's headers into the stored page's [`Lifetime`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, SET_COOKIE, VARY};
use http::{HeaderMap, StatusCode};

use crate::cache::Lifetime;
use crate::cache::key::VARIANT_HEADERS;
use crate::http_cache::directives::{ResponseDirectives, Seconds};

/// Response header through which the origin overrides a route's `revalidate` for one page
/// (`<seconds>` or `false`); never stored or shown to clients.
pub const ISR_REVALIDATE_HEADER: HeaderName = HeaderName::from_static("x-isr-revalidate");

/// How long a cached page stays fresh, as configured on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidate {
    /// Fresh for this long after it was generated, then served stale while one regeneration runs.
    After(Duration),
    /// `revalidate = false`: fresh until regenerated on demand.
    OnDemand,
    /// `revalidate = "origin"`: from the origin's `Cache-Control` (`s-maxage`, else `max-age`); a response
    /// without one is not stored.
    Origin,
}

/// Whether the origin's `Cache-Control` can veto storing (`respect`, the safe default) or the route's rule wins
/// (`ignore`, for frameworks that mark ISR pages `private, no-store`). `Set-Cookie` always vetoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OriginCacheControl {
    /// `private`, `no-store`, `no-cache`, `max-age=0` keep a response out of the cache.
    #[default]
    Respect,
    /// Those directives are ignored for storing; clients get isr-proxy's own `Cache-Control`.
    Ignore,
}

/// A route's storing rules, handed to every fetch under that route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePolicy {
    /// The route pattern, for logs.
    pub route: Arc<str>,
    /// Freshness of pages.
    pub revalidate: Revalidate,
    /// Freshness of 404/410 pages, when it differs.
    pub not_found_revalidate: Option<Revalidate>,
    /// How long past `revalidate` a page may be served stale.
    pub expire: Duration,
    /// Whether the origin's `Cache-Control` can veto storing.
    pub origin_cache_control: OriginCacheControl,
}

impl StorePolicy {
    /// Whether to store this response, and if so its lifetime.
    pub fn decide(&self, status: StatusCode, headers: &HeaderMap) -> Result<Lifetime, BypassReason> {
        if let Cacheability::Bypass(reason) = cacheability(status, headers, self.origin_cache_control) {
            return Err(reason);
        }
        let configured = match status.as_u16() {
            404 | 410 => self.not_found_revalidate.unwrap_or(self.revalidate),
            _ => self.revalidate,
        };
        let revalidate = origin_override(headers).unwrap_or(configured);
        match revalidate {
            Revalidate::After(duration) => Ok(Lifetime {
                revalidate: Some(duration),
                expire: self.expire,
            }),
            Revalidate::OnDemand => Ok(Lifetime {
                revalidate: None,
                expire: self.expire,
            }),
            // `revalidate = "origin"` responses are judged by RFC 9111 (`crate::http_cache::judge`), never here.
            Revalidate::Origin => Err(BypassReason::NoFreshness),
        }
    }
}

/// `x-isr-revalidate: <seconds> | false`; anything else is ignored.
fn origin_override(headers: &HeaderMap) -> Option<Revalidate> {
    let value = headers.get(ISR_REVALIDATE_HEADER)?.to_str().ok()?.trim();
    if value.eq_ignore_ascii_case("false") {
        return Some(Revalidate::OnDemand);
    }
    let seconds: u64 = value.parse().ok().filter(|s| *s > 0)?;
    Some(Revalidate::After(Duration::from_secs(seconds)))
}

/// The verdict on one origin response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheability {
    /// Store it and share it.
    Store,
    /// Pass it to the requesting client only.
    Bypass(BypassReason),
}

/// Why a response was not stored; shown in logs and in `Cache-Status: ...; detail=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// `Set-Cookie`: a per-user response.
    SetCookie,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: no-cache` (must be revalidated on every use).
    NoCache,
    /// `s-maxage=0` (or `max-age=0` without `s-maxage`).
    MaxAgeZero,
    /// `Vary: *`.
    VaryStar,
    /// `Vary` on a request header the key does not include.
    VaryUnkeyed,
    /// A status a shared cache should not store as a page.
    Status(StatusCode),
    /// Larger than `cache.max_entry_size`.
    TooLarge,
    /// `revalidate = "origin"` and the response has neither explicit freshness nor a validator.
    NoFreshness,
    /// The request said `Cache-Control: no-store`.
    RequestNoStore,
    /// The URL already has as many `Vary` variants stored as a URL may have.
    TooManyVariants,
}

impl BypassReason {
    /// A short token for headers and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SetCookie => "set-cookie",
            Self::Private => "private",
            Self::NoStore => "no-store",
            Self::NoCache => "no-cache",
            Self::MaxAgeZero => "max-age-zero",
            Self::VaryStar => "vary-star",
            Self::VaryUnkeyed => "vary-unkeyed",
            Self::Status(_) => "status",
            Self::TooLarge => "too-large",
            Self::NoFreshness => "no-freshness",
            Self::RequestNoStore => "request-no-store",
            Self::TooManyVariants => "too-many-variants",
        }
    }
}

impl fmt::Display for BypassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status {}", status.as_u16()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Statuses stored like pages: success, permanent and temporary redirects, and "not found" (Next.js caches
/// `notFound`). 5xx is never stored and never replaces a good page.
pub fn is_cacheable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 203 | 301 | 302 | 307 | 308 | 404 | 410)
}

/// Decides whether a response with this status and these headers may be stored.
pub fn cacheability(status: StatusCode, headers: &HeaderMap, origin_cache_control: OriginCacheControl) -> Cacheability {
    if headers.contains_key(SET_COOKIE) {
        return Cacheability::Bypass(BypassReason::SetCookie);
    }
    if origin_cache_control == OriginCacheControl::Respect
        && let Some(reason) = cache_control_bypass(headers)
    {
        return Cacheability::Bypass(reason);
    }
    if let Some(reason) = vary_bypass(headers) {
        return Cacheability::Bypass(reason);
    }
    if !is_cacheable_status(status) {
        return Cacheability::Bypass(BypassReason::Status(status));
    }
    Cacheability::Store
}

fn cache_control_bypass(headers: &HeaderMap) -> Option<BypassReason> {
    let directives = ResponseDirectives::from_cache_control(headers);
    let shared_max_age = [directives.s_maxage, directives.max_age]
        .into_iter()
        .find_map(Seconds::value);
    if directives.private {
        Some(BypassReason::Private)
    } else if directives.no_store {
        Some(BypassReason::NoStore)
    } else if directives.no_cache {
        Some(BypassReason::NoCache)
    } else if shared_max_age == Some(0) {
        Some(BypassReason::MaxAgeZero)
    } else {
        None
    }
}

fn vary_bypass(headers: &HeaderMap) -> Option<BypassReason> {
    for value in headers.get_all(VARY) {
        let Ok(value) = value.to_str() else {
            return Some(BypassReason::VaryUnkeyed);
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Some(BypassReason::VaryStar);
            }
            // The origin is always asked for identity encoding, and the RSC headers are part of the key.
            let keyed = name.eq_ignore_ascii_case("accept-encoding")
                || VARIANT_HEADERS.iter().any(|v| name.eq_ignore_ascii_case(v));
            if !keyed {
                return Some(BypassReason::VaryUnkeyed);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cacheability_table() {
        use BypassReason as B;
        use Cacheability::{Bypass, Store};
        let ok = StatusCode::OK;
        let cases: Vec<(StatusCode, HeaderMap, Cacheability)> = vec![
            (ok, headers(&[]), Store),
            (
                ok,
                headers(&[("cache-control", "s-maxage=60, stale-while-revalidate")]),
                Store,
            ),
            (ok, headers(&[("set-cookie", "sid=1")]), Bypass(B::SetCookie)),
            (ok, headers(&[("cache-control", "public, Private")]), Bypass(B::Private)),
            (
                ok,
                headers(&[("cache-control", "max-age=10"), ("cache-control", "no-store")]),
                Bypass(B::NoStore),
            ),
            (ok, headers(&[("cache-control", "no-cache")]), Bypass(B::NoCache)),
            (ok, headers(&[("cache-control", "max-age=0")]), Bypass(B::MaxAgeZero)),
            (ok, headers(&[("cache-control", "max-age=0, s-maxage=60")]), Store),
            (
                ok,
                headers(&[("cache-control", "s-maxage=0, max-age=60")]),
                Bypass(B::MaxAgeZero),
            ),
            (ok, headers(&[("vary", "*")]), Bypass(B::VaryStar)),
            (
                ok,
                headers(&[("vary", "Accept-Encoding, RSC, Next-Router-State-Tree")]),
                Store,
            ),
            (ok, headers(&[("vary", "Cookie")]), Bypass(B::VaryUnkeyed)),
            (StatusCode::NOT_FOUND, headers(&[]), Store),
            (StatusCode::MOVED_PERMANENTLY, headers(&[]), Store),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                headers(&[]),
                Bypass(B::Status(StatusCode::INTERNAL_SERVER_ERROR)),
            ),
            (
                StatusCode::NO_CONTENT,
                headers(&[]),
                Bypass(B::Status(StatusCode::NO_CONTENT)),
            ),
        ];
        for (status, headers, want) in cases {
            assert_eq!(
                cacheability(status, &headers, OriginCacheControl::Respect),
                want,
                "{status} {headers:?}"
            );
        }
    }

    fn policy(revalidate: Revalidate, occ: OriginCacheControl) -> StorePolicy {
        StorePolicy {
            route: Arc::from("/r"),
            revalidate,
            not_found_revalidate: Some(Revalidate::After(Duration::from_secs(5))),
            expire: Duration::from_secs(100),
            origin_cache_control: occ,
        }
    }

    #[test]
    fn store_policy_resolves_lifetimes() {
        use OriginCacheControl::{Ignore, Respect};
        let secs = |s| Some(Duration::from_secs(s));
        let ok = StatusCode::OK;
        let sixty = Revalidate::After(Duration::from_secs(60));
        let private = headers(&[(
            "cache-control",
            "private, no-cache, no-store, max-age=0, must-revalidate",
        )]);
        type Case = (
            StorePolicy,
            StatusCode,
            HeaderMap,
            Result<Option<Duration>, BypassReason>,
        );
        let cases: Vec<Case> = vec![
            (policy(sixty, Respect), ok, headers(&[]), Ok(secs(60))),
            (policy(Revalidate::OnDemand, Respect), ok, headers(&[]), Ok(None)),
            (policy(sixty, Respect), StatusCode::NOT_FOUND, headers(&[]), Ok(secs(5))),
            (
                policy(sixty, Respect),
                ok,
                headers(&[("x-isr-revalidate", "7")]),
                Ok(secs(7)),
            ),
            (
                policy(sixty, Respect),
                ok,
                headers(&[("x-isr-revalidate", "false")]),
                Ok(None),
            ),
            (
                policy(sixty, Respect),
                ok,
                headers(&[("x-isr-revalidate", "soon")]),
                Ok(secs(60)),
            ),
            (policy(sixty, Respect), ok, private.clone(), Err(BypassReason::Private)),
            (policy(sixty, Ignore), ok, private.clone(), Ok(secs(60))),
            (
                policy(sixty, Ignore),
                ok,
                headers(&[("set-cookie", "a=b")]),
                Err(BypassReason::SetCookie),
            ),
            (
                policy(Revalidate::Origin, Respect),
                ok,
                headers(&[("cache-control", "max-age=30")]),
                Err(BypassReason::NoFreshness),
            ),
        ];
        for (policy, status, headers, want) in cases {
            let got = policy.decide(status, &headers).map(|l| l.revalidate);
            assert_eq!(got, want, "{policy:?} {status} {headers:?}");
        }
    }
}
