//! The shared tier: one Redis holds every instance's pages, their tag index and the fleet-wide regeneration
//! locks, and carries on-demand invalidations to every instance.
//!
//! Keys (all under `key_prefix`, default `isr:`):
//! ```text
//! page:<xxh3-128 of the cache key>   hash { g: generated-at ms, s: marked stale 0|1, e: codec bytes }, TTL = revalidate + expire
//! tag:<tag>                          set of page keys carrying the tag (members are re-checked on use)
//! lock:<xxh3-128 of the cache key>   regeneration lock: a random token, SET NX PX lock_ttl
//! epoch                              counter bumped by every invalidation (see "Reconnecting" below)
//! invalidations                      pub/sub channel: "<epoch> <json>" per invalidation
//! ```
//! Pages use the shared [`codec`], so an entry reads the same from disk and from Redis. A write is a Lua script
//! that compares generation times, so a slow instance can never roll a page back to older content.
//!
//! Writes, lock releases and invalidations go through one ordered queue (a single writer task): a lock is
//! released, and an invalidation announced, only after the page it concerns is in Redis, so an instance that
//! sees either finds the new page. Reads, lock attempts and probes go straight to the connection.
//!
//! # Redis down or slow
//! Every operation has a short budget (`timeout`, default 50 ms; writes at least a second). A failure marks the
//! tier down: reads miss at once, locks are skipped (the instance renders alone), writes and invalidations
//! queue up (bounded) and are replayed in order when Redis answers again. A health task pings Redis and
//! brings the tier back up by itself; the outage is logged once per interval. Nothing here ever fails a
//! request.
//!
//! # Reconnecting
//! Pub/sub messages sent while an instance was disconnected are lost to it. Every invalidation bumps the
//! `epoch` counter in the same script that publishes it; on resubscribing, an instance compares the counter
//! with the last one it saw, and if they differ it drops its memory cache ([`Invalidation::Everything`]) and
//! reads pages from Redis again. This costs one L2 read per page afterwards, never an origin render.
//!
//! The scripts touch keys they did not declare (tag members), so this tier needs a standalone Redis (or a
//! single-shard deployment), not Redis Cluster.

mod message;
mod scripts;
mod subscriber;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::store::codec;
use crate::cache::store::{ApplyInvalidation, BoxFuture, Invalidation, Store};
use crate::cache::{CacheKey, Entry};
use writer::Job;

/// Queued writes before new ones are dropped (and counted): a slow Redis must not grow memory without bound.
const QUEUE_CAPACITY: usize = 4096;
/// Least budget of one write: a large page takes longer to send than a lookup.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the revalidation endpoint waits for a purge or tag invalidation to be confirmed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// At most one "redis unavailable" log line per this interval while it stays down.
const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Whether the shared tier works right now, for health checks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    /// Commands answer and invalidations are being received.
    Up,
    /// Unreachable, slow, or not yet (re)subscribed: the instance serves from memory, disk and the origin.
    Down,
}

impl RedisState {
    /// `"up"` or `"down"`, for health output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// Where Redis is and how to use it (from `[cache.redis]`).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://…` URL; may carry a password, so it is never logged.
    pub url: String,
    /// Prefix of every key and of the channel.
    pub key_prefix: String,
    /// Lifetime of a regeneration lock whose holder died.
    pub lock_ttl: Duration,
    /// Budget of one read, lock attempt or probe.
    pub timeout: Duration,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("key_prefix", &self.key_prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why the shared tier could not be set up (a malformed URL; an unreachable Redis is not an error).
#[derive(Debug, thiserror::Error)]
#[error("cannot use redis: {0}")]
pub struct RedisError(#[from] redis::RedisError);

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

/// Redis key names under the configured prefix.
#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn page(&self, key: &CacheKey) -> String {
        format!("{}page:{:032x}", self.prefix, codec::key_hash(key))
    }

    fn lock(&self, key: &CacheKey) -> String {
        format!("{}lock:{:032x}", self.prefix, codec::key_hash(key))
    }

    fn tag(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }

    fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }
}

