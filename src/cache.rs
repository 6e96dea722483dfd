//! The in-memory page store: a byte-bounded moka cache of [`Entry`]s plus a tag index.
//!
//! Owns storage only. It does not know how keys are made (`route`), what time it is (`clock`), or how pages are
//! fetched (`origin`, `regen`); moka's own expiry is not used, because ISR freshness is decided by the caller from
//! `Entry::generated_at`. Later tiers (disk, Redis) plug in under `cache::store`.
//!
//! With a shared tier (Redis), a miss in memory asks Redis before the disk, and on-demand changes (purge, tag
//! revalidation, an on-demand regeneration) reach every instance: they are applied to Redis and announced,
//! and each instance applies what others announce to its memory and its own lower tiers through
//! [`Cache::apply`], which never announces again.
//!
//! # Concurrent calls on the same key
//! `get` is lock-free (moka). `insert` replaces whatever is there; the caller (`regen`) serialises writers per
//! key, so two fetches of one key never race to insert.

pub mod entry;
mod invalidate;
pub mod key;
pub mod store;
mod variants;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use entry::{Entry, Freshness, Lifetime};
pub use key::CacheKey;
use store::Store;
use store::redis::RedisStore;
use variants::Variants;

/// Keys carrying each tag. Entries are re-checked on use, so a stale mapping is harmless, only wasted memory,
/// and evictions clean it up.
type TagIndex = Arc<Mutex<HashMap<String, HashSet<CacheKey>>>>;

/// The page store.
#[derive(Clone)]
pub struct Cache {
    entries: moka::future::Cache<CacheKey, Arc<Entry>>,
    tags: TagIndex,
    variants: Variants,
    /// This instance's lower tiers (disk), consulted in order on an in-memory miss and written behind every
    /// insert.
    tiers: Arc<[Arc<dyn Store>]>,
    /// The tier shared by every instance (Redis): consulted before `tiers`, written behind every insert, and
    /// the way on-demand changes reach the other instances.
    shared: Option<Arc<RedisStore>>,
    /// Entries evicted to stay under the byte bound (moka `RemovalCause::Size`), for metrics.
    evictions: Arc<AtomicU64>,
}

