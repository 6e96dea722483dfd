//! The request flow, top to bottom: match the route, look up the page, answer HIT / STALE / MISS / BYPASS.
//!
//! ```text
//! request ─ normalise path ─ route? ─ no / cache=false / not GET-HEAD / Authorization ──► pass through (BYPASS)
//!                                └─ key ─ cache ─ fresh ──────────────► HIT
//!                                              ├─ stale ──────────────► STALE + one background regeneration
//!                                              ├─ expired ─┐
//!                                              └─ missing ─┴─ single-flight fetch ─► MISS (stored) | BYPASS
//!                                                                        failed ─► last good page (STALE) | 502/504
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::AUTHORIZATION;
use http::header::HeaderName;
use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;

use crate::cache::store::redis::RedisState;
use crate::cache::{Cache, CacheKey, Entry, Freshness};
use crate::cacheability::{BypassReason, Revalidate, StorePolicy};
use crate::clock::Clock;
use crate::config::{Config, PrerenderConfig};
use crate::metrics::{Metrics, PassThrough, RevalidationKind, Snapshot};
use crate::origin::{OriginClient, OriginPage, Oversized};
use crate::prerender::{PrerenderProgress, Prerenderer};
use crate::regen::{Fetch, RegenOutcome, RegenSettings, Regenerator};
use crate::reload::ConfigGeneration;
use crate::response::{
    Body, CacheStatus, ProxyError, RequestFacts, X_ISR_CACHE, entry_response, forwarded_response, oversized_response,
    passed_response,
};
use crate::revalidate::{PRERENDER_REVALIDATE_HEADER, Revalidator};
use crate::route::{MatchedRoute, RouteRule, RouteTable, normalize_host, normalize_path};

mod fallback;
mod origin_mode;
mod tiers;

/// Tracing target of the per-request debug line: `RUST_LOG=isr_proxy::request=debug` shows only those lines
/// (`isr_proxy=debug` shows them with everything else).
pub const REQUEST_LOG_TARGET: &str = "isr_proxy::request";

/// How long startup prerendering waits for Redis: enough to connect on a healthy network, short enough that a
/// Redis outage delays a deployment only a little.
const REDIS_STARTUP_WAIT: Duration = Duration::from_secs(2);

/// What a reloaded proxy takes over from the one before it: cache, clock, metrics, origin client, regenerator
/// and the serving flag.
type SharedParts = (Cache, Clock, Arc<Metrics>, OriginClient, Regenerator, Arc<AtomicBool>);

/// The proxy: everything a request needs, shared by all connections.
pub struct Proxy {
    routes: RouteTable,
    prerenderer: Arc<Prerenderer>,
    not_found_page: Option<CacheKey>,
    crawlers: Vec<String>,
    revalidator: Revalidator,
    cache: Cache,
    regen: Regenerator,
    origin: OriginClient,
    clock: Clock,
    tags_header: HeaderName,
    metrics: Arc<Metrics>,
    /// Which config reload built this proxy.
    generation: ConfigGeneration,
    /// Whether the public listener accepts connections (set by the server, kept across reloads).
    serving: Arc<AtomicBool>,
}

impl Proxy {
    /// Builds the proxy for `config`, reading time from `clock`.
    pub fn new(config: &Config, clock: Clock) -> Arc<Self> {
        let cache = tiers::with_redis_tier(tiers::with_disk_tier(Cache::new(config.cache.max_size), config), config);
        let cached_routes = config.routes.rules().iter().filter(|rule| rule.cache);
        let metrics = Arc::new(Metrics::with_routes(cached_routes.map(|rule| rule.pattern.as_str())));
        let origin = OriginClient::new(&config.origin, config.cache.max_entry_size, metrics.clone());
        let regen = Regenerator::new(
            RegenSettings::from_config(config, origin.clone()),
            cache.clone(),
            clock.clone(),
            metrics.clone(),
        );
        Self::assemble(
            config,
            config.prerender.clone(),
            (cache, clock, metrics, origin, regen, Arc::default()),
            ConfigGeneration::default(),
        )
    }

    /// The proxy for a reloaded `config` (generation `generation`). It keeps this one's cache (memory, disk
    /// and Redis, connections included), clock, metrics and flights in progress, and, with `keep_origin`, its
    /// pooled origin connections. Prerendering of the new list runs in the background: a reload never makes the
    /// instance unready.
    pub fn reconfigured(&self, config: &Config, generation: ConfigGeneration, keep_origin: bool) -> Arc<Self> {
        let origin = if keep_origin {
            self.origin.clone()
        } else {
            OriginClient::new(&config.origin, config.cache.max_entry_size, self.metrics.clone())
        };
        let regen = self
            .regen
            .reconfigured(RegenSettings::from_config(config, origin.clone()));
        let prerender = PrerenderConfig {
            wait: false,
            ..config.prerender.clone()
        };
        let shared = (
            self.cache.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            origin,
            regen,
            self.serving.clone(),
        );
        Self::assemble(config, prerender, shared, generation)
    }

