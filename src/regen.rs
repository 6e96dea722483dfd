//! Regeneration: single-flight origin fetches per key, background refresh of stale pages, and the
//! keep-last-good / retry-after policy.
//!
//! moka's `get_with` is not ISR single-flight (it merges only misses and always stores the result), so this
//! module owns it. One map of in-flight keys serves misses, stale refreshes and on-demand regenerations alike.
//! Every flight runs in its own task, so a client that disconnects never cancels a fetch others wait on, and the
//! origin timeout bounds every flight, so a hung origin can never pin a key.
//!
//! With a shared tier (Redis), a flight that would fetch first takes the page's fleet-wide lock ([`fleet`]), so
//! one instance of many renders it and the others pick the page up from Redis.
//!
//! # Concurrent calls on the same key
//! At most one flight per key runs at a time (per instance; across instances with a shared tier). Callers that find one in flight wait for its outcome
//! ([`RegenOutcome`]); only a stored page is shared with them. An uncacheable response (a `Set-Cookie`, say)
//! goes to the caller that started the flight only, and every other waiter fetches for itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use http::header::HeaderName;
use tokio::sync::{oneshot, watch};

pub use http_flight::{HttpFetch, MAX_VARY_VARIANTS};

use crate::cache::{Cache, CacheKey, Entry, Freshness};
use crate::cacheability::{BypassReason, StorePolicy};
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::{OriginClient, OriginError, OriginPage, Oversized};

mod fetch;
mod fleet;
pub mod history;
mod http_flight;

use fetch::fetch_and_store;
use history::History;
pub use history::{FlightInfo, FlightKind, RegenRecord, RegenResult};

/// Failure records kept before old ones are pruned; bounds memory when many keys fail and are never retried.
const MAX_FAILURE_RECORDS: usize = 10_000;

/// What a flight produced, as every waiter sees it.
#[derive(Debug, Clone)]
pub enum RegenOutcome {
    /// A page was stored (or a fresh one was already there).
    Stored(Arc<Entry>),
    /// The origin answered with something not to be shared; waiters fetch for themselves.
    NotStored(BypassReason),
    /// The fetch failed; the last good page (if any) is untouched.
    Failed(Arc<OriginError>),
    /// The flight ended without an outcome (its task panicked or the runtime is shutting down).
    GaveUp,
}

/// What a request that needs a page right now gets back.
#[derive(Debug)]
pub enum Fetch {
    /// A stored page, from this request's fetch or a shared one.
    Stored(Arc<Entry>),
    /// An uncacheable response, for this request only.
    Passed(OriginPage, BypassReason),
    /// A response too large to store, streaming.
    Oversized(Oversized),
    /// No page could be had.
    Failed(Arc<OriginError>),
    /// The shared flight vanished without an outcome.
    GaveUp,
}

/// Runs and deduplicates origin fetches for cached routes. Cheap to clone.
#[derive(Clone)]
pub struct Regenerator {
    inner: Arc<Inner>,
}

/// What a regenerator takes from the config: a reload ([`Regenerator::reconfigured`]) replaces all of it.
pub struct RegenSettings {
    /// Where pages are fetched.
    pub origin: OriginClient,
    /// The origin's response header naming a page's tags (`revalidate.tags_header`).
    pub tags_header: HeaderName,
    /// How long a failed regeneration holds off the next attempt (`cache.retry_after`).
    pub retry_after: std::time::Duration,
    /// Store gzip and brotli forms of compressible pages (`cache.compress`).
    pub compress: bool,
}

impl RegenSettings {
    /// The settings `config` names, fetching through `origin` (built by the caller, which may keep its pool
    /// across a reload).
    pub fn from_config(config: &Config, origin: OriginClient) -> Self {
        Self {
            origin,
            tags_header: config.revalidate.tags_header.clone(),
            retry_after: config.cache.retry_after,
            compress: config.cache.compress,
        }
    }
}

struct Inner {
    settings: RegenSettings,
    cache: Cache,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// Kept across config reloads ([`Regenerator::reconfigured`]).
    flights: Arc<Flights>,
}

/// What a regenerator knows beyond its settings: flights running, failures, known paths, recent outcomes. A
/// config reload keeps it, so single-flight and `fallback = false` paths carry over to the new config.
#[derive(Default)]
struct Flights {
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
    failures: Mutex<HashMap<CacheKey, SystemTime>>,
    /// How recent flights ended (admin listener).
    history: History,
    warned_routes: Mutex<HashSet<Arc<str>>>,
    known: Mutex<HashSet<CacheKey>>,
    /// Failed regenerations since start, for metrics.
    failed: AtomicU64,
}