/// What the store and its tasks share.
struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    lock_ttl: Duration,
    /// Random per process: tells this instance's own messages apart, and makes lock tokens unique.
    instance: u64,
    tokens: AtomicU64,
    /// Whether commands answer (the health task and failed operations set it).
    up: watch::Sender<bool>,
    /// Whether the invalidation channel is subscribed.
    subscribed: AtomicBool,
    outage: Mutex<Outage>,
    dropped_writes: AtomicU64,
}

#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    last_log: Option<Instant>,
}

/// A failed Redis operation.
#[derive(Debug)]
enum Failure {
    Timeout(Duration),
    Redis(redis::RedisError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(budget) => write!(f, "no answer within {budget:?}"),
            Self::Redis(err) => write!(f, "{err}"),
        }
    }
}

impl Failure {
    /// Whether the failure says Redis is unreachable or too slow (rather than that it refused one command).
    fn is_outage(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(err) => {
                err.is_io_error() || err.is_connection_dropped() || err.is_timeout() || err.is_connection_refusal()
            }
        }
    }
}

impl Shared {
    fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    fn write_timeout(&self) -> Duration {
        self.timeout.max(MIN_WRITE_TIMEOUT)
    }

    /// Runs one command within `budget`; a failure that says Redis is unusable marks the tier down.
    async fn run<T>(&self, budget: Duration, op: impl Future<Output = redis::RedisResult<T>>) -> Result<T, Failure> {
        let failure = match tokio::time::timeout(budget, op).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => Failure::Redis(err),
            Err(_) => Failure::Timeout(budget),
        };
        if failure.is_outage() {
            self.mark_down(&failure);
        } else {
            tracing::warn!(error = %failure, "redis command failed");
        }
        Err(failure)
    }

    /// Records an outage: logged when it starts and then once per [`OUTAGE_LOG_INTERVAL`].
    fn mark_down(&self, failure: &dyn fmt::Display) {
        let was_up = self.up.send_replace(false);
        let now = Instant::now();
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        let since = *outage.since.get_or_insert(now);
        let due = outage
            .last_log
            .is_none_or(|last| now.duration_since(last) >= OUTAGE_LOG_INTERVAL);
        if was_up || due {
            outage.last_log = Some(now);
            tracing::warn!(
                error = %failure,
                down_for_s = now.duration_since(since).as_secs(),
                "redis unavailable; serving from memory, disk and the origin until it answers again"
            );
        }
    }

    fn mark_up(&self) {
        if !self.up.send_replace(true) {
            let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
            let down_for = outage.since.take().map(|since| since.elapsed()).unwrap_or_default();
            outage.last_log = None;
            tracing::info!(down_for_ms = down_for.as_millis() as u64, "redis connected");
        }
    }

    fn next_token(&self) -> String {
        format!("{:016x}-{}", self.instance, self.tokens.fetch_add(1, Ordering::Relaxed))
    }
}

/// The shared tier. Dropping it stops its tasks (the writer drains its queue first).
pub struct RedisStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    /// Dropped with the store: tells the health and subscriber tasks to stop.
    _stop: watch::Sender<()>,
}

