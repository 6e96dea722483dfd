//! One origin fetch of a flight, from request to stored page: fetching, building the entry, compressing it,
//! storing it, and the failure records that `cache.retry_after` reads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Fetch, HttpFetch, Inner, MAX_FAILURE_RECORDS, RegenOutcome, http_flight, locked};
use crate::cache::{CacheKey, Entry};
use crate::cacheability::{BypassReason, Revalidate, StorePolicy};
use crate::compression::{self, Compressed};
use crate::origin::{FetchRequest, Fetched, OriginError, Oversized};

pub(super) async fn fetch_and_store(
    inner: &Inner,
    key: &CacheKey,
    policy: &StorePolicy,
    fetch: Option<&HttpFetch>,
) -> (RegenOutcome, Fetch) {
    if let Some(fetch) = fetch {
        return http_flight::fetch_and_store(inner, key, policy, fetch).await;
    }
    if policy.revalidate == Revalidate::Origin {
        // On-demand regeneration, prerendering, placeholders: no client request to carry.
        return http_flight::fetch_and_store(inner, key, policy, &HttpFetch::unconditional()).await;
    }
    // A page's age counts from when it was requested (RFC 9111 §4.2.3), which also orders racing writers.
    let requested_at = inner.clock.now();
    match fetch_from_origin(inner, key, policy, &FetchRequest::default()).await {
        Ok(Fetched::Complete(page)) if page.status.is_server_error() => {
            record_failure(inner, key);
            tracing::warn!(key = %key, status = page.status.as_u16(), "origin answered an error; keeping the last good page");
            let err = Arc::new(OriginError::Status(page.status));
            let reason = BypassReason::Status(page.status);
            (RegenOutcome::Failed(err), Fetch::Passed(page, reason))
        }
        Ok(Fetched::Complete(page)) => {
            clear_failure(inner, key);
            match policy.decide(page.status, &page.headers) {
                Ok(lifetime) => {
                    let entry = Entry::from_origin(
                        page.status,
                        page.headers,
                        page.body,
                        requested_at,
                        lifetime,
                        &inner.settings.tags_header,
                    );
                    let entry = store(inner, key, entry).await;
                    (RegenOutcome::Stored(entry.clone()), Fetch::Stored(entry))
                }
                Err(reason) => {
                    warn_bypass_once(inner, policy, reason);
                    tracing::debug!(key = %key, reason = %reason, "origin response not cacheable");
                    (RegenOutcome::NotStored(reason), Fetch::Passed(page, reason))
                }
            }
        }
        Ok(Fetched::Oversized(oversized)) => too_large(inner, key, oversized),
        Err(err) => failed(inner, key, err),
    }
}

/// A response larger than `max_entry_size`: streamed to the requesting client, never stored.
pub(super) fn too_large(inner: &Inner, key: &CacheKey, oversized: Oversized) -> (RegenOutcome, Fetch) {
    clear_failure(inner, key);
    tracing::debug!(key = %key, "origin response larger than max_entry_size; streamed, not stored");
    (
        RegenOutcome::NotStored(BypassReason::TooLarge),
        Fetch::Oversized(oversized),
    )
}

/// An origin fetch that failed: recorded for `retry_after`; whatever is stored stays.
pub(super) fn failed(inner: &Inner, key: &CacheKey, err: OriginError) -> (RegenOutcome, Fetch) {
    record_failure(inner, key);
    tracing::warn!(key = %key, error = %err, "origin fetch failed; keeping the last good page");
    let err = Arc::new(err);
    (RegenOutcome::Failed(err.clone()), Fetch::Failed(err))
}

