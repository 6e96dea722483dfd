//! The shared tier: one Redis holds every instance's pages, their tag index and the fleet-wide regeneration
//! locks, and carries on-demand invalidations to every instance.
//!
//! Keys (all under `key_prefix`, default `isr:`):
//! ```text
//! page:{<xxh3-128 of the cache key>}   hash { g: generated-at ms, s: marked stale 0|1, e: codec bytes }, TTL = revalidate + expire
//! lock:{<xxh3-128 of the cache key>}   regeneration lock: a random token, SET NX PX lock_ttl
//! tag:<tag>                            set of page keys carrying the tag (members are re-checked on use)
//! paths:{index}, paths:expiry:{index}  every page in path order, for prefix revalidation (see [`paths`])
//! epoch                                counter bumped by every invalidation (see "Reconnecting" below)
//! invalidations                        pub/sub channel: "<epoch> <json>" per invalidation
//! ```
//! Pages use the shared [`codec`], so an entry reads the same from disk and from Redis. A write is a Lua script
//! that compares generation times, so a slow instance can never roll a page back to older content.
//!
//! # Redis Cluster
//! Every script touches one key, or keys of one slot: a page and its lock share the hash tag `{<hash>}`, so
//! they live on one node and are read in one round trip. Work that spans slots (a page's tag sets, a tag's
//! pages, the epoch) is done one key at a time, in an order that keeps the guarantees: a page is written before
//! it joins its tag sets (a tag set may name a page that is gone, never miss one that exists for long), and an
//! invalidation is applied before it is announced. Pub/sub messages reach every node, so the subscriber
//! listens on any node that answers ([`connection`]).
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
//! Generation times come from each instance's clock, so the fleet's clocks should agree (NTP) to well under a
//! page's `revalidate`.

mod connection;
mod health;
mod lock;
mod message;
mod paths;
mod scripts;
mod subscriber;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::store::codec;
use crate::cache::store::{ApplyInvalidation, BoxFuture, Invalidation, Store};
use crate::cache::{CacheKey, Entry, PathPrefix};
use health::{Failure, Outage};
pub use lock::{FleetLockGuard, LockAttempt, Probe};
use writer::Job;

/// Queued writes before new ones are dropped (and counted): a slow Redis must not grow memory without bound.
const QUEUE_CAPACITY: usize = 4096;
/// Least budget of one write: a large page takes longer to send than a lookup.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the revalidation endpoint waits for a purge or tag invalidation to be confirmed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

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
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// `redis://…` or `rediss://…` URL; may carry a password, so it is never logged.
    pub url: String,
    /// Redis Cluster seed node URLs (`url` among them); `None` for a single Redis.
    pub cluster: Option<Vec<String>>,
    /// Certificates for `rediss://`, when the system's CAs are not the ones to trust or Redis wants a client
    /// certificate.
    pub tls: Option<RedisTls>,
    /// Prefix of every key and of the channel.
    pub key_prefix: String,
    /// Lifetime of a regeneration lock whose holder died.
    pub lock_ttl: Duration,
    /// Budget of one read, lock attempt or probe.
    pub timeout: Duration,
}

/// PEM bytes for a TLS connection to Redis.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificates trusted instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and private key.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("cluster", &self.cluster.as_ref().map(Vec::len))
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

/// Redis key names under the configured prefix.
#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    /// A page and its lock share a hash tag: one slot, one node in a cluster.
    fn page(&self, key: &CacheKey) -> String {
        self.page_hash(&format!("{:032x}", codec::key_hash(key)))
    }

    /// The page whose key hashes to `hash` (32 hex digits).
    fn page_hash(&self, hash: &str) -> String {
        format!("{}page:{{{hash}}}", self.prefix)
    }

    /// The path index ([`paths`]); it and its expiry set share a hash tag.
    fn paths(&self) -> String {
        format!("{}paths:{{index}}", self.prefix)
    }

    fn paths_expiry(&self) -> String {
        format!("{}paths:expiry:{{index}}", self.prefix)
    }

    fn lock(&self, key: &CacheKey) -> String {
        format!("{}lock:{{{:032x}}}", self.prefix, codec::key_hash(key))
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
    subscriptions: connection::Subscriptions,
    conn: connection::Connection,
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

impl Shared {
    fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    fn write_timeout(&self) -> Duration {
        self.timeout.max(MIN_WRITE_TIMEOUT)
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
        let (conn, subscriptions) = connection::open(&options)?;
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopped) = watch::channel(());
        let shared = Arc::new(Shared {
            subscriptions,
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
        tokio::spawn(health::check_health(shared.clone(), stopped.clone()));
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

    /// Marks stale (or purges) every page in Redis that `prefix` covers and tells every instance to do the same
    /// in memory. Returns how many pages Redis had (`None`: unknown, Redis unavailable; replayed later).
    pub async fn invalidate_prefix(&self, prefix: &PathPrefix, purge: bool) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Prefix {
            prefix: prefix.clone(),
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

    fn name(&self) -> &'static str {
        "redis"
    }

    fn holds<'a>(&'a self, keys: &'a [CacheKey]) -> BoxFuture<'a, Option<Vec<bool>>> {
        Box::pin(async move {
            let shared = &self.shared;
            if !shared.is_up() || keys.is_empty() {
                return None;
            }
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.exists(shared.keys.page(key));
            }
            let mut conn = shared.conn.clone();
            shared
                .run(shared.timeout, pipe.query_async::<Vec<bool>>(&mut conn))
                .await
                .ok()
        })
    }

    fn is_up(&self) -> bool {
        self.state() == RedisState::Up
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
