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
//! Besides moka, an ordered index of the keys in memory ([`index`]) lets the admin listing page through the cache
//! and a prefix revalidation find its pages without scanning it; like the tag index, it is written when entries
//! are stored or evicted, never on a hit.
//!
//! # Concurrent calls on the same key
//! `get` is lock-free (moka). Writes (`insert`, `keep`, a page read back from a lower tier) go through moka's
//! per-key compute lock, which orders them with the index updates, and never replace a page generated later;
//! the caller (`regen`) also serialises fetches per key, so two fetches of one key never race to insert.

pub mod entry;
mod front;
pub mod index;
mod invalidate;
pub mod key;
mod prefix;
pub mod store;
mod variants;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

pub use entry::{Entry, Freshness, Lifetime};
use front::Front;
use index::KeyIndex;
pub use index::{ListPage, ListQuery};
pub use key::{CacheKey, scoped_tag, unscoped_tag};
use moka::ops::compute::{CompResult, Op};
pub use prefix::PathPrefix;
use store::Store;
use store::redis::RedisStore;
use variants::Variants;

/// Keys carrying each tag (scoped by host, see [`scoped_tag`]), in key order (so the listing can page through a
/// tag). Entries are re-checked on use, so a stale mapping is harmless, only wasted memory, and evictions clean
/// it up.
type TagIndex = Arc<Mutex<HashMap<String, BTreeSet<CacheKey>>>>;

/// See [`Cache::scanned`](Cache).
type Scanned = Arc<Mutex<BTreeSet<CacheKey>>>;

/// Keys a walk over a tag's pages (invalidation, [`Cache::keys_with_tag`]) handles between two yields to the
/// runtime: about 0.5 ms of work, short enough that hits queued behind it on the same worker thread keep a
/// sub-millisecond wait, long enough that yielding costs the walk little.
const KEYS_BETWEEN_YIELDS: usize = 1024;