/// A flight running now: where its outcome will be published, and what the admin listener shows of it.
struct Flight {
    outcome: watch::Receiver<Option<RegenOutcome>>,
    kind: FlightKind,
    started_at: SystemTime,
    started: Instant,
}

/// Whether a flight may skip the origin because a page newer than the caller's is already stored.
#[derive(Clone, Copy)]
enum Recheck {
    /// Skip if a fresh page generated after this time (or any fresh page, for `None`) is cached.
    NewerThan(Option<SystemTime>),
    /// Always fetch (on-demand regeneration).
    Never,
}

/// `mutex` locked; a poisoned lock is taken over, since every map here stays consistent between statements (a
/// panicking flight leaves at most a stale entry that its guard removes).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a key from the in-flight map when its flight ends, however it ends (including a panic).
struct InFlightGuard {
    inner: Arc<Inner>,
    key: CacheKey,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut in_flight = locked(&self.inner.flights.in_flight);
        in_flight.remove(&self.key);
    }
}

impl Regenerator {
    /// A regenerator storing into `cache`, fetching as `settings` say, recording render times and outcomes in
    /// `metrics`.
    pub fn new(settings: RegenSettings, cache: Cache, clock: Clock, metrics: Arc<Metrics>) -> Self {
        let flights = Arc::default();
        Self::assemble(Inner {
            settings,
            cache,
            clock,
            metrics,
            flights,
        })
    }

    /// A regenerator with new settings (a config reload) that shares this one's cache, clock, metrics, flights
    /// in progress, failure records and known paths: a flight started before the reload still coalesces requests
    /// made after it.
    pub fn reconfigured(&self, settings: RegenSettings) -> Self {
        let inner = &self.inner;
        Self::assemble(Inner {
            settings,
            cache: inner.cache.clone(),
            clock: inner.clock.clone(),
            metrics: inner.metrics.clone(),
            flights: inner.flights.clone(),
        })
    }

