//! Invalidation: purges, stale marks and regenerations, applied here and, with a shared tier (Redis), announced
//! to every instance; and [`Cache::apply`], through which this instance takes in the others' announcements.
//!
//! The `*_here` methods reach memory and this instance's own tiers only: they are what an announcement from
//! elsewhere runs, so nothing is ever announced twice.

use std::sync::Arc;
use std::time::SystemTime;

use super::store::{ApplyInvalidation, Invalidation, Store};
use super::{Cache, CacheKey, Entry, KEYS_BETWEEN_YIELDS, PathPrefix};

impl Cache {
    /// The callback through which the shared tier hands over other instances' invalidations. It reaches memory
    /// and this instance's own tiers only (never the shared tier), so nothing is announced twice, and it holds
    /// no reference to the shared tier, so the two can be dropped.
    pub fn invalidation_applier(&self) -> ApplyInvalidation {
        let mut local = self.clone();
        local.shared = None;
        Arc::new(move |invalidation| {
            let local = local.clone();
            Box::pin(async move { local.apply(invalidation).await })
        })
    }

    /// Removes `key` from memory and every tier, on every instance (purge); returns whether it was cached.
    pub async fn remove(&self, key: &CacheKey) -> bool {
        let mut found = self.remove_here(key).await;
        if let Some(shared) = &self.shared {
            found |= shared.purge(key).await.unwrap_or(false);
        }
        found
    }

    /// Removes every stored response of one URL, `primary` and its `Vary` variants, from memory and every tier,
    /// on every instance (RFC 9111 §4.4 invalidation); returns how many were found.
    pub async fn remove_url(&self, primary: &CacheKey) -> usize {
        let mut keys = self.variants.of_primary(primary);
        keys.push(primary.clone());
        let mut found = 0;
        for key in keys {
            found += usize::from(self.remove(&key).await);
        }
        self.variants.set_vary_names(primary, None);
        found
    }

    /// Removes `key` from memory and this instance's own tiers.
    async fn remove_here(&self, key: &CacheKey) -> bool {
        self.scanned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        let mut found = self.forget_in_memory(key).await;
        for tier in self.tiers.iter() {
            if !found {
                found = tier.load(key).await.is_some();
            }
            tier.delete(key);
        }
        found
    }

    /// Marks a cached page stale (revalidation by tag, or of a path's variants), in memory and in every tier.
    /// Other instances learn of it through the announcement that follows (a tag's, or the path's regeneration).
    pub fn mark_stale(&self, key: &CacheKey, entry: &Arc<Entry>) {
        entry.mark_stale();
        for tier in self.tiers.iter() {
            tier.save(key, entry);
        }
        if let Some(shared) = &self.shared {
            shared.save(key, entry);
        }
    }

    /// Marks stale (or, with `purge`, removes) every page carrying `tag` (a [`super::scoped_tag`]), on every
    /// instance. Returns how many
    /// pages were found (here or in the shared tier, whichever knows more).
    pub async fn invalidate_tag(&self, tag: &str, purge: bool) -> usize {
        let here = self.invalidate_tag_here(tag, purge).await;
        let shared = match &self.shared {
            Some(shared) => shared.invalidate_tag(tag, purge).await.unwrap_or(0),
            None => 0,
        };
        here.max(shared)
    }

    async fn invalidate_tag_here(&self, tag: &str, purge: bool) -> usize {
        let tagged = self.keys_with_tag(tag).await;
        self.invalidate_here(&tagged, purge).await
    }

    /// Marks stale (or, with `purge`, removes) every page `prefix` covers, on every instance. Returns how many
    /// pages were found (here or in the shared tier, whichever knows more).
    pub async fn invalidate_prefix(&self, prefix: &PathPrefix, purge: bool) -> usize {
        let here = self.invalidate_prefix_here(prefix, purge).await;
        let shared = match &self.shared {
            Some(shared) => shared.invalidate_prefix(prefix, purge).await.unwrap_or(0),
            None => 0,
        };
        here.max(shared)
    }

    async fn invalidate_prefix_here(&self, prefix: &PathPrefix, purge: bool) -> usize {
        let covered = self.keys_with_prefix(prefix).await;
        self.invalidate_here(&covered, purge).await
    }

    /// Marks `pages` stale (or removes them) in memory and this instance's own tiers, yielding to the runtime
    /// every [`KEYS_BETWEEN_YIELDS`] pages; returns how many there were.
    async fn invalidate_here(&self, pages: &[(CacheKey, Arc<Entry>)], purge: bool) -> usize {
        for (i, (key, entry)) in pages.iter().enumerate() {
            if i % KEYS_BETWEEN_YIELDS == KEYS_BETWEEN_YIELDS - 1 {
                tokio::task::yield_now().await;
            }
            if purge {
                self.remove_here(key).await;
            } else {
                self.mark_stale(key, entry);
            }
        }
        pages.len()
    }

    /// Tells the other instances that `key` was regenerated on demand, so they drop their older copy.
    pub fn announce_regenerated(&self, key: &CacheKey, entry: &Entry) {
        if let Some(shared) = &self.shared {
            shared.announce_regenerated(key, entry.generated_at);
        }
    }

    /// Applies another instance's invalidation to memory and this instance's own tiers (see
    /// [`Cache::invalidation_applier`]).
    pub async fn apply(&self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Regenerated { key, generated_at } => {
                self.forget_older(&key, generated_at).await;
                // As on the instance that regenerated it: the path's RSC payloads go stale with it.
                for (variant, entry) in self.variants_of(&key).await {
                    self.mark_stale(&variant, &entry);
                }
            }
            Invalidation::Purged { key } => {
                self.remove_here(&key).await;
            }
            Invalidation::Tag { tag, purge } => {
                self.invalidate_tag_here(&tag, purge).await;
            }
            Invalidation::Prefix { prefix, purge } => {
                self.invalidate_prefix_here(&prefix, purge).await;
            }
            Invalidation::Everything => {
                self.entries.invalidate_all();
                self.front.clear();
            }
        }
    }

    /// Drops the in-memory copy of `key` if it was generated before `generated_at`; the next request reads the
    /// newer page from the shared tier.
    async fn forget_older(&self, key: &CacheKey, generated_at: SystemTime) {
        if let Some(entry) = self.front.get(key)
            && entry.generated_at < generated_at
        {
            self.forget_in_memory(key).await;
        }
    }

    /// Removes `key` from memory (moka, and the front map if it still holds what left moka); returns whether it
    /// was there.
    async fn forget_in_memory(&self, key: &CacheKey) -> bool {
        match self.entries.remove(key).await {
            Some(removed) => {
                self.front.remove_if_same(key, &removed);
                true
            }
            None => false,
        }
    }
}