impl Cache {
    /// A cache holding at most `max_bytes` of entries (bodies, headers and keys, as weighed by [`Entry::weight`]).
    pub fn new(max_bytes: u64) -> Self {
        let tags: TagIndex = Arc::default();
        let listener_tags = tags.clone();
        let variants = Variants::default();
        let listener_variants = variants.clone();
        let evictions = Arc::new(AtomicU64::new(0));
        let listener_evictions = evictions.clone();
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &CacheKey, entry: &Arc<Entry>| {
                u32::try_from(key.weight() + entry.weight()).unwrap_or(u32::MAX)
            })
            .eviction_listener(move |key, entry: Arc<Entry>, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    listener_evictions.fetch_add(1, Ordering::Relaxed);
                }
                if cause != moka::notification::RemovalCause::Replaced {
                    unindex(&listener_tags, &key, &entry.tags);
                    listener_variants.unindex(&key);
                }
            })
            .build();
        Self {
            entries,
            tags,
            variants,
            tiers: Arc::new([]),
            shared: None,
            evictions,
        }
    }

    /// Adds the shared tier (Redis), asked before the lower tiers. Build it with [`Cache::invalidation_applier`].
    pub fn with_shared_tier(mut self, store: Arc<RedisStore>) -> Self {
        self.shared = Some(store);
        self
    }

    /// The shared tier, if configured (for regeneration locks and health).
    pub fn shared_tier(&self) -> Option<&Arc<RedisStore>> {
        self.shared.as_ref()
    }

    /// Adds a lower tier (disk) below the in-memory cache.
    pub fn with_tier(mut self, tier: Arc<dyn Store>) -> Self {
        let mut tiers = self.tiers.to_vec();
        tiers.push(tier);
        self.tiers = tiers.into();
        self
    }

    /// A callback that indexes a page found by a tier at startup (the disk scan): its tags, and, for a `Vary`
    /// variant, the variant itself and the names its URL varies on, so that requests find persisted variants.
    pub fn tag_indexer(&self) -> store::disk::OnScanned {
        let tags = self.tags.clone();
        let variants = self.variants.clone();
        Box::new(move |key: &CacheKey, page_tags: &[String]| {
            variants.index(key);
            if !key.vary().is_empty() {
                let names: Arc<[http::header::HeaderName]> = key.vary().iter().map(|(name, _)| name.clone()).collect();
                variants.set_vary_names(&key.primary(), Some(names));
            }
            if page_tags.is_empty() {
                return;
            }
            let mut index = tags.lock().unwrap_or_else(PoisonError::into_inner);
            for tag in page_tags {
                index.entry(tag.clone()).or_default().insert(key.clone());
            }
        })
    }

    /// The entry for `key`, fresh or not. An in-memory miss asks the lower tiers; a page found there is kept in
    /// memory again (and not written back).
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        if let Some(entry) = self.entries.get(key).await {
            return Some(entry);
        }
        let shared = self.shared.iter().map(|store| store.as_ref() as &dyn Store);
        for tier in shared.chain(self.tiers.iter().map(AsRef::as_ref)) {
            if let Some(entry) = tier.load(key).await {
                let entry = Arc::new(entry);
                self.index(key, &entry);
                self.entries.insert(key.clone(), entry.clone()).await;
                return Some(entry);
            }
        }
        None
    }

    /// Keeps `entry` in memory only, unless memory holds a later one: a page another instance stored in the
    /// shared tier, picked up instead of rendered. Returns the entry now in memory.
    pub async fn keep(&self, key: &CacheKey, entry: Arc<Entry>) -> Arc<Entry> {
        if let Some(previous) = self.entries.get(key).await
            && previous.generated_at > entry.generated_at
        {
            return previous;
        }
        self.index(key, &entry);
        self.entries.insert(key.clone(), entry.clone()).await;
        entry
    }

    /// Stores `entry` under `key` and indexes its tags, unless the cached entry was generated later (a slow
    /// fetch or a warm-up must never roll a page back to older content). Returns whether it was stored.
    pub async fn insert(&self, key: CacheKey, entry: Arc<Entry>) -> bool {
        if let Some(previous) = self.entries.get(&key).await {
            if previous.generated_at > entry.generated_at {
                return false;
            }
            let dropped: Vec<String> = previous.tags.iter().filter(|t| !entry.has_tag(t)).cloned().collect();
            unindex(&self.tags, &key, &dropped);
        }
        self.index(&key, &entry);
        for tier in self.tiers.iter() {
            tier.save(&key, &entry);
        }
        if let Some(shared) = &self.shared {
            shared.save(&key, &entry);
        }
        self.entries.insert(key, entry).await;
        true
    }

    fn index(&self, key: &CacheKey, entry: &Entry) {
        self.variants.index(key);
        if !entry.tags.is_empty() {
            let mut tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
            for tag in entry.tags.iter() {
                tags.entry(tag.clone()).or_default().insert(key.clone());
            }
        }
    }

    /// Waits for the tiers' queued writes (graceful shutdown).
    pub async fn flush(&self) {
        for tier in self.tiers.iter() {
            tier.flush().await;
        }
        if let Some(shared) = &self.shared {
            shared.flush().await;
        }
    }

    /// The keys cached by this instance whose entries carry `tag`. Costs time proportional to those keys, not to
    /// the cache.
    pub async fn keys_with_tag(&self, tag: &str) -> Vec<(CacheKey, Arc<Entry>)> {
        let candidates: Vec<CacheKey> = {
            let tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
            tags.get(tag)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        let mut found = Vec::with_capacity(candidates.len());
        for key in candidates {
            if let Some(entry) = self.get(&key).await
                && entry.has_tag(tag)
            {
                found.push((key, entry));
            }
        }
        found
    }

    /// The cached variants (RSC payloads, `Vary` variants) of `path`, which a revalidation of the path must
    /// reach as well.
    pub async fn variants_of(&self, path: &str) -> Vec<(CacheKey, Arc<Entry>)> {
        let mut found = Vec::new();
        for key in self.variants.of_path(path) {
            if let Some(entry) = self.entries.get(&key).await {
                found.push((key, entry));
            }
        }
        found
    }

    /// The key a request for `primary` looks its page up under: `primary` itself, or, when the URL's stored
    /// responses vary on request headers, `primary` narrowed by the request's values for them (RFC 9111 §4.1).
    pub fn variant_key(&self, primary: &CacheKey, request: &http::HeaderMap) -> CacheKey {
        match self.variants.vary_names(primary) {
            Some(names) => primary.with_vary(crate::http_cache::selecting_values(&names, request)),
            None => primary.clone(),
        }
    }

    /// Records which request headers the latest stored response for `primary` varies on (`None`: none), so that
    /// [`Cache::variant_key`] finds later requests' variants.
    pub fn set_vary_names(&self, primary: &CacheKey, names: Option<Arc<[http::header::HeaderName]>>) {
        self.variants.set_vary_names(primary, names);
    }

    /// How many `Vary` variants of `primary` are stored.
    pub fn vary_variant_count(&self, primary: &CacheKey) -> usize {
        self.variants.of_primary(primary).len()
    }

    /// Every stored response of one URL: `primary` and its `Vary` variants.
    pub async fn url_entries(&self, primary: &CacheKey) -> Vec<(CacheKey, Arc<Entry>)> {
        let mut keys = self.variants.of_primary(primary);
        keys.push(primary.clone());
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(entry) = self.entries.get(&key).await {
                found.push((key, entry));
            }
        }
        found
    }

    /// Number of entries (approximate until moka's pending tasks run).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held, as weighed (approximate until moka's pending tasks run).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Entries evicted so far to stay under the byte bound (not removals or replacements).
    pub fn eviction_count(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Each lower tier's name and whether it is up, in lookup order (for `/health`).
    pub fn tier_states(&self) -> Vec<(&'static str, bool)> {
        let shared = self.shared.iter().map(|store| store.as_ref() as &dyn Store);
        shared
            .chain(self.tiers.iter().map(AsRef::as_ref))
            .map(|tier| (tier.name(), tier.is_up()))
            .collect()
    }

    /// Applies moka's pending housekeeping (evictions, counters); for tests and metrics.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }
}

