//! Prometheus metrics: what the proxy records while it serves, and the text a scrape gets.
//!
//! Recording is lock-free and allocation-free: every labelled counter is created up front and indexed by an enum,
//! and the latency histograms are arrays of atomics ([`LatencyHistogram`]), because prometheus-client's own
//! histogram takes a mutex on every observation. Figures owned by other modules (cache entries, bytes and
//! evictions, regenerations in flight and failed) are not mirrored here: the caller reads them at scrape time and
//! passes them in as a [`Snapshot`]. This module does not know the cache, the origin or the proxy.

mod histogram;
mod labels;
mod sharded;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use histogram::{LatencyHistogram, OTHER_ROUTE, RouteHistograms};
pub use labels::{BYPASS_REASONS, PassThrough, REGENERATION_RESULTS};
use sharded::ShardedCounter;

use crate::cache_status::CacheStatus;

/// `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `cache` label of `isr_requests_total`: the `x-isr-cache` values, plus `NONE` for responses isr-proxy
/// wrote itself (errors, the revalidation endpoint). [`Metrics::request_counts`] is in this order.
pub const REQUEST_LABELS: [&str; 7] = ["HIT", "STALE", "MISS", "BYPASS", "FALLBACK", "REVALIDATED", "NONE"];

/// How one cached-route origin fetch ended; the `outcome` label of `isr_origin_fetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginOutcome {
    /// A whole response within `max_entry_size` (any status but 5xx).
    Complete,
    /// Larger than `max_entry_size`: streamed, not stored.
    Oversized,
    /// The origin answered 5xx.
    ServerError,
    /// No complete response within `origin.timeout`.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The connection broke before or while the response arrived (including a body cut short).
    Broken,
    /// No origin slot freed up within `origin.queue_timeout`.
    Busy,
}

impl OriginOutcome {
    const ALL: [Self; 7] = [
        Self::Complete,
        Self::Oversized,
        Self::ServerError,
        Self::Timeout,
        Self::Connect,
        Self::Broken,
        Self::Busy,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Oversized => "oversized",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect_error",
            Self::Broken => "broken",
            Self::Busy => "busy",
        }
    }

    /// Whether the origin answered at all (for `/health`'s `origin_reachable`).
    fn reached_origin(self) -> bool {
        matches!(self, Self::Complete | Self::Oversized | Self::ServerError)
    }
}

/// What an on-demand revalidation acted on; the `kind` label of `isr_revalidations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevalidationKind {
    /// A path regenerated now.
    Path,
    /// A tag's pages marked stale.
    Tag,
    /// The pages under a path prefix marked stale.
    Prefix,
    /// A path's, a tag's or a prefix's pages removed.
    Purge,
}

impl RevalidationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Tag => "tag",
            Self::Prefix => "prefix",
            Self::Purge => "purge",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevalidationLabels {
    kind: &'static str,
    result: &'static str,
}

/// Figures read from their owners at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Pages in memory.
    pub cache_entries: u64,
    /// Bytes in memory, as weighed.
    pub cache_bytes: u64,
    /// The bound on `cache_bytes` (`cache.max_size`).
    pub cache_max_bytes: u64,
    /// Pages evicted to stay under `cache.max_size`, since start.
    pub cache_evictions: u64,
    /// Origin fetches for cached routes running now (single-flight: one per key).
    pub regenerations_in_flight: u64,
    /// Regenerations that failed (origin error, timeout, 5xx), since start.
    pub regeneration_failures: u64,
    /// Whether the shared Redis tier works now; `None` without `[cache.redis]` (the metric is then absent).
    pub redis_up: Option<bool>,
}

/// Whether the last cached-route origin fetch reached the origin: unknown until the first fetch.
const ORIGIN_UNKNOWN: u8 = 0;
const ORIGIN_REACHED: u8 = 1;
const ORIGIN_UNREACHED: u8 = 2;

/// Everything the proxy records. One per [`Proxy`](crate::Proxy); cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<CacheLabel, ShardedCounter>,
    /// Indexed like [`REQUEST_LABELS`], so recording is one atomic add (on the recording thread's shard: every
    /// request counts here).
    request_counters: [ShardedCounter; REQUEST_LABELS.len()],
    origin_fetches: Family<OutcomeLabel, Counter>,
    /// Indexed like [`OriginOutcome::ALL`].
    origin_counters: [Counter; OriginOutcome::ALL.len()],
    origin_latency: LatencyHistogram,
    response_latency: LatencyHistogram,
    revalidations: Family<RevalidationLabels, Counter>,
    bypasses: Family<ReasonLabel, Counter>,
    /// Indexed like [`BYPASS_REASONS`].
    bypass_counters: [Counter; BYPASS_REASONS.len()],
    regenerations: Family<ResultLabel, Counter>,
    /// Indexed like [`REGENERATION_RESULTS`].
    regeneration_counters: [Counter; REGENERATION_RESULTS.len()],
    render_time: RouteHistograms,
    client_connections: Arc<AtomicU64>,
    config_reloads: Family<ResultLabel, Counter>,
    origin_state: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one open client connection while it lives ([`Metrics::connection_opened`]).