/// Compresses `entry` and stores it under `key`; returns what is stored now (a newer page stored meanwhile wins).
pub(super) async fn store(inner: &Inner, key: &CacheKey, entry: Entry) -> Arc<Entry> {
    let entry = Arc::new(precompress(entry, inner.settings.compress).await);
    if inner.cache.insert(key.clone(), entry.clone()).await {
        tracing::debug!(key = %key, bytes = entry.body.len(), "stored");
        entry
    } else {
        tracing::debug!(key = %key, "a newer page was stored meanwhile; keeping it");
        inner.cache.get(key).await.unwrap_or(entry)
    }
}

/// Fetches `key` from the origin, recording the render time under the route (not for a fetch shed for lack of an
/// origin slot: it never reached the origin).
pub(super) async fn fetch_from_origin(
    inner: &Inner,
    key: &CacheKey,
    policy: &StorePolicy,
    request: &FetchRequest,
) -> Result<Fetched, OriginError> {
    let timer = Instant::now();
    let fetched = inner.settings.origin.fetch(key, request).await;
    if !matches!(fetched, Err(OriginError::Busy(_))) {
        inner.metrics.record_render(&policy.route, timer.elapsed());
    }
    fetched
}

/// Adds gzip and brotli forms to a compressible entry, once per generation, so that no request ever compresses.
/// The encoders run on the blocking pool: tens of milliseconds of CPU for a large page would stall a runtime
/// worker and every connection on it. Small bodies skip the thread hop (only `Vary` is added).
pub(super) async fn precompress(entry: Entry, enabled: bool) -> Entry {
    if !enabled || !entry.is_compressible() {
        return entry;
    }
    if !compression::is_worth_compressing(entry.body.len()) {
        return entry.with_encodings(Compressed::default());
    }
    match compress_bounded(entry.body.clone()).await {
        Some(compressed) => entry.with_encodings(compressed),
        None => {
            tracing::error!("compression task failed; storing the page uncompressed");
            entry
        }
    }
}

/// [`compression::compress`] on the blocking pool, at most one per core at a time: compression is CPU-bound,
/// so running more at once finishes none sooner, and each one in flight holds its encoders' windows (several
/// MiB for a large page): unbounded, a burst of misses would multiply the process's peak memory. `None` if the
/// task failed.
pub(super) async fn compress_bounded(body: bytes::Bytes) -> Option<Compressed> {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| tokio::sync::Semaphore::new(crate::config::available_cores()));
    let _permit = permits.acquire().await.ok()?;
    tokio::task::spawn_blocking(move || compression::compress(&body))
        .await
        .ok()
}

/// A route configured with `revalidate` whose pages the origin keeps marking uncacheable never caches anything;
/// say so once per route, with the option that changes it, instead of leaving the operator with BYPASS forever.
pub(super) fn warn_bypass_once(inner: &Inner, policy: &StorePolicy, reason: BypassReason) {
    let from_origin_headers = matches!(
        reason,
        BypassReason::Private | BypassReason::NoStore | BypassReason::NoCache | BypassReason::MaxAgeZero
    );
    if !from_origin_headers || policy.revalidate == Revalidate::Origin {
        return;
    }
    let mut warned = locked(&inner.flights.warned_routes);
    if warned.insert(policy.route.clone()) {
        tracing::warn!(
            route = %policy.route,
            reason = %reason,
            "origin Cache-Control keeps this route's pages out of the cache; set `origin_cache_control = \"ignore\"` on the route to let its revalidate rule win"
        );
    }
}

pub(super) fn record_failure(inner: &Inner, key: &CacheKey) {
    inner.flights.failed.fetch_add(1, Ordering::Relaxed);
    let now = inner.clock.now();
    let mut failures = locked(&inner.flights.failures);
    if failures.len() >= MAX_FAILURE_RECORDS {
        let retry_after = inner.settings.retry_after;
        failures.retain(|_, at| now.duration_since(*at).unwrap_or_default() < retry_after);
    }
    failures.insert(key.clone(), now);
}

pub(super) fn clear_failure(inner: &Inner, key: &CacheKey) {
    let mut failures = locked(&inner.flights.failures);
    failures.remove(key);
}