fn unindex(index: &TagIndex, key: &CacheKey, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    for tag in tags {
        if let Some(keys) = index.get_mut(tag) {
            keys.remove(key);
            if keys.is_empty() {
                index.remove(tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::header::{HeaderName, HeaderValue};
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn page(tags: &'static str, body_len: usize) -> Arc<Entry> {
        let mut headers = HeaderMap::new();
        headers.insert("x-isr-tags", HeaderValue::from_static(tags));
        Arc::new(Entry::from_origin(
            StatusCode::OK,
            headers,
            Bytes::from(vec![b'x'; body_len]),
            SystemTime::now(),
            Lifetime {
                revalidate: Some(Duration::from_secs(60)),
                expire: Duration::from_secs(60),
            },
            &HeaderName::from_static("x-isr-tags"),
        ))
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new(path, None, Vec::new())
    }

    #[tokio::test]
    async fn tag_index_follows_inserts_replacements_and_removals() {
        let cache = Cache::new(1 << 20);
        cache.insert(key("/a"), page("blog, post-1", 10)).await;
        cache.insert(key("/b"), page("blog", 10)).await;
        assert_eq!(cache.keys_with_tag("blog").await.len(), 2);
        assert_eq!(cache.keys_with_tag("post-1").await.len(), 1);

        cache.insert(key("/a"), page("post-2", 10)).await;
        assert_eq!(
            cache.keys_with_tag("blog").await.len(),
            1,
            "replaced entry dropped the tag"
        );
        assert_eq!(cache.keys_with_tag("post-2").await.len(), 1);

        assert!(cache.remove(&key("/b")).await);
        cache.run_pending_tasks().await;
        assert!(cache.keys_with_tag("blog").await.is_empty());
        assert!(
            cache.tags.lock().expect("not poisoned").get("blog").is_none(),
            "index cleaned on removal"
        );
    }

    #[tokio::test]
    async fn an_older_entry_never_replaces_a_newer_one() {
        let cache = Cache::new(1 << 20);
        let newer = page("t", 10);
        let older = Arc::new(Entry::from_origin(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"old"),
            newer.generated_at - Duration::from_secs(1),
            newer.lifetime,
            &HeaderName::from_static("x-isr-tags"),
        ));
        assert!(cache.insert(key("/a"), newer.clone()).await);
        assert!(!cache.insert(key("/a"), older).await, "older content must not win");
        let kept = cache.get(&key("/a")).await.expect("cached");
        assert!(Arc::ptr_eq(&kept, &newer));
    }

    #[tokio::test]
    async fn byte_bound_is_enforced() {
        let cache = Cache::new(100 * 1024);
        for i in 0..100 {
            cache.insert(key(&format!("/p/{i}")), page("t", 4096)).await;
        }
        cache.run_pending_tasks().await;
        assert!(
            cache.weighted_size() <= 100 * 1024,
            "weighted size {} over the bound",
            cache.weighted_size()
        );
        assert!(cache.entry_count() < 100);
        assert_eq!(
            cache.eviction_count(),
            100 - cache.entry_count(),
            "every page pushed out by the bound counts as an eviction"
        );
    }
}
