//! [`CacheStatus`]: how a response was produced, as `x-isr-cache`, RFC 9211 `Cache-Status`, metrics and logs
//! name it. A leaf, so that both the response builder and the metrics can use it.

use http::header::{HeaderName, HeaderValue};

/// `x-isr-cache`: how this response was produced.
pub const X_ISR_CACHE: HeaderName = HeaderName::from_static("x-isr-cache");
/// RFC 9211 `Cache-Status`.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// How a response was produced; feeds `x-isr-cache`, `Cache-Status` and tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh page from the cache.
    Hit,
    /// Stale page from the cache, regeneration running in the background (or the origin failed).
    Stale,
    /// Fetched from the origin now and stored.
    Miss,
    /// Not stored: uncached route, method, or uncacheable response.
    Bypass,
    /// Regenerated synchronously for this request (`x-prerender-revalidate`).
    Revalidated,
    /// The route's placeholder page, while the real page renders (`fallback = true`).
    Fallback,
    /// A stored response validated with the origin (`304 Not Modified`) and served (`revalidate = "origin"`
    /// routes). Counted as `REVALIDATED`, like an on-demand regeneration: the origin was asked for this request.
    Validated,
}

impl CacheStatus {
    /// The `x-isr-cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Stale => "STALE",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Revalidated | Self::Validated => "REVALIDATED",
            Self::Fallback => "FALLBACK",
        }
    }

    /// The `x-isr-cache` header value.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The RFC 9211 `Cache-Status` header value.
    pub fn cache_status(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "isr-proxy; hit",
            Self::Stale => "isr-proxy; hit; fwd=stale",
            Self::Miss => "isr-proxy; fwd=miss; stored",
            Self::Bypass => "isr-proxy; fwd=bypass",
            Self::Revalidated => "isr-proxy; fwd=request; stored",
            Self::Fallback => "isr-proxy; fwd=miss; detail=fallback",
            Self::Validated => "isr-proxy; fwd=stale; fwd-status=304; stored",
        })
    }
}
