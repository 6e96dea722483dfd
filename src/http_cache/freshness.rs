//! Storing and reusing responses: whether a response may be stored (RFC 9111 §3), its freshness lifetime
//! (§4.2.1) and initial age (§4.2.3), and whether a stored response may answer a request as it is, stale, or only
//! after validation (§4.2.4, §5.2.1, RFC 5861).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE};
use http::{HeaderMap, StatusCode};

use super::directives::{DELTA_SECONDS_MAX, MaxStale, RequestDirectives, ResponseDirectives, Seconds};
use super::vary::Vary;
use crate::cache::entry::{HttpFreshness, ServeStale};
use crate::cacheability::BypassReason;

/// What storing a response under RFC 9111 comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreDecision {
    /// How it may be reused.
    pub freshness: HttpFreshness,
    /// The age it already had when it arrived (its `Age` header); the time since the request adds to it.
    pub initial_age: Duration,
}

/// Whether a response may be stored by a shared cache, and if so how it may be reused. `response_time` stands in
/// for a missing or invalid `Date` when `Expires` gives the lifetime.
///
/// Not stored: `Set-Cookie` (a deliberate deviation: a personal response is never shared), `no-store` (unless
/// `must-understand` and a status isr-proxy understands), `private`, `Vary: *`, a status not understood with
/// `must-understand`, partial and non-final responses, and a response with neither explicit freshness nor a
/// validator (no heuristic freshness).
pub fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Result<StoreDecision, BypassReason> {
    if status.is_informational() || status == StatusCode::PARTIAL_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Err(BypassReason::Status(status));
    }
    if headers.contains_key(SET_COOKIE) {
        return Err(BypassReason::SetCookie);
    }
    let directives = ResponseDirectives::effective(headers);
    if directives.must_understand {
        if !is_understood(status) {
            return Err(BypassReason::Status(status));
        }
    } else if directives.no_store {
        return Err(BypassReason::NoStore);
    }
    if directives.private {
        return Err(BypassReason::Private);
    }
    if Vary::parse(headers) == Vary::Star {
        return Err(BypassReason::VaryStar);
    }
    let has_validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
    let lifetime = match explicit_lifetime(&directives, headers, response_time) {
        Some(lifetime) => lifetime,
        // No heuristic freshness: without a lifetime, only a validator makes a stored response useful (it is
        // then revalidated before every use).
        None if has_validator && is_heuristically_cacheable(status) => Duration::ZERO,
        None => return Err(BypassReason::NoFreshness),
    };
    let stale_while_revalidate = seconds(directives.stale_while_revalidate);
    let stale_if_error = seconds(directives.stale_if_error);
    if lifetime.is_zero() && !has_validator && stale_while_revalidate.is_zero() && stale_if_error.is_zero() {
        return Err(BypassReason::MaxAgeZero);
    }
    Ok(StoreDecision {
        freshness: HttpFreshness {
            lifetime,
            stale_while_revalidate,
            stale_if_error,
            serve_stale: serve_stale(&directives, stale_while_revalidate, stale_if_error),
            no_cache: directives.no_cache,
        },
        initial_age: age_value(headers),
    })
}

/// Which stale uses the directives allow: none with `must-revalidate` or `proxy-revalidate`; with `s-maxage`
/// (§5.2.2.10: proxy-revalidate for a shared cache) only those its RFC 5861 windows name, or none without one.
fn serve_stale(
    directives: &ResponseDirectives,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
) -> ServeStale {
    let has_window = !stale_while_revalidate.is_zero() || !stale_if_error.is_zero();
    if directives.must_revalidate || directives.proxy_revalidate {
        ServeStale::Never
    } else if !directives.s_maxage.is_present() {
        ServeStale::Allowed
    } else if has_window {
        ServeStale::WithinWindows
    } else {
        ServeStale::Never
    }
}

fn seconds(value: Seconds) -> Duration {
    Duration::from_secs(value.value().unwrap_or(0))
}