    /// Which config reload built this proxy (0: the config read at startup), for logs.
    pub fn generation(&self) -> u64 {
        self.generation.number
    }

    /// The reload that built this proxy and the settings it left for a restart, for `/health`.
    pub fn config_generation(&self) -> &ConfigGeneration {
        &self.generation
    }

    fn assemble(
        config: &Config,
        prerender: PrerenderConfig,
        (cache, clock, metrics, origin, regen, serving): SharedParts,
        generation: ConfigGeneration,
    ) -> Arc<Self> {
        let token = config.revalidate.token.clone();
        if token.is_none() {
            tracing::warn!(
                env = %config.revalidate.token_env,
                "revalidation token not set: on-demand revalidation is disabled"
            );
        }
        let revalidator = Revalidator::new(
            config.revalidate.path.clone(),
            token,
            config.routes.clone(),
            cache.clone(),
            regen.clone(),
            clock.clone(),
            metrics.clone(),
        );
        let prerenderer = Prerenderer::new(prerender, config.routes.clone(), regen.clone(), origin.clone());
        Arc::new(Self {
            routes: config.routes.clone(),
            prerenderer: Arc::new(prerenderer),
            not_found_page: config
                .origin
                .not_found_page
                .as_deref()
                .map(|p| CacheKey::new(p, None, Vec::new())),
            crawlers: config
                .fallback
                .crawlers
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            revalidator,
            cache,
            regen,
            origin,
            clock,
            tags_header: config.revalidate.tags_header.clone(),
            metrics,
            generation,
            serving,
        })
    }

    /// The page store (for metrics and tests).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Whether the shared tier (Redis) works right now; `None` when none is configured (for health and metrics).
    pub fn redis_state(&self) -> Option<RedisState> {
        self.cache.shared_tier().map(|redis| redis.state())
    }

    /// Regeneration: flights running now and how recent ones ended (admin listener).
    pub fn regenerator(&self) -> &Regenerator {
        &self.regen
    }

    /// On-demand revalidation, for the admin listener's `POST /revalidate` (the dashboard's actions), which
    /// goes through the same endpoint code as the public one.
    pub fn revalidator(&self) -> &Revalidator {
        &self.revalidator
    }

