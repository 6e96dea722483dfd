//! Tiers below the in-memory cache (disk, Redis), behind one small trait, as pingora's `Storage`.
//!
//! A tier is consulted on an in-memory miss and written behind every stored page; it never sits on the hit
//! path. Tiers use only `cache::entry` and `cache::key` (leaves); `cache.rs` composes them.

pub mod codec;
pub mod disk;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::cache::{CacheKey, Entry};

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
    /// Whether the tier works right now, for `/health`. A tier that cannot lose its backend (a local disk)
    /// keeps the default; a networked one (Redis) reports its connection.
    fn is_up(&self) -> bool {
        true
    }
}
