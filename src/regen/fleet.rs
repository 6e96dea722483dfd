//! Fleet-wide single-flight: with a shared tier (Redis), one instance of many renders a page.
//!
//! A flight that would fetch first takes the page's Redis lock. The winner checks Redis once more (the previous
//! holder may just have stored the page) and renders; its lock is released after the page's write to Redis.
//! A loser keeps its requests waiting (a miss) or its clients on the stale page (a refresh), polls Redis for
//! the winner's page, and takes it into memory instead of rendering. If the lock vanishes without a new page
//! (the winner failed, or crashed and its lock expired) a loser tries to take it. Redis being down or slow
//! never blocks a flight: it renders alone, which costs at most a duplicate render.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::store::Store;
use crate::cache::store::redis::{FleetLockGuard, LockAttempt, RedisStore};
use crate::cache::{CacheKey, Entry, Freshness};

use super::{Inner, Recheck};

/// How often a flight that lost the lock looks for the winner's page: small against a render, and one cheap
/// round trip (no body) per look.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a flight does after consulting the fleet.
pub(super) enum Turn {
    /// Render; the lock (if Redis gave one) is held until the page is stored.
    Render(Option<FleetLockGuard>),
    /// Another instance rendered the page; it is now in memory here too.
    Shared(Arc<Entry>),
}

/// Takes the fleet-wide turn for `key`: the lock, or another instance's page. `started` is when this flight
/// began (an on-demand regeneration accepts only a page rendered after it).
pub(super) async fn take_turn(inner: &Inner, key: &CacheKey, recheck: Recheck, started: SystemTime) -> Turn {
    let Some(redis) = inner.cache.shared_tier() else {
        return Turn::Render(None);
    };
    let deadline = tokio::time::Instant::now() + redis.lock_ttl();
    // The generation last read in full and found wanting, so a poll reads a page's body only once.
    let mut rejected: Option<SystemTime> = None;
    loop {
        match redis.try_lock(key).await {
            LockAttempt::Acquired(guard) => {
                // The previous holder may have stored the page since this flight last looked.
                return match newer_shared(inner, redis, key, recheck, started).await {
                    Some(entry) => Turn::Shared(entry),
                    None => Turn::Render(Some(guard)),
                };
            }
            LockAttempt::Unavailable => return Turn::Render(None),
            LockAttempt::Held => tracing::debug!(key = %key, "another instance is regenerating; waiting for its page"),
        }
        loop {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(key = %key, "regeneration lock outlived lock_ttl; rendering without it");
                return Turn::Render(None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            let Some(probe) = redis.probe(key).await else {
                return Turn::Render(None);
            };
            if let Some(at) = probe.generated_at
                && is_newer(at, recheck, started)
                && rejected != Some(at)
            {
                match newer_shared(inner, redis, key, recheck, started).await {
                    Some(entry) => return Turn::Shared(entry),
                    None => rejected = Some(at),
                }
            }
            if !probe.locked {
                break;
            }
        }
    }
}

/// Whether a page generated at `generated_at` saves this flight its render.
fn is_newer(generated_at: SystemTime, recheck: Recheck, started: SystemTime) -> bool {
    match recheck {
        Recheck::NewerThan(Some(seen)) => generated_at > seen,
        Recheck::NewerThan(None) => true,
        // On demand, only a render that began after the request reflects the change being announced.
        Recheck::Never => generated_at >= started,
    }
}

/// The page in Redis (with its compressed forms), if it is newer than this flight needs and fresh; kept in
/// memory.
async fn newer_shared(
    inner: &Inner,
    redis: &RedisStore,
    key: &CacheKey,
    recheck: Recheck,
    started: SystemTime,
) -> Option<Arc<Entry>> {
    let entry = redis.load(key).await?;
    if !is_newer(entry.generated_at, recheck, started) || entry.freshness(inner.clock.now()) != Freshness::Fresh {
        return None;
    }
    tracing::debug!(key = %key, "took the page another instance rendered");
    Some(inner.cache.keep(key, Arc::new(entry)).await)
}