    fn assemble(inner: Inner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    /// Gets a page for a request that cannot be answered from the cache (a miss, or an expired page generated
    /// at `seen`): joins the key's flight or starts one. Waiters whose flight turned out uncacheable fetch for
    /// themselves, outside single-flight.
    pub async fn fetch(&self, key: CacheKey, policy: StorePolicy, seen: Option<SystemTime>) -> Fetch {
        self.fetch_with(key, policy, Recheck::NewerThan(seen), None).await
    }

    /// [`Regenerator::fetch`] on a `revalidate = "origin"` route: the flight carries the client's request (its
    /// headers reach the origin) and the stored response being validated, if any. A waiter gets the shared
    /// response only if it is the variant the waiter's own request selects (RFC 9111 §4.1); otherwise it fetches
    /// for itself.
    pub async fn fetch_http(&self, key: CacheKey, policy: StorePolicy, fetch: HttpFetch) -> Fetch {
        let seen = fetch.stored.as_ref().map(|entry| entry.generated_at);
        self.fetch_with(key, policy, Recheck::NewerThan(seen), Some(fetch))
            .await
    }

    async fn fetch_with(
        &self,
        key: CacheKey,
        policy: StorePolicy,
        recheck: Recheck,
        fetch: Option<HttpFetch>,
    ) -> Fetch {
        let mut key = key;
        // A waiter whose shared response turns out to be another `Vary` variant joins its own variant's flight,
        // once: requests of one variant still share one fetch.
        for rejoin in [true, false] {
            let (leader_tx, leader_rx) = oneshot::channel();
            let (shared, started) = self.join_or_start(
                key.clone(),
                policy.clone(),
                recheck,
                FlightKind::Request,
                Some(leader_tx),
                fetch.clone(),
            );
            if started {
                return leader_rx.await.unwrap_or(Fetch::GaveUp);
            }
            match wait(shared).await {
                RegenOutcome::Stored(entry) => match &fetch {
                    Some(http) if !http.is_selected(&entry) => match http.own_variant(&key, &entry) {
                        Some(own) if rejoin => key = own,
                        _ => break,
                    },
                    _ => return Fetch::Stored(entry),
                },
                RegenOutcome::Failed(err) => return Fetch::Failed(err),
                RegenOutcome::GaveUp => return Fetch::GaveUp,
                RegenOutcome::NotStored(_) => break,
            }
        }
        self.fetch_alone(&key, &policy, fetch.as_ref()).await
    }

    /// Starts a background regeneration of a stale page generated at `seen`, unless one is in flight or the key
    /// failed less than `retry_after` ago. Returns whether a flight was started.
    pub fn refresh_in_background(&self, key: CacheKey, policy: StorePolicy, seen: SystemTime) -> bool {
        self.refresh_with(key, policy, seen, None)
    }

    /// [`Regenerator::refresh_in_background`] on a `revalidate = "origin"` route (RFC 5861
    /// `stale-while-revalidate`): the flight validates `fetch.stored` with the client's request.
    pub fn refresh_http_in_background(&self, key: CacheKey, policy: StorePolicy, fetch: HttpFetch) -> bool {
        let Some(seen) = fetch.stored.as_ref().map(|entry| entry.generated_at) else {
            return false;
        };
        self.refresh_with(key, policy, seen, Some(fetch))
    }

    fn refresh_with(&self, key: CacheKey, policy: StorePolicy, seen: SystemTime, fetch: Option<HttpFetch>) -> bool {
        if self.in_backoff(&key) {
            return false;
        }
        {
            let in_flight = locked(&self.inner.flights.in_flight);
            if in_flight.contains_key(&key) {
                return false;
            }
        }
        let recheck = Recheck::NewerThan(Some(seen));
        self.join_or_start(key, policy, recheck, FlightKind::Background, None, fetch)
            .1
    }

    /// Regenerates `key` now (on demand), joining a flight already running for it, and waits for the outcome.
    /// A stored page makes the key known (see [`Regenerator::is_known`]).
    /// With a shared tier, the other instances are told to drop their older copy.
    pub async fn regenerate(&self, key: CacheKey, policy: StorePolicy) -> RegenOutcome {
        let outcome = self
            .run_to_outcome(key.clone(), policy, Recheck::Never, FlightKind::OnDemand)
            .await;
        if let RegenOutcome::Stored(entry) = &outcome {
            self.inner.cache.announce_regenerated(&key, entry);
        }
        outcome
    }

    /// Fetches `key` unless a fresh page is already cached (prerendering: never refetch what a newer source,
    /// such as disk or another instance, already has).
    pub async fn warm(&self, key: CacheKey, policy: StorePolicy) -> RegenOutcome {
        self.run_to_outcome(key, policy, Recheck::NewerThan(None), FlightKind::Prerender)
            .await
    }

    /// Starts fetching a page nobody has yet (the real page behind a `fallback = true` placeholder).
    pub fn warm_in_background(&self, key: CacheKey, policy: StorePolicy) {
        let _joined = self.join_or_start(
            key,
            policy,
            Recheck::NewerThan(None),
            FlightKind::Background,
            None,
            None,
        );
    }

    /// Records that `key` exists on the site (listed for prerendering, or regenerated on demand), for
    /// `fallback = false` routes, which serve only known paths.
    pub fn mark_known(&self, key: CacheKey) {
        locked(&self.inner.flights.known).insert(key);
    }

    /// Whether [`Regenerator::mark_known`] was called for `key`.
    pub fn is_known(&self, key: &CacheKey) -> bool {
        locked(&self.inner.flights.known).contains(key)
    }

    async fn run_to_outcome(
        &self,
        key: CacheKey,
        policy: StorePolicy,
        recheck: Recheck,
        kind: FlightKind,
    ) -> RegenOutcome {
        // The shared outcome is what counts here (a 5xx is a failure, not a page to pass on).
        let (shared, _started) = self.join_or_start(key.clone(), policy, recheck, kind, None, None);
        let outcome = wait(shared).await;
        if matches!(outcome, RegenOutcome::Stored(_)) {
            self.mark_known(key);
        }
        outcome
    }

    /// Flights running now (metrics).
    pub fn in_flight_count(&self) -> usize {
        locked(&self.inner.flights.in_flight).len()
    }

    /// Regenerations that failed since start (origin error, timeout, 5xx) (metrics).
    pub fn failure_count(&self) -> u64 {
        self.inner.flights.failed.load(Ordering::Relaxed)
    }

    /// Whether a flight for `key` is running.
    pub fn is_in_flight(&self, key: &CacheKey) -> bool {
        let in_flight = locked(&self.inner.flights.in_flight);
        in_flight.contains_key(key)
    }

    /// Joins the key's flight or starts one; returns the shared outcome's receiver and whether this call
    /// started the flight. `leader` receives the starter's own result (e.g. an uncacheable page only it may see).
    fn join_or_start(
        &self,
        key: CacheKey,
        policy: StorePolicy,
        recheck: Recheck,
        kind: FlightKind,
        leader: Option<oneshot::Sender<Fetch>>,
        fetch: Option<HttpFetch>,
    ) -> (watch::Receiver<Option<RegenOutcome>>, bool) {
        let mut in_flight = locked(&self.inner.flights.in_flight);
        if let Some(flight) = in_flight.get(&key) {
            return (flight.outcome.clone(), false);
        }
        let (tx, rx) = watch::channel(None);
        let flight = Flight {
            outcome: rx.clone(),
            kind,
            started_at: self.inner.clock.now(),
            started: Instant::now(),
        };
        in_flight.insert(key.clone(), flight);
        drop(in_flight);
        let guard = InFlightGuard {
            inner: self.inner.clone(),
            key,
        };
        tokio::spawn(fly(guard, policy, recheck, kind, tx, leader, fetch));
        (rx, true)
    }

    /// A fetch outside single-flight, for a waiter whose shared flight was not cacheable (it may carry one
    /// user's cookie, so it was not handed over).
    async fn fetch_alone(&self, key: &CacheKey, policy: &StorePolicy, fetch: Option<&HttpFetch>) -> Fetch {
        fetch_and_store(&self.inner, key, policy, fetch).await.1
    }

    fn in_backoff(&self, key: &CacheKey) -> bool {
        let failures = locked(&self.inner.flights.failures);
        let Some(failed_at) = failures.get(key) else {
            return false;
        };
        let since = self.inner.clock.now().duration_since(*failed_at).unwrap_or_default();
        since < self.inner.settings.retry_after
    }
}

async fn wait(mut rx: watch::Receiver<Option<RegenOutcome>>) -> RegenOutcome {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(RegenOutcome::GaveUp),
        Err(_) => RegenOutcome::GaveUp,
    }
}

