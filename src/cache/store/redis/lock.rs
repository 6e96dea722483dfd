//! Fleet-wide regeneration locks: `SET NX PX lock_ttl` with a token only the holder knows, released by a
//! compare-and-delete script after the page's write, or left to expire if the holder dies.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::RedisStore;
use super::writer::Job;
use crate::cache::CacheKey;

/// What one look at a page's lock and generation found (see [`RedisStore::probe`]).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// When the page stored in Redis was generated, if one is stored.
    pub generated_at: Option<SystemTime>,
    /// Whether some instance holds the page's regeneration lock.
    pub locked: bool,
}

/// The outcome of [`RedisStore::try_lock`].
#[derive(Debug)]
pub enum LockAttempt {
    /// This instance may regenerate the page; the lock is released when the guard drops.
    Acquired(FleetLockGuard),
    /// Another instance is regenerating it.
    Held,
    /// Redis is down or slow: regenerate without the lock (a duplicate render beats a stuck page).
    Unavailable,
}

/// Holds a page's fleet-wide regeneration lock; dropping it releases the lock (after the page's queued write,
/// so whoever sees the lock gone finds the new page in Redis). A crashed holder's lock expires after `lock_ttl`.
pub struct FleetLockGuard {
    jobs: mpsc::Sender<Job>,
    lock_key: String,
    token: String,
}

impl fmt::Debug for FleetLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLockGuard")
            .field("lock_key", &self.lock_key)
            .finish()
    }
}

impl Drop for FleetLockGuard {
    fn drop(&mut self) {
        let release = Job::Release {
            lock_key: std::mem::take(&mut self.lock_key),
            token: std::mem::take(&mut self.token),
        };
        // A full queue leaves the lock to expire on its own.
        let _ = self.jobs.try_send(release);
    }
}

impl RedisStore {
    /// How long a regeneration lock lives if its holder never releases it.
    pub fn lock_ttl(&self) -> Duration {
        self.shared.lock_ttl
    }

    /// Tries to take `key`'s fleet-wide regeneration lock (`SET NX PX` with a token only this holder knows).
    pub async fn try_lock(&self, key: &CacheKey) -> LockAttempt {
        let shared = &self.shared;
        if !shared.is_up() {
            return LockAttempt::Unavailable;
        }
        let lock_key = shared.keys.lock(key);
        let token = shared.next_token();
        let ttl_ms = u64::try_from(shared.lock_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = shared.conn.clone();
        let mut set = redis::cmd("SET");
        let set = set
            .arg(&lock_key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<Option<String>>(&mut conn);
        match shared.run(shared.timeout, set).await {
            Ok(Some(_)) => LockAttempt::Acquired(FleetLockGuard {
                jobs: self.jobs.clone(),
                lock_key,
                token,
            }),
            Ok(None) => LockAttempt::Held,
            Err(_) => LockAttempt::Unavailable,
        }
    }

    /// Looks at `key`'s stored generation and lock in one round trip, without reading the page; `None` when
    /// Redis is unavailable.
    pub async fn probe(&self, key: &CacheKey) -> Option<Probe> {
        let shared = &self.shared;
        if !shared.is_up() {
            return None;
        }
        let mut conn = shared.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(shared.keys.page(key))
            .arg("g")
            .cmd("EXISTS")
            .arg(shared.keys.lock(key));
        let (generated_ms, locked): (Option<u64>, bool) =
            shared.run(shared.timeout, pipe.query_async(&mut conn)).await.ok()?;
        Some(Probe {
            generated_at: generated_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            locked,
        })
    }
}