#[derive(Debug)]
pub struct ConnectionGuard(Arc<AtomicU64>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Metrics with every counter at zero, and no per-route render histograms (see [`Metrics::with_routes`]).
    pub fn new() -> Self {
        Self::with_routes([])
    }

    /// Metrics with a render-time histogram for each route pattern in `routes` (fixed here, so recording takes
    /// no lock; other routes count as `other`).
    pub fn with_routes<'a>(routes: impl IntoIterator<Item = &'a str>) -> Self {
        let requests = Family::<CacheLabel, ShardedCounter>::default();
        let bypasses = Family::<ReasonLabel, Counter>::default();
        let regenerations = Family::<ResultLabel, Counter>::default();
        let request_counters = REQUEST_LABELS.map(|cache| requests.get_or_create_owned(&CacheLabel { cache }));
        let origin_fetches = Family::<OutcomeLabel, Counter>::default();
        let origin_counters = OriginOutcome::ALL.map(|outcome| {
            origin_fetches.get_or_create_owned(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
        });
        Self {
            requests,
            request_counters,
            origin_fetches,
            origin_counters,
            origin_latency: LatencyHistogram::default(),
            response_latency: LatencyHistogram::default(),
            revalidations: Family::default(),
            bypass_counters: counters_for(&bypasses, &BYPASS_REASONS, |reason| ReasonLabel { reason }),
            bypasses,
            regeneration_counters: counters_for(&regenerations, &REGENERATION_RESULTS, |result| ResultLabel { result }),
            regenerations,
            render_time: RouteHistograms::new(routes),
            client_connections: Arc::default(),
            config_reloads: Family::default(),
            origin_state: AtomicU8::new(ORIGIN_UNKNOWN),
        }
    }

    /// Records a response not served from or stored in the cache, by reason (a [`BYPASS_REASONS`] value;
    /// anything else counts as `other`). One atomic add, after a short search of a fixed list.
    pub fn record_bypass(&self, reason: &str) {
        let index = BYPASS_REASONS
            .iter()
            .position(|known| *known == reason)
            .unwrap_or(BYPASS_REASONS.len() - 1);
        self.bypass_counters[index].inc();
    }

    /// Records how one regeneration ended (a [`REGENERATION_RESULTS`] value; others are ignored).
    pub fn record_regeneration(&self, result: &str) {
        if let Some(index) = REGENERATION_RESULTS.iter().position(|known| *known == result) {
            self.regeneration_counters[index].inc();
        }
    }

    /// Records the time one origin render for a cached route took, by route pattern.
    pub fn record_render(&self, route: &str, elapsed: Duration) {
        self.render_time.observe(route, elapsed);
    }

    /// Counts a client connection as open until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.client_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.client_connections.clone())
    }

    /// Client connections open now.
    pub fn client_connections(&self) -> u64 {
        self.client_connections.load(Ordering::Relaxed)
    }

    /// The count of responses bypassing the cache for `reason` so far.
    pub fn bypasses(&self, reason: &str) -> u64 {
        BYPASS_REASONS
            .iter()
            .position(|known| *known == reason)
            .map_or(0, |i| self.bypass_counters[i].get())
    }

    /// Records one answered request: its `x-isr-cache` value (`None` for responses isr-proxy wrote itself) and
    /// how long the response head took.
    pub fn record_request(&self, cache: Option<&HeaderValue>, elapsed: Duration) {
        let index = cache
            .and_then(|value| {
                let value = value.as_bytes();
                REQUEST_LABELS.iter().position(|label| label.as_bytes() == value)
            })
            .unwrap_or(REQUEST_LABELS.len() - 1);
        self.request_counters[index].inc();
        self.response_latency.observe(elapsed);
    }

    /// The count of requests answered with `status` so far.
    pub fn requests(&self, status: CacheStatus) -> u64 {
        REQUEST_LABELS
            .iter()
            .position(|label| *label == status.as_str())
            .map_or(0, |i| self.request_counters[i].get())
    }

    /// Requests answered so far, by `x-isr-cache` value (`NONE` for responses isr-proxy wrote itself).
    pub fn request_counts(&self) -> Vec<(&'static str, u64)> {
        REQUEST_LABELS
            .iter()
            .zip(&self.request_counters)
            .map(|(label, counter)| (*label, counter.get()))
            .collect()
    }

    /// Cached-route origin fetches so far that were sent (every outcome but `busy`, which never left).
    pub fn origin_fetch_count(&self) -> u64 {
        OriginOutcome::ALL
            .iter()
            .zip(&self.origin_counters)
            .filter(|(outcome, _)| **outcome != OriginOutcome::Busy)
            .map(|(_, counter)| counter.get())
            .sum()
    }

    /// Regenerations (flights) ended so far, whatever their result.
    pub fn regeneration_count(&self) -> u64 {
        self.regeneration_counters.iter().map(Counter::get).sum()
    }

    /// Records one cached-route origin fetch.
    pub fn record_origin_fetch(&self, outcome: OriginOutcome, elapsed: Duration) {
        let index = OriginOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.origin_counters[index].inc();
        if outcome != OriginOutcome::Busy {
            self.origin_latency.observe(elapsed);
        }
        self.record_origin_reachable(outcome.reached_origin());
    }

    /// Records whether a request to the origin (cached or passed through) got an answer.
    pub fn record_origin_reachable(&self, reached: bool) {
        let state = if reached { ORIGIN_REACHED } else { ORIGIN_UNREACHED };
        // Skip the store when unchanged, so the cache line stays shared between cores.
        if self.origin_state.load(Ordering::Relaxed) != state {
            self.origin_state.store(state, Ordering::Relaxed);
        }
    }

    /// Whether the last origin request got an answer; `None` before the first one.
    pub fn origin_reachable(&self) -> Option<bool> {
        match self.origin_state.load(Ordering::Relaxed) {
            ORIGIN_REACHED => Some(true),
            ORIGIN_UNREACHED => Some(false),
            _ => None,
        }
    }

    /// Records one on-demand revalidation of one path or tag; `result` is a short word (`regenerated`, `failed`,
    /// `purged`, ...). Not on the request path, so a locked label lookup is fine here.
    pub fn record_revalidation(&self, kind: RevalidationKind, result: &'static str) {
        self.revalidations
            .get_or_create(&RevalidationLabels {
                kind: kind.as_str(),
                result,
            })
            .inc();
    }

    /// Records one config reload (SIGHUP): applied, or refused because the file was invalid.
    pub fn record_config_reload(&self, applied: bool) {
        let result = if applied { "success" } else { "failure" };
        self.config_reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// The Prometheus text for a scrape, with the figures in `snapshot`.
    pub fn encode(&self, snapshot: Snapshot) -> Result<String, fmt::Error> {
        let mut registry = Registry::with_prefix("isr");
        registry.register(
            "requests",
            "Requests answered, by x-isr-cache value (NONE: errors and endpoints)",
            self.requests.clone(),
        );
        registry.register(
            "origin_fetches",
            "Origin fetches for cached routes, by outcome",
            self.origin_fetches.clone(),
        );
        registry.register(
            "origin_latency_seconds",
            "Time of origin fetches for cached routes, whole body included",
            self.origin_latency.clone(),
        );
        registry.register(
            "response_latency_seconds",
            "Time from request to response head",
            self.response_latency.clone(),
        );
        registry.register(
            "revalidations",
            "On-demand revalidations, by kind (path, tag, purge) and result",
            self.revalidations.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP), by result (success, failure: the old config kept serving)",
            self.config_reloads.clone(),
        );
        registry.register(
            "bypass",
            "Responses not served from or stored in the cache, by reason",
            self.bypasses.clone(),
        );
        registry.register(
            "regenerations",
            "Regenerations (origin fetches for cached routes, one per key at a time), by result",
            self.regenerations.clone(),
        );
        registry.register(
            "origin_render_seconds",
            "Time of origin renders for cached routes, by route pattern (waiting for an origin slot included)",
            self.render_time.clone(),
        );
        registry.register(
            "client_connections",
            "Client connections open on the public listener",
            ConstGauge::new(clamp(self.client_connections())),
        );
        registry.register(
            "regenerations_in_flight",
            "Origin fetches for cached routes running now",
            ConstGauge::new(clamp(snapshot.regenerations_in_flight)),
        );
        registry.register(
            "regeneration_failures",
            "Regenerations that failed (origin error, timeout, 5xx)",
            ConstCounter::new(snapshot.regeneration_failures),
        );
        registry.register(
            "cache_entries",
            "Pages held in memory",
            ConstGauge::new(clamp(snapshot.cache_entries)),
        );
        registry.register(
            "cache_bytes",
            "Bytes held in memory (bodies, headers, keys)",
            ConstGauge::new(clamp(snapshot.cache_bytes)),
        );
        registry.register(
            "cache_max_bytes",
            "The bound on cache_bytes (cache.max_size)",
            ConstGauge::new(clamp(snapshot.cache_max_bytes)),
        );
        registry.register(
            "cache_evictions",
            "Pages evicted to stay under cache.max_size",
            ConstCounter::new(snapshot.cache_evictions),
        );
        if let Some(up) = snapshot.redis_up {
            registry.register(
                "redis_up",
                "Whether the shared Redis tier works (1) or the instance runs without it (0)",
                ConstGauge::new(i64::from(up)),
            );
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One counter per label value, created up front so that recording never touches the family's lock.
fn counters_for<L, const N: usize>(
    family: &Family<L, Counter>,
    values: &[&'static str; N],
    label: impl Fn(&'static str) -> L,
) -> [Counter; N]
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + fmt::Debug + Send + Sync + 'static,
{
    values.map(|value| family.get_or_create_owned(&label(value)))
}

#[cfg(test)]
mod tests;
