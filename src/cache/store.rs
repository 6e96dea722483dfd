//! Tiers below the in-memory cache (disk, Redis), behind one small trait, as pingora's `Storage`.
//!
//! A tier is consulted on an in-memory miss and written behind every stored page; it never sits on the hit
//! path. Tiers use only `cache::entry` and `cache::key` (leaves); `cache.rs` composes them.
//!
//! A shared tier (Redis) is also how instances tell each other about on-demand changes: it hands each
//! [`Invalidation`] made elsewhere to a callback that `cache.rs` provides, so the tier never reaches up into
//! the cache.

pub mod codec;
pub mod disk;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::{CacheKey, Entry, PathPrefix};

/// A boxed future, so the trait stays object-safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secondary page store.
pub trait Store: Send + Sync {
    /// The page stored under `key`, if any and readable. Never fails: an unreadable page is a miss.
    fn load<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Option<Entry>>;
    /// Records `entry` for `key`, off the request path (write-behind; may be dropped under pressure).
    fn save(&self, key: &CacheKey, entry: &Arc<Entry>);
    /// Forgets `key` (purge).
    fn delete(&self, key: &CacheKey);
    /// Waits until queued writes are done (graceful shutdown), within the tier's own bound.
    fn flush(&self) -> BoxFuture<'_, ()>;
    /// The tier's name in `/health` (`disk`, `redis`).
    fn name(&self) -> &'static str {
        "tier"
    }
    /// Which of `keys` the tier holds, in order, for the admin listing; `None` when it cannot tell now (the
    /// default, and Redis during an outage). One cheap check per key: no page is read.
    fn holds<'a>(&'a self, keys: &'a [CacheKey]) -> BoxFuture<'a, Option<Vec<bool>>> {
        let _ = keys;
        Box::pin(async { None })
    }
    /// Whether the tier works right now, for `/health`. A tier that cannot lose its backend (a local disk)
    /// keeps the default; a networked one (Redis) reports its connection.
    fn is_up(&self) -> bool {
        true
    }
}

/// An on-demand change made by another instance, to apply to this instance's memory (and its own lower tiers).
#[derive(Debug, Clone)]
pub enum Invalidation {
    /// `key` was regenerated at `generated_at`: an older copy in memory is dropped, so the next request reads the
    /// new page from the shared tier.
    Regenerated {
        /// The page.
        key: CacheKey,
        /// When the new page was generated.
        generated_at: SystemTime,
    },
    /// `key` was purged everywhere.
    Purged {
        /// The page.
        key: CacheKey,
    },
    /// Pages carrying `tag` were marked stale, or purged.
    Tag {
        /// The tag.
        tag: String,
        /// Removed rather than marked stale.
        purge: bool,
    },
    /// Pages a path prefix covers were marked stale, or purged.
    Prefix {
        /// The prefix, on its site.
        prefix: PathPrefix,
        /// Removed rather than marked stale.
        purge: bool,
    },
    /// Invalidations may have been missed (a reconnect after an outage): every page in memory is dropped, and
    /// pages are read again from the shared tier.
    Everything,
}

/// Applies an [`Invalidation`] received from the shared tier to this instance, without announcing it again.
pub type ApplyInvalidation = Arc<dyn Fn(Invalidation) -> BoxFuture<'static, ()> + Send + Sync>;