/// The page store.
#[derive(Clone)]
pub struct Cache {
    entries: moka::future::Cache<CacheKey, Arc<Entry>, front::KeyHashing>,
    /// What `entries` holds, read by hits (see [`front`]).
    front: Arc<Front>,
    /// Every key in memory, in order, for the admin listing.
    keys: Arc<KeyIndex>,
    /// Keys a lower tier's startup scan found (the disk tier's pages), in key order, so that a prefix also
    /// reaches pages memory does not hold. Re-checked on use, like the tag index; a purge removes its key.
    scanned: Scanned,
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
        let keys = Arc::new(KeyIndex::default());
        let listener_keys = keys.clone();
        let front = Arc::new(Front::default());
        let listener_front = front.clone();
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
                    listener_front.remove_if_same(&key, &entry);
                }
                // A replaced entry's successor is indexed already; a notification for an entry the key index no
                // longer holds is a late one, for a key stored again since, whose indexes must stay.
                if cause != moka::notification::RemovalCause::Replaced && listener_keys.remove_if_same(&key, &entry) {
                    unindex(&listener_tags, &key, &entry.tags);
                    listener_variants.unindex(&key);
                }
            })
            .build_with_hasher(front::KeyHashing);
        Self {
            entries,
            front,
            keys,
            scanned: Arc::default(),
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

    /// A callback that indexes a page found by a tier at startup (the disk scan): its key (for prefixes), its
    /// tags, and, for a `Vary` variant, the variant itself and the names its URL varies on, so that requests find
    /// persisted variants.
    pub fn tag_indexer(&self) -> store::disk::OnScanned {
        let tags = self.tags.clone();
        let variants = self.variants.clone();
        let scanned = self.scanned.clone();
        Box::new(move |key: &CacheKey, page_tags: &[String]| {
            scanned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone());
            variants.index(key);
            if !key.vary().is_empty() {
                let names: Arc<[http::header::HeaderName]> = key.vary().iter().map(|(name, _)| name.clone()).collect();
                variants.set_vary_names(&key.primary(), Some(names));
            }
            index_tags(&tags, key, page_tags);
        })
    }

    /// The entry for `key`, fresh or not. An in-memory miss asks the lower tiers; a page found there is kept in
    /// memory again (and not written back).
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        if let Some(entry) = self.front.get(key) {
            if front::sample_read() {
                // Boxed: a rare branch must not grow every hit's future.
                Box::pin(self.entries.get(key)).await;
            }
            return Some(entry);
        }
        // Boxed: the hit path's future stays small (see `Proxy::handle`).
        Box::pin(self.load_from_tiers(key)).await
    }

    async fn load_from_tiers(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        for tier in self.lower_tiers() {
            if let Some(entry) = tier.load(key).await {
                return Some(self.keep(key, Arc::new(entry)).await);
            }
        }
        None
    }

    /// Keeps `entry` in memory only, unless memory holds a later one: a page another instance stored in the
    /// shared tier, picked up instead of rendered. Returns the entry now in memory.
    pub async fn keep(&self, key: &CacheKey, entry: Arc<Entry>) -> Arc<Entry> {
        match self.put_unless_newer(key, &entry).await {
            Ok(()) => entry,
            Err(newer) => newer,
        }
    }

    /// Stores `entry` under `key` and indexes its tags, unless the cached entry was generated later (a slow
    /// fetch or a warm-up must never roll a page back to older content). Returns whether it was stored.
    pub async fn insert(&self, key: CacheKey, entry: Arc<Entry>) -> bool {
        if self.put_unless_newer(&key, &entry).await.is_err() {
            return false;
        }
        for tier in self.tiers.iter() {
            tier.save(&key, &entry);
        }
        if let Some(shared) = &self.shared {
            shared.save(&key, &entry);
        }
        true
    }

    /// Puts `entry` in memory and the indexes, unless memory holds a page generated later, which is returned.
    /// Runs under moka's per-key compute lock, so the indexes see this key's writes in the order moka applies them.
    async fn put_unless_newer(&self, key: &CacheKey, entry: &Arc<Entry>) -> Result<(), Arc<Entry>> {
        let result = self
            .entries
            .entry(key.clone())
            .and_compute_with(|current| {
                let op = match current.map(moka::Entry::into_value) {
                    Some(current) if current.generated_at > entry.generated_at => Op::Nop,
                    current => {
                        if let Some(previous) = current {
                            let dropped: Vec<String> =
                                previous.tags.iter().filter(|t| !entry.has_tag(t)).cloned().collect();
                            unindex(&self.tags, key, &dropped);
                        }
                        self.index(key, entry);
                        Op::Put(entry.clone())
                    }
                };
                std::future::ready(op)
            })
            .await;
        match result {
            CompResult::Unchanged(newer) => Err(newer.into_value()),
            _ => Ok(()),
        }
    }

    fn index(&self, key: &CacheKey, entry: &Arc<Entry>) {
        self.front.put(key, entry);
        self.keys.put(key, entry);
        self.variants.index(key);
        index_tags(&self.tags, key, &entry.tags);
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

    /// The keys cached by this instance whose entries carry `tag` (a [`scoped_tag`]). Costs time proportional to
    /// those keys, not to the cache. Entries in memory are read from the front map, as `variants_of` does (a
    /// hit's sampled moka read would cost a tag of 100,000 pages a third of its time and skew eviction); only
    /// keys known from a lower tier's scan are loaded from it. Yields to the runtime every
    /// [`KEYS_BETWEEN_YIELDS`] keys, so that a large tag does not hold a worker thread, and the hits queued on it,
    /// for its whole walk.
    pub async fn keys_with_tag(&self, tag: &str) -> Vec<(CacheKey, Arc<Entry>)> {
        let origin_tag = unscoped_tag(tag);
        let candidates: Vec<CacheKey> = {
            let tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
            tags.get(tag)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        let mut found = Vec::with_capacity(candidates.len());
        for (i, key) in candidates.into_iter().enumerate() {
            if i % KEYS_BETWEEN_YIELDS == KEYS_BETWEEN_YIELDS - 1 {
                tokio::task::yield_now().await;
            }
            let entry = match self.front.get(&key) {
                Some(entry) => Some(entry),
                None => self.get(&key).await,
            };
            if let Some(entry) = entry
                && entry.has_tag(origin_tag)
            {
                found.push((key, entry));
            }
        }
        found
    }

    /// The pages cached by this instance that `prefix` covers. Those in memory are read from the ordered key index,
    /// one run of the prefix at a time, [`KEYS_BETWEEN_YIELDS`] keys per lock and yielding between them; those only
    /// a lower tier's scan knows are loaded from it. Costs time in proportion to the keys under the prefix's path
    /// (other sites' pages at those paths included), not to the cache.
    pub async fn keys_with_prefix(&self, prefix: &PathPrefix) -> Vec<(CacheKey, Arc<Entry>)> {
        let runs = prefix.runs();
        let mut found = Vec::new();
        for run in &runs {
            let mut after = None;
            loop {
                let (chunk, next) = self.keys.run_chunk(prefix, run, after.as_ref(), KEYS_BETWEEN_YIELDS);
                // The index may still hold a key moka dropped a moment ago (its eviction is being handled).
                found.extend(chunk.into_iter().filter(|(key, _)| self.entries.contains_key(key)));
                let Some(next) = next else { break };
                after = Some(next);
                tokio::task::yield_now().await;
            }
        }
        let only_scanned: Vec<CacheKey> = {
            let scanned = self.scanned.lock().unwrap_or_else(PoisonError::into_inner);
            runs.iter()
                .flat_map(|run| {
                    let start = CacheKey::new(&run.start, None, Vec::new());
                    scanned
                        .range(start..)
                        .take_while(|key| run.contains(key.path_and_query()))
                })
                .filter(|key| prefix.covers(key) && !self.entries.contains_key(*key))
                .cloned()
                .collect()
        };
        for (i, key) in only_scanned.into_iter().enumerate() {
            if i % KEYS_BETWEEN_YIELDS == KEYS_BETWEEN_YIELDS - 1 {
                tokio::task::yield_now().await;
            }
            if let Some(entry) = self.get(&key).await {
                found.push((key, entry));
            }
        }
        found
    }

    /// The cached variants (RSC payloads, `Vary` variants) of `page`'s path on its site, which a revalidation
    /// of the page must reach as well.
    pub async fn variants_of(&self, page: &CacheKey) -> Vec<(CacheKey, Arc<Entry>)> {
        let mut found = Vec::new();
        for key in self.variants.of_page(page) {
            if let Some(entry) = self.front.get(&key) {
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
            if let Some(entry) = self.front.get(&key) {
                found.push((key, entry));
            }
        }
        found
    }

    /// One page of the pages in memory, in key order (the admin listing): a range read on the ordered key index
    /// (or the tag's ordered set), bounded by the page size and [`index::MAX_SCAN`] whatever the cache holds.
    /// Reading does not count as an access to the pages.
    pub fn list(&self, query: &ListQuery, now: SystemTime) -> ListPage {
        let is_live = |key: &CacheKey| self.entries.contains_key(key);
        let Some(tag) = &query.tag else {
            return self.keys.page(query, now, is_live);
        };
        // Lock order: the tag index, then the key index (nothing takes them the other way round, nested).
        let tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(keys) = tags.get(tag) else {
            return ListPage {
                entries: Vec::new(),
                next: None,
                total: 0,
                scanned: 0,
            };
        };
        let candidates = keys.range((index::start_bound(query), std::ops::Bound::Unbounded));
        self.keys.page_of(candidates, keys.len(), query, now, is_live)
    }

    /// The page in memory under `key`, without counting as an access (admin inspection).
    pub fn peek(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.keys.get(key).filter(|_| self.entries.contains_key(key))
    }

    /// The page under `key` for inspection, and which tiers hold it: memory if there, else the first lower
    /// tier that has it (read, not kept in memory).
    pub async fn inspect(&self, key: &CacheKey) -> (Option<Arc<Entry>>, Vec<&'static str>) {
        let found = match self.peek(key) {
            Some(entry) => Some(entry),
            None => {
                let mut found = None;
                for tier in self.lower_tiers() {
                    if let Some(entry) = tier.load(key).await {
                        found = Some(Arc::new(entry));
                        break;
                    }
                }
                found
            }
        };
        let tiers = self.tiers_holding(std::slice::from_ref(key)).await;
        (found, tiers.into_iter().next().unwrap_or_default())
    }

    /// For each key, the tiers that hold it: `memory`, then each lower tier that says so (a tier that cannot
    /// tell now, such as Redis during an outage, is left out). Costs one check per key and tier (a file's
    /// metadata, one pipelined Redis call), for a listing page.
    pub async fn tiers_holding(&self, keys: &[CacheKey]) -> Vec<Vec<&'static str>> {
        let mut holding: Vec<Vec<&'static str>> = keys
            .iter()
            .map(|key| {
                if self.entries.contains_key(key) {
                    vec!["memory"]
                } else {
                    Vec::new()
                }
            })
            .collect();
        for tier in self.lower_tiers() {
            if let Some(held) = tier.holds(keys).await {
                for (tiers, held) in holding.iter_mut().zip(held) {
                    if held {
                        tiers.push(tier.name());
                    }
                }
            }
        }
        holding
    }

    /// The tiers below memory, in lookup order: the shared one (Redis), then this instance's own (disk).
    fn lower_tiers(&self) -> impl Iterator<Item = &dyn Store> {
        let shared = self.shared.iter().map(|store| store.as_ref() as &dyn Store);
        shared.chain(self.tiers.iter().map(AsRef::as_ref))
    }

    /// Number of entries (approximate until moka's pending tasks run).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The bound on [`Cache::weighted_size`] (`cache.max_size`).
    pub fn max_bytes(&self) -> u64 {
        self.entries.policy().max_capacity().unwrap_or(u64::MAX)
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
        self.lower_tiers().map(|tier| (tier.name(), tier.is_up())).collect()
    }

    /// Applies moka's pending housekeeping (evictions, counters); for tests and metrics.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }
}

/// Files `key` under each of its page's `tags` (scoped by the key's host).
fn index_tags(index: &TagIndex, key: &CacheKey, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    for tag in tags {
        index
            .entry(scoped_tag(key.host(), tag).into_owned())
            .or_default()
            .insert(key.clone());
    }
}

/// Undoes [`index_tags`].
fn unindex(index: &TagIndex, key: &CacheKey, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    for tag in tags {
        let tag = scoped_tag(key.host(), tag);
        if let Some(keys) = index.get_mut(tag.as_ref()) {
            keys.remove(key);
            if keys.is_empty() {
                index.remove(tag.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod tests;