impl RedisStore {
    /// Sets up the tier and starts its tasks (writer, health check, invalidation subscriber) on the current
    /// Tokio runtime. Connects lazily: an unreachable Redis is an outage to ride out, not an error. Invalidations
    /// from other instances are handed to `apply`.
    pub fn open(options: RedisOptions, apply: ApplyInvalidation) -> Result<Self, RedisError> {
        let client = redis::Client::open(options.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout.max(MIN_WRITE_TIMEOUT)))
            // Budgets are applied per operation, so a large write is not cut short by a lookup's budget.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(subscriber::RECONNECT_INTERVAL);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopped) = watch::channel(());
        let shared = Arc::new(Shared {
            client,
            conn,
            keys: Keys {
                prefix: options.key_prefix,
            },
            timeout: options.timeout,
            lock_ttl: options.lock_ttl,
            instance: random_u64(),
            tokens: AtomicU64::new(0),
            up: watch::Sender::new(false),
            subscribed: AtomicBool::new(false),
            outage: Mutex::default(),
            dropped_writes: AtomicU64::new(0),
        });
        tokio::spawn(writer::run(shared.clone(), queue));
        tokio::spawn(subscriber::check_health(shared.clone(), stopped.clone()));
        tokio::spawn(subscriber::listen(shared.clone(), apply, stopped));
        Ok(Self {
            shared,
            jobs,
            _stop: stop,
        })
    }

    /// Up when commands answer and invalidations are being received.
    pub fn state(&self) -> RedisState {
        if self.shared.is_up() && self.shared.subscribed.load(Ordering::Acquire) {
            RedisState::Up
        } else {
            RedisState::Down
        }
    }

    /// Waits until the tier is up, at most `bound` (startup: prerender from Redis, not from the origin).
    pub async fn wait_until_up(&self, bound: Duration) -> RedisState {
        let deadline = Instant::now() + bound;
        while self.state() == RedisState::Down && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state()
    }

    /// Writes dropped because the queue was full or the outage backlog overflowed.
    pub fn dropped_writes(&self) -> u64 {
        self.shared.dropped_writes.load(Ordering::Relaxed)
    }

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

    /// Tells every instance that `key` was regenerated on demand (after the page's queued write).
    pub fn announce_regenerated(&self, key: &CacheKey, generated_at: SystemTime) {
        self.enqueue(Job::Announce(Invalidation::Regenerated {
            key: key.clone(),
            generated_at,
        }));
    }

    /// Deletes `key` from Redis and tells every instance to drop it. Returns whether Redis had it (`None`:
    /// unknown, Redis unavailable; the purge is replayed when it answers again).
    pub async fn purge(&self, key: &CacheKey) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Purge {
            key: key.clone(),
            reply: Some(reply),
        });
        let purged = tokio::time::timeout(REPLY_TIMEOUT, answer).await.ok()?.ok()?;
        purged.map(|deleted| deleted > 0)
    }

    /// Marks stale (or purges) every page in Redis carrying `tag` and tells every instance to do the same in
    /// memory. Returns how many pages Redis had (`None`: unknown, Redis unavailable; replayed later).
    pub async fn invalidate_tag(&self, tag: &str, purge: bool) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Tag {
            tag: tag.to_owned(),
            purge,
            reply: Some(reply),
        });
        tokio::time::timeout(REPLY_TIMEOUT, answer).await.ok()?.ok()?
    }

    fn enqueue(&self, job: Job) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.jobs.try_send(job) {
            let dropped = self.shared.dropped_writes.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "redis write queue full; dropping writes (pages stay in memory)"
                );
            }
        }
    }
}

impl Store for RedisStore {
    fn load<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Option<Entry>> {
        Box::pin(async move {
            let shared = &self.shared;
            if !shared.is_up() {
                return None;
            }
            let mut conn = shared.conn.clone();
            let mut read = redis::cmd("HMGET");
            let read = read
                .arg(shared.keys.page(key))
                .arg("s")
                .arg("e")
                .query_async::<(Option<String>, Option<Vec<u8>>)>(&mut conn);
            let (stale, bytes) = shared.run(shared.timeout, read).await.ok()?;
            match codec::decode(&bytes?) {
                Ok((stored_key, entry)) if &stored_key == key => {
                    if stale.as_deref() == Some("1") {
                        entry.mark_stale();
                    }
                    Some(entry)
                }
                // A hash collision: another key's page.
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(key = %key, error = %err, "unreadable page in redis; ignoring it");
                    None
                }
            }
        })
    }

    fn save(&self, key: &CacheKey, entry: &Arc<Entry>) {
        self.enqueue(Job::Save(key.clone(), entry.clone()));
    }

    fn delete(&self, key: &CacheKey) {
        self.enqueue(Job::Delete(key.clone()));
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            let flushed = async {
                if self.jobs.send(Job::Flush(done)).await.is_ok() {
                    let _ = wait.await;
                }
            };
            // Bounded as a whole: a full queue in front of a slow Redis must not hold up shutdown.
            if tokio::time::timeout(REPLY_TIMEOUT, flushed).await.is_err() {
                tracing::warn!("redis flush timed out; some pages may not be shared");
            }
        })
    }
}

/// A random number from the standard library's randomly seeded hasher (no extra dependency for one value).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
