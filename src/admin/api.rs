//! The admin listener's JSON documents, as types: the server serialises them and the `isr-proxy` subcommands
//! deserialise the same types, so the two cannot drift apart and nothing builds JSON by hand.
//!
//! Times are RFC 3339 strings in UTC (`2026-11-29T19:58:00.123Z`), durations whole seconds or milliseconds as
//! the field name says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of every admin error response (4xx): what was wrong, in a sentence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong with the request.
    pub error: String,
}

/// `GET /health`: whether the proxy serves, and the state of what it depends on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// The proxy's public listener accepts connections: false before it listens (while `prerender.wait` holds
    /// it back) and once a shutdown drains it. The origin's state does not count: with the origin down, cached
    /// pages are still served (keep-last-good).
    pub ok: bool,
    /// The in-memory cache.
    pub cache: CacheHealth,
    /// The origin, as the last request to it found it.
    pub origin: OriginHealth,
    /// Startup prerendering.
    pub prerender: PrerenderHealth,
    /// Lower cache tiers (disk, Redis), in lookup order.
    pub tiers: Vec<TierHealth>,
    /// The config in effect.
    pub config: ConfigHealth,
}

/// The `config` part of [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigHealth {
    /// 0 for the config read at startup, one more per applied reload (SIGHUP).
    pub generation: u64,
    /// Settings changed by a reload that keep their running values until a restart.
    pub restart_needed: Vec<String>,
    /// Whether the admin listener's `POST /revalidate` (the dashboard's actions) is on: a revalidation token
    /// is set. Absent from proxies older than the dashboard.
    #[serde(default)]
    pub actions_enabled: bool,
}

/// The `cache` part of [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheHealth {
    /// Pages in memory.
    pub entries: u64,
    /// Bytes in memory, as weighed against `cache.max_size`.
    pub bytes: u64,
    /// Regenerations running now.
    pub regenerating: u64,
}

/// The `origin` part of [`Health`] and [`Stats`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginHealth {
    /// Whether the last origin request got an answer (any status); `null` before the first one.
    pub reachable: Option<bool>,
}

/// The `prerender` part of [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrerenderHealth {
    /// Paths to prerender (known once the list is read).
    pub total: usize,
    /// Stored so far.
    pub done: usize,
    /// Failed so far (they render on demand later).
    pub failed: usize,
    /// Whether prerendering is over (or there was nothing to do).
    pub finished: bool,
}

/// One lower cache tier in [`Health`] and [`Stats`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierHealth {
    /// `redis`, `disk`.
    pub name: String,
    /// Whether it works now; the proxy serves from memory and the origin without it.
    pub up: bool,
}

/// `GET /stats`: the figures of `/metrics` an operator reads first, as JSON (what `isr-proxy stats` prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Requests answered since start, by `x-isr-cache` value (`NONE`: responses isr-proxy wrote itself).
    pub requests: BTreeMap<String, u64>,
    /// Share of cache lookups answered from the cache: (HIT + STALE) / (HIT + STALE + MISS); `null` before the
    /// first lookup. Pass-through requests are not lookups.
    pub hit_ratio: Option<f64>,
    /// The in-memory cache.
    pub cache: CacheStats,
    /// Regenerations (origin fetches for cached routes).
    pub regenerations: RegenerationStats,
    /// The origin, as the last request to it found it.
    pub origin: OriginHealth,
    /// Cached-route origin fetches since start (misses, regenerations, revalidations; pass-through not
    /// counted). Absent from proxies older than the dashboard.
    #[serde(default)]
    pub origin_fetches: u64,
    /// The shared Redis tier: `up`, `down`, or `null` when none is configured.
    pub redis: Option<String>,
    /// Lower cache tiers, in lookup order.
    pub tiers: Vec<TierHealth>,
    /// Client connections open on the public listener.
    pub client_connections: u64,
}

/// The `cache` part of [`Stats`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheStats {
    /// Pages in memory.
    pub entries: u64,
    /// Bytes in memory, as weighed against `max_bytes`.
    pub bytes: u64,
    /// `cache.max_size`.
    pub max_bytes: u64,
    /// Pages evicted since start to stay under `max_bytes`.
    pub evictions: u64,
}

