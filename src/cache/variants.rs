//! The variants stored for one page: Next.js RSC payloads (keys with variant headers) and, on
//! `revalidate = "origin"` routes, the responses of a URL that varies on request headers (keys with a `Vary`
//! part, RFC 9111 §4.1).
//!
//! [`Variants`] indexes variant keys by path, so that revalidating or invalidating a path reaches them all, and
//! keeps the header names each URL varies on, so that a request finds its variant's key. Keys without a variant
//! are not indexed: a site without RSC requests or `Vary` pays nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use http::header::HeaderName;

use super::CacheKey;

/// Variant keys by path, and `Vary` names by primary key. Cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Variants {
    by_path: Arc<Mutex<HashMap<Box<str>, HashSet<CacheKey>>>>,
    /// Read on every request to a `revalidate = "origin"` route: a sharded map, so readers rarely contend.
    vary_names: Arc<DashMap<CacheKey, Arc<[HeaderName]>>>,
}

impl Variants {
    /// Records `key` if it is a variant.
    pub(super) fn index(&self, key: &CacheKey) {
        if key.variant().is_empty() && key.vary().is_empty() {
            return;
        }
        let mut by_path = self.by_path.lock().unwrap_or_else(PoisonError::into_inner);
        by_path.entry(key.path().into()).or_default().insert(key.clone());
    }

    /// Forgets `key` (evicted or removed); the last variant of a URL also takes its `Vary` names with it.
    pub(super) fn unindex(&self, key: &CacheKey) {
        if key.variant().is_empty() && key.vary().is_empty() {
            return;
        }
        let mut by_path = self.by_path.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(keys) = by_path.get_mut(key.path()) else {
            return;
        };
        keys.remove(key);
        let primary_left = !key.vary().is_empty() && keys.iter().any(|k| k.same_primary(key));
        if keys.is_empty() {
            by_path.remove(key.path());
        }
        drop(by_path);
        if !key.vary().is_empty() && !primary_left {
            self.vary_names.remove(&key.primary());
        }
    }

    /// The variant keys indexed under `path`.
    pub(super) fn of_path(&self, path: &str) -> Vec<CacheKey> {
        let by_path = self.by_path.lock().unwrap_or_else(PoisonError::into_inner);
        by_path
            .get(path)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The variant keys of one URL (same path, query and RSC variant as `primary`).
    pub(super) fn of_primary(&self, primary: &CacheKey) -> Vec<CacheKey> {
        let by_path = self.by_path.lock().unwrap_or_else(PoisonError::into_inner);
        by_path
            .get(primary.path())
            .map(|keys| keys.iter().filter(|k| k.same_primary(primary)).cloned().collect())
            .unwrap_or_default()
    }

    /// The header names the stored responses of `primary` vary on, if any.
    pub(super) fn vary_names(&self, primary: &CacheKey) -> Option<Arc<[HeaderName]>> {
        if self.vary_names.is_empty() {
            return None;
        }
        self.vary_names.get(primary).map(|names| names.clone())
    }

    /// Records what the latest stored response of `primary` varies on (`None`: nothing).
    pub(super) fn set_vary_names(&self, primary: &CacheKey, names: Option<Arc<[HeaderName]>>) {
        match names {
            Some(names) => {
                self.vary_names.insert(primary.clone(), names);
            }
            None => {
                self.vary_names.remove(primary);
            }
        }
    }
}
