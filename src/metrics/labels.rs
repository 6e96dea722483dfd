//! The fixed label values of `isr_bypass_total` and `isr_regenerations_total`: their counters are created up
//! front, one per value, so recording takes no lock.

/// The `reason` label of `isr_bypass_total`: why a response was not served from or stored in the cache. The
/// first ones are `cacheability::BypassReason`'s (an uncacheable origin response on a cached route); the last
/// ones say why a request was passed through without a lookup ([`PassThrough`]). Anything else counts as
/// `other`.
pub const BYPASS_REASONS: [&str; 15] = [
    "set-cookie",
    "private",
    "no-store",
    "no-cache",
    "max-age-zero",
    "vary-star",
    "vary-unkeyed",
    "status",
    "too-large",
    "no-freshness",
    "no-route",
    "route-not-cached",
    "method",
    "authorization",
    "other",
];

/// Why a request was passed through without a cache lookup: part of the `reason` label of `isr_bypass_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// The path matches no route.
    NoRoute,
    /// The route has `cache = false`.
    RouteNotCached,
    /// Neither GET nor HEAD.
    Method,
    /// The request carries `Authorization` (RFC 9111 §3.5).
    Authorization,
}

impl PassThrough {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRoute => "no-route",
            Self::RouteNotCached => "route-not-cached",
            Self::Method => "method",
            Self::Authorization => "authorization",
        }
    }
}

/// The `result` label of `isr_regenerations_total`: how each regeneration (one flight: a miss, a stale refresh,
/// an on-demand or prerender fetch) ended. See `regen::history::RegenResult`.
pub const REGENERATION_RESULTS: [&str; 6] = [
    "stored",
    "already_fresh",
    "from_fleet",
    "not_stored",
    "failed",
    "gave_up",
];