/// The `regenerations` part of [`Stats`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegenerationStats {
    /// Ended since start, whatever the result. Absent from proxies older than the dashboard.
    #[serde(default)]
    pub total: u64,
    /// Running now.
    pub in_flight: u64,
    /// Failed since start (origin error, timeout, 5xx).
    pub failed_total: u64,
    /// Failures among those still on record (see `GET /regenerations`).
    pub recent_failures: usize,
}

/// Whether a page may be served as is, served while it regenerates, or must wait for the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageState {
    /// Served as is (HIT).
    Fresh,
    /// Served at once while one background regeneration runs (STALE).
    Stale,
    /// Past `revalidate + expire`: the next request waits for the origin (and gets this page if it fails).
    Expired,
}

impl PageState {
    /// The word used in JSON and in `?state=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Stale => "stale",
            Self::Expired => "expired",
        }
    }
}

/// How a page is identified: its key and the parts it is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageKey {
    /// The cache key as logs show it: `/path?kept=query [rsc: 1]`.
    pub key: String,
    /// The normalised path.
    pub path: String,
    /// The query kept by the route's policy (part of the key), if any.
    pub query: Option<String>,
    /// Request headers that make this a separate variant (Next.js RSC payloads), by name.
    pub variant: BTreeMap<String, String>,
    /// On `revalidate = "origin"` routes, the request's values of the headers the stored response's `Vary` names
    /// (`null`: the request lacked the header); empty otherwise.
    pub vary: Vec<(String, Option<String>)>,
}

/// Bytes a page takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageSize {
    /// The body as stored (identity, unless the origin sent it encoded).
    pub body: usize,
    /// The gzip form stored beside it, if any.
    pub gzip: Option<usize>,
    /// The Brotli form stored beside it, if any.
    pub br: Option<usize>,
    /// Everything counted against `cache.max_size` (bodies, headers, key, overhead).
    pub weight: usize,
}

/// What every view of a stored page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageSummary {
    /// The origin's status.
    pub status: u16,
    /// Bytes.
    pub size: PageSize,
    /// When isr-proxy requested this version from the origin.
    pub generated_at: String,
    /// Seconds since then.
    pub age_seconds: u64,
    /// State now.
    pub state: PageState,
    /// Revalidated by tag (stale until regenerated, whatever its age).
    pub marked_stale: bool,
    /// Tags from the origin's tag headers.
    pub tags: Vec<String>,
    /// Tiers holding it: `memory`, `redis`, `disk` (a tier that cannot tell now is left out).
    pub tiers: Vec<String>,
}

/// One page in [`CacheListing`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedPage {
    /// Which page.
    #[serde(flatten)]
    pub key: PageKey,
    /// Its state.
    #[serde(flatten)]
    pub page: PageSummary,
}

/// `GET /cache`: one page of the pages in memory, in key order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheListing {
    /// The pages.
    pub entries: Vec<ListedPage>,
    /// Pass as `cursor=` to get the next page; `null` when there is none. A page can hold fewer than `limit`
    /// entries (even none) and still have a next cursor, when a state filter examined its budget of keys.
    pub next_cursor: Option<String>,
    /// Pages in memory, or pages carrying the tag with `tag=` (prefix and state are not counted).
    pub total: usize,
    /// Index entries examined for this page.
    pub scanned: usize,
}

/// `GET /cache/entry`: one page in full, with the rules that apply to it and its regeneration state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryDetail {
    /// Which page.
    #[serde(flatten)]
    pub key: PageKey,
    /// The route that caches it.
    pub route: RoutePolicy,
    /// How many `Vary` variants of this URL are stored (`revalidate = "origin"` routes): they are listed by
    /// `GET /cache?prefix=<path>`, right after the page's own key.
    pub vary_variants: usize,
    /// The stored page; `null` when no tier holds it.
    pub entry: Option<StoredPage>,
    /// Its regeneration.
    pub regeneration: RegenerationState,
}

/// A route's caching rules, as configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutePolicy {
    /// The route pattern.
    pub route: String,
    /// `revalidate`: a duration (`1m`), `on demand` (`false`) or `from origin`.
    pub revalidate: String,
    /// `not_found_revalidate`, when set, in the same form.
    pub not_found_revalidate: Option<String>,
    /// `expire`, in seconds.
    pub expire_seconds: u64,
    /// `fallback`: `blocking`, `true` (placeholder) or `false` (known paths only).
    pub fallback: String,
    /// `origin_cache_control`: `respect` or `ignore`.
    pub origin_cache_control: String,
}