/// §4.2.1 (with RFC 9213): `max-age` of a valid `CDN-Cache-Control`, else `s-maxage`, else `max-age`, else
/// `Expires` − `Date`. An invalid value counts as explicit and zero (stale); `None` when there is none at all.
fn explicit_lifetime(
    directives: &ResponseDirectives,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Option<Duration> {
    let directive = [directives.s_maxage, directives.max_age]
        .into_iter()
        .find(|s| s.is_present());
    if let Some(directive) = directive {
        return Some(seconds(directive));
    }
    let expires = single_date(headers, EXPIRES)?;
    let Some(expires) = expires else {
        return Some(Duration::ZERO);
    };
    let date = single_date(headers, DATE).flatten().unwrap_or(response_time);
    Some(expires.duration_since(date).unwrap_or_default())
}

/// The value of a date header: `None` if absent, `Some(None)` if invalid (several lines, or not an HTTP-date).
/// All three HTTP-date forms are accepted, as RFC 9110 §5.6.7 requires of recipients.
fn single_date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<Option<SystemTime>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(
        first
            .to_str()
            .ok()
            .and_then(|text| httpdate::parse_http_date(text).ok()),
    )
}

/// §5.1: the first `Age` value (the first member of the first line); an invalid one counts as absent, and values
/// beyond 2^31 as 2^31.
pub fn age_value(headers: &HeaderMap) -> Duration {
    let first = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .unwrap_or("");
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    Duration::from_secs(
        first
            .parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |s| s.min(DELTA_SECONDS_MAX)),
    )
}

/// Status codes RFC 9110 defines, whose caching semantics isr-proxy therefore knows (`must-understand`).
fn is_understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// RFC 9110 §15.1: statuses a cache may store without explicit freshness (with a validator, here).
fn is_heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How a stored response may answer one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh, and acceptable to the request: serve it.
    Fresh,
    /// Stale, but the request accepts it as it is (`max-stale`): serve it, no revalidation.
    StaleAccepted,
    /// Stale within `stale-while-revalidate`: serve it now, revalidate in the background.
    StaleWhileRevalidate,
    /// Validate with the origin first; [`OnError`] says what may be served if that fails.
    Validate(OnError),
}

/// What may be served when validation fails (the default: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnError {
    /// The origin could not be reached or did not answer in time: serve the stored response (a disconnected
    /// cache may serve stale, §4.2.4, within `stale-if-error` or the route's `expire`).
    pub on_unreachable: bool,
    /// The origin answered 5xx: serve the stored response (within `stale-if-error`, RFC 5861 §4).
    pub on_server_error: bool,
}

impl OnError {
    const NEVER: Self = Self {
        on_unreachable: false,
        on_server_error: false,
    };
    const ALWAYS: Self = Self {
        on_unreachable: true,
        on_server_error: true,
    };
}

/// Whether a stored response of this `age` may answer a request with these `request` directives. `expire`
/// bounds how long past its freshness a stored response is kept as a fallback for an unreachable origin.
pub fn reuse(freshness: &HttpFreshness, age: Duration, request: &RequestDirectives, expire: Duration) -> Reuse {
    let fresh = freshness.lifetime > age;
    if freshness.no_cache || request.no_cache {
        // §5.2.2.4 and §5.2.1.4: never used without a successful validation.
        return Reuse::Validate(OnError::NEVER);
    }
    if fresh {
        let too_old = request.max_age.is_some_and(|max| age > Duration::from_secs(max));
        let remaining = freshness.lifetime - age;
        let not_fresh_enough = request
            .min_fresh
            .is_some_and(|min| remaining < Duration::from_secs(min));
        return if too_old || not_fresh_enough {
            // The client only "prefers" a younger response (§5.2.1.1): if the origin fails, the stored one is
            // still fresh and better than an error.
            Reuse::Validate(OnError::ALWAYS)
        } else {
            Reuse::Fresh
        };
    }
    let any_stale_use = match freshness.serve_stale {
        ServeStale::Never => return Reuse::Validate(OnError::NEVER),
        ServeStale::WithinWindows => false,
        ServeStale::Allowed => true,
    };
    let staleness = age - freshness.lifetime;
    let accepted = match request.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::UpTo(limit)) => staleness <= Duration::from_secs(limit),
        None => false,
    };
    if any_stale_use && accepted && request.max_age.is_none_or(|max| age <= Duration::from_secs(max)) {
        return Reuse::StaleAccepted;
    }
    if staleness < freshness.stale_while_revalidate && request.max_age.is_none() && request.min_fresh.is_none() {
        return Reuse::StaleWhileRevalidate;
    }
    let within_error_window = staleness < freshness.stale_if_error;
    Reuse::Validate(OnError {
        on_unreachable: within_error_window || (any_stale_use && staleness < expire),
        on_server_error: within_error_window,
    })
}

#[cfg(test)]
mod tests;