/// One flight: fetch, decide, store, tell everyone. The guard is dropped last, after the cache insert, so a
/// request that no longer sees the flight finds the new page instead.
async fn fly(
    guard: InFlightGuard,
    policy: StorePolicy,
    recheck: Recheck,
    kind: FlightKind,
    tx: watch::Sender<Option<RegenOutcome>>,
    leader: Option<oneshot::Sender<Fetch>>,
    fetch: Option<HttpFetch>,
) {
    let inner = &guard.inner;
    let key = &guard.key;
    let started = inner.clock.now();
    let timer = Instant::now();
    let (shared, own, source) = match already_newer(inner, key, recheck).await {
        Some(entry) => (
            RegenOutcome::Stored(entry.clone()),
            Fetch::Stored(entry),
            RegenResult::AlreadyFresh,
        ),
        None => match fleet::take_turn(inner, key, recheck, started).await {
            fleet::Turn::Shared(entry) => (
                RegenOutcome::Stored(entry.clone()),
                Fetch::Stored(entry),
                RegenResult::FromFleet,
            ),
            fleet::Turn::Render(lock) => {
                let (shared, own) = fetch_and_store(inner, key, &policy, fetch.as_ref()).await;
                // Released after the page's write to the shared tier was queued, so it lands first.
                drop(lock);
                (shared, own, RegenResult::Stored)
            }
        },
    };
    let result = match &shared {
        RegenOutcome::Stored(_) => source,
        RegenOutcome::NotStored(reason) => RegenResult::NotStored(*reason),
        RegenOutcome::Failed(err) => RegenResult::Failed(err.clone()),
        RegenOutcome::GaveUp => RegenResult::GaveUp,
    };
    inner.metrics.record_regeneration(result.as_str());
    inner.flights.history.record(RegenRecord {
        key: key.clone(),
        kind,
        started_at: started,
        duration: timer.elapsed(),
        result,
    });
    tx.send_replace(Some(shared));
    if let Some(leader) = leader {
        let _ = leader.send(own);
    }
    drop(guard);
}

async fn already_newer(inner: &Inner, key: &CacheKey, recheck: Recheck) -> Option<Arc<Entry>> {
    let Recheck::NewerThan(seen) = recheck else {
        return None;
    };
    let current = inner.cache.get(key).await?;
    let newer = seen.is_none_or(|seen| current.generated_at > seen);
    (newer && current.freshness(inner.clock.now()) == Freshness::Fresh).then_some(current)
}