/// A stored page in full.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPage {
    /// Its state.
    #[serde(flatten)]
    pub page: PageSummary,
    /// Headers as stored (sent with every response built from it), in order.
    pub headers: Vec<(String, String)>,
    /// Fresh for this many seconds after `generated_at`; `null` = until revalidated on demand. Can differ from
    /// the route's when the origin set it (`x-isr-revalidate`, or `revalidate = "origin"`).
    pub revalidate_seconds: Option<u64>,
    /// Then served stale for at most this many seconds.
    pub expire_seconds: u64,
    /// When it stops being fresh (`null`: on demand only).
    pub fresh_until: Option<String>,
    /// When it stops being served stale (`null`: on demand only).
    pub stale_until: Option<String>,
}

/// Where a page's regeneration stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegenerationState {
    /// A regeneration is running now.
    pub in_flight: bool,
    /// How its latest regeneration still on record ended (`null`: none in the recent records).
    pub last: Option<RegenerationRecord>,
    /// After a failure: stale hits start no new regeneration before this time (`cache.retry_after`).
    pub retry_at: Option<String>,
}

/// How one regeneration ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegenerationRecord {
    /// The page's key.
    pub key: String,
    /// Why it ran: `request`, `background`, `on_demand`, `prerender`.
    pub kind: String,
    /// When it started.
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// `stored`, `already_fresh`, `from_fleet`, `not_stored`, `failed`, `gave_up`.
    pub result: String,
    /// What went wrong (`failed`, `not_stored`).
    pub error: Option<String>,
}

/// A regeneration running now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningRegeneration {
    /// The page's key.
    pub key: String,
    /// Why it runs.
    pub kind: String,
    /// When it started.
    pub started_at: String,
    /// How long it has been running.
    pub running_ms: u64,
}

/// `GET /regenerations`: what regeneration is doing and has recently done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Regenerations {
    /// Running now, longest first (at most 1000).
    pub in_flight: Vec<RunningRegeneration>,
    /// How many are running (may exceed the list).
    pub in_flight_total: usize,
    /// The latest failures, newest first (kept apart, so successes do not push them out).
    pub recent_failures: Vec<RegenerationRecord>,
    /// The latest outcomes of any kind, newest first.
    pub recent: Vec<RegenerationRecord>,
    /// Failures since start.
    pub failed_total: u64,
}

/// `GET /history?after=`: the figures of [`Stats`] sampled every few seconds over the last hour, oldest first,
/// for the dashboard's charts. Counters are totals since start (a chart's rate is the difference of two
/// points over their `elapsed_ms`); gauges are the value when sampled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// Time between two samples.
    pub interval_ms: u64,
    /// The `x-isr-cache` values that each point's `requests` counts, in that order.
    pub request_labels: Vec<String>,
    /// The samples kept (at most an hour's), oldest first; with `after=`, only those with a higher `seq`.
    pub points: Vec<HistoryPoint>,
}

/// One sample in [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Sample number, one more per sample since the admin listener started (pass the last as `after=`).
    pub seq: u64,
    /// When it was taken, in Unix milliseconds (the proxy's clock).
    pub unix_ms: u64,
    /// When it was taken, in milliseconds since sampling started (monotonic: rates divide by this).
    pub elapsed_ms: u64,
    /// Requests answered since start, by `x-isr-cache` value, in the order of `request_labels`.
    pub requests: [u64; crate::metrics::REQUEST_LABELS.len()],
    /// Cached-route origin fetches since start.
    pub origin_fetches: u64,
    /// Regenerations ended since start (any result).
    pub regenerations: u64,
    /// Regenerations failed since start.
    pub regeneration_failures: u64,
    /// Regenerations running when sampled.
    pub regenerations_in_flight: u64,
    /// Pages in memory.
    pub entries: u64,
    /// Bytes in memory, as weighed against `max_bytes`.
    pub bytes: u64,
    /// `cache.max_size`.
    pub max_bytes: u64,
    /// Config generation in effect (one more per applied reload).
    pub config_generation: u64,
}