    /// The route table, to key and explain a path as a request would (admin listener).
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The proxy's clock: the "now" freshness is judged by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What this proxy has recorded (requests, origin fetches, revalidations).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The figures other modules own (cache size, evictions, regenerations), read now for a scrape.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            cache_entries: self.cache.entry_count(),
            cache_bytes: self.cache.weighted_size(),
            cache_max_bytes: self.cache.max_bytes(),
            cache_evictions: self.cache.eviction_count(),
            regenerations_in_flight: u64::try_from(self.regen.in_flight_count()).unwrap_or(u64::MAX),
            regeneration_failures: self.regen.failure_count(),
            redis_up: self.redis_state().map(|state| state == RedisState::Up),
        }
    }

    /// How far startup prerendering has got.
    pub fn prerender_progress(&self) -> PrerenderProgress {
        self.prerenderer.progress()
    }

    /// Whether the proxy serves requests: its public listener accepts connections (not before startup
    /// prerendering with `prerender.wait`, not once a shutdown began), for `/health`.
    pub fn is_ready(&self) -> bool {
        self.serving.load(Ordering::Acquire) && (!self.prerenderer.waits() || self.prerenderer.progress().finished)
    }

    /// Records whether the public listener accepts connections (the server calls this).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// Prerenders the listed paths: before returning when `prerender.wait` is set (so the server accepts only
    /// afterwards), else in the background.
    /// With Redis configured, prerendering first waits (briefly) for it, so pages other instances already
    /// rendered are taken from Redis instead of the origin.
    pub async fn start(&self) {
        if !self.prerenderer.has_work() {
            return;
        }
        if let Some(redis) = self.cache.shared_tier()
            && redis.wait_until_up(REDIS_STARTUP_WAIT).await == RedisState::Down
        {
            tracing::warn!("redis not reachable yet; prerendering from the origin");
        }
        let prerenderer = self.prerenderer.clone();
        if prerenderer.waits() {
            prerenderer.run().await;
        } else {
            tokio::spawn(prerenderer.run());
        }
    }

    /// Finishes background work before exit: queued disk writes are flushed.
    pub async fn stop(&self) {
        self.cache.flush().await;
    }

    /// Answers one request. Never fails: errors become 4xx/5xx responses. Every request is counted here (by its
    /// `x-isr-cache` value, with the time to the response head) and, at debug level on [`REQUEST_LOG_TARGET`],
    /// logged with its route, key, cache decision and time.
    pub async fn handle(&self, request: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let log = tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::DEBUG);
        // Cheap clones (a standard method is inline; a URI is reference-counted), and only when logging.
        let seen = log.then(|| (request.method().clone(), request.uri().clone()));
        let mut matched = None;
        // The route and key are kept for the log line only: a hit does not pay for the clones otherwise.
        let response = self.respond(request, client, log.then_some(&mut matched)).await;
        let elapsed = started.elapsed();
        let cache = response.headers().get(X_ISR_CACHE);
        self.metrics.record_request(cache, elapsed);
        if let Some((method, uri)) = seen {
            let (route, key) = match &matched {
                Some(MatchedRoute { rule, key }) => (Some(rule.pattern.as_str()), Some(key)),
                None => (None, None),
            };
            tracing::debug!(
                target: REQUEST_LOG_TARGET,
                method = %method,
                uri = %uri,
                route = route.unwrap_or("-"),
                key = key.map(tracing::field::display),
                cache = cache.and_then(|v| v.to_str().ok()).unwrap_or("NONE"),
                status = response.status().as_u16(),
                elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        response
    }

    /// The request flow; `matched_out`, if given, receives the route and key, when the request falls under a
    /// cached route.
    async fn respond(
        &self,
        mut request: Request<Incoming>,
        client: SocketAddr,
        matched_out: Option<&mut Option<MatchedRoute>>,
    ) -> Response<Body> {
        if self.revalidator.is_endpoint(request.uri().path()) {
            return Box::pin(self.revalidator.handle(request)).await;
        }
        // The trigger carries the secret: it is acted on here and never forwarded.
        let prerender = self.revalidator.is_prerender_trigger(request.headers());
        request.headers_mut().remove(PRERENDER_REVALIDATE_HEADER);
        // The URI is reference-counted: holding a copy lets the path stay borrowed (no allocation unless
        // normalising changed it) while the request itself moves on.
        let uri = request.uri().clone();
        let path = match normalize_path(uri.path()) {
            Ok(path) => path,
            Err(err) => return ProxyError::BadPath(err).into_response(),
        };
        let cacheable_request = matches!(*request.method(), Method::GET | Method::HEAD)
            // RFC 9111 §3.5: a shared cache must not reuse a response to an authenticated request.
            && !request.headers().contains_key(AUTHORIZATION);
        let matched = cacheable_request
            .then(|| {
                let variant = CacheKey::variant_of(request.headers());
                // Only a table with host-specific routes looks at the host: a single site pays nothing.
                let host = if self.routes.has_sites() {
                    request_host(&request)
                } else {
                    None
                };
                self.routes
                    .cached_route_at(host.as_deref(), &path, request.uri().query(), variant)
            })
            .flatten();
        if let (Some(out), Some(matched)) = (matched_out, &matched) {
            *out = Some(matched.clone());
        }
        match matched {
            Some(MatchedRoute { rule, key }) => {
                let origin_mode = rule.revalidate == Revalidate::Origin;
                let facts = if origin_mode {
                    RequestFacts::from_headers_http(request.headers())
                } else {
                    RequestFacts::from_headers(request.headers())
                };
                if prerender {
                    let outcome = Box::pin(self.regen.regenerate(key.clone(), rule.store_policy())).await;
                    let stored = matches!(outcome, RegenOutcome::Stored(_));
                    let label = if stored { "regenerated" } else { "failed" };
                    self.metrics.record_revalidation(RevalidationKind::Path, label);
                    if let RegenOutcome::Stored(entry) = outcome {
                        return entry_response(&entry, CacheStatus::Revalidated, Duration::ZERO, &facts);
                    }
                }
                if origin_mode {
                    return Box::pin(self.serve_origin_mode(request.headers(), key, &rule, &facts)).await;
                }
                self.serve_cached(key, &rule, request.headers(), &facts).await
            }
            None => {
                let reason = self.pass_through_reason(&request, &path, cacheable_request);
                self.metrics.record_bypass(reason.as_str());
                Box::pin(async {
                    let unsafe_target = self.unsafe_target(&request, &path);
                    let response = self.pass_through(request, &path, client).await;
                    if let Some(target) = unsafe_target {
                        self.invalidate_after(target, &response).await;
                    }
                    response
                })
                .await
            }
        }
    }

    /// An uncacheable origin response, for this request only; counted by reason.
    fn passed(&self, page: OriginPage, reason: BypassReason) -> Response<Body> {
        self.metrics.record_bypass(reason.as_str());
        passed_response(page, reason, &self.tags_header)
    }

    /// A response too large to store, streamed to this request only; counted as `too-large`.
    fn oversized(&self, oversized: Oversized) -> Response<Body> {
        self.metrics.record_bypass(BypassReason::TooLarge.as_str());
        oversized_response(oversized, &self.tags_header)
    }

    /// Why a request is passed through without a lookup (for `isr_bypass_total`); costs a second route match,
    /// on pass-through requests only.
    fn pass_through_reason(&self, request: &Request<Incoming>, path: &str, cacheable_request: bool) -> PassThrough {
        if !cacheable_request {
            if matches!(*request.method(), Method::GET | Method::HEAD) {
                return PassThrough::Authorization;
            }
            return PassThrough::Method;
        }
        match self.routes.match_path(path) {
            Some(_) => PassThrough::RouteNotCached,
            None => PassThrough::NoRoute,
        }
    }

    /// The store policy is built only when the origin is involved, never on a HIT.
    async fn serve_cached(
        &self,
        key: CacheKey,
        rule: &RouteRule,
        headers: &HeaderMap,
        facts: &RequestFacts,
    ) -> Response<Body> {
        let now = self.clock.now();
        let Some(entry) = self.cache.get(&key).await else {
            // Boxed, like every branch that waits for the origin: the hit path's future stays small, so hyper
            // moves a few hundred bytes per request instead of kilobytes.
            return Box::pin(async {
                match self.fallback(&key, rule, headers, facts).await {
                    Some(response) => response,
                    None => self.fetch_page(key, rule.store_policy(), None, facts).await,
                }
            })
            .await;
        };
        match entry.freshness(now) {
            Freshness::Fresh => entry_response(&entry, CacheStatus::Hit, entry.age(now), facts),
            Freshness::Stale => {
                let started = self
                    .regen
                    .refresh_in_background(key.clone(), rule.store_policy(), entry.generated_at);
                tracing::debug!(key = %key, regenerating = started, "stale");
                entry_response(&entry, CacheStatus::Stale, entry.age(now), facts)
            }
            Freshness::Expired => Box::pin(self.fetch_page(key, rule.store_policy(), Some(entry), facts)).await,
        }
    }

    /// A page that must come from the origin now; `last_good` is served instead if the origin fails.
    async fn fetch_page(
        &self,
        key: CacheKey,
        policy: StorePolicy,
        last_good: Option<Arc<Entry>>,
        facts: &RequestFacts,
    ) -> Response<Body> {
        let seen = last_good.as_ref().map(|entry| entry.generated_at);
        let fetched = self.regen.fetch(key, policy, seen).await;
        let now = self.clock.now();
        match (fetched, last_good) {
            (Fetch::Stored(entry), _) => {
                let status = if seen.is_some_and(|seen| seen >= entry.generated_at) {
                    CacheStatus::Stale
                } else {
                    CacheStatus::Miss
                };
                entry_response(&entry, status, entry.age(now), facts)
            }
            (Fetch::Passed(page, _), Some(good)) if page.status.is_server_error() => {
                entry_response(&good, CacheStatus::Stale, good.age(now), facts)
            }
            (Fetch::Failed(_) | Fetch::GaveUp, Some(good)) => {
                tracing::warn!(
                    age_s = good.age(now).as_secs(),
                    "origin failed on an expired page; serving the last good page"
                );
                entry_response(&good, CacheStatus::Stale, good.age(now), facts)
            }
            (Fetch::Passed(page, reason), _) => self.passed(page, reason),
            (Fetch::Oversized(oversized), _) => self.oversized(oversized),
            (Fetch::Failed(err), None) => ProxyError::Origin(err).into_response(),
            (Fetch::GaveUp, None) => ProxyError::GaveUp.into_response(),
        }
    }

    /// Streams the request to the origin at `path`, the normalised path it was routed on.
    async fn pass_through(&self, request: Request<Incoming>, path: &str, client: SocketAddr) -> Response<Body> {
        match self.origin.forward(request, path, client).await {
            Ok(response) => forwarded_response(response, &self.tags_header),
            Err(err) => {
                tracing::warn!(error = %err, "pass-through failed");
                ProxyError::Origin(Arc::new(err)).into_response()
            }
        }
    }
}

/// The request's host, normalised ([`normalize_host`]): the URI's authority (HTTP/2, absolute-form) or `Host`.
fn request_host(request: &Request<Incoming>) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match request.uri().authority() {
        Some(authority) => authority.as_str(),
        None => request.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    normalize_host(raw)
}
