//! The ordered key index of the in-memory cache, and the paged listing built on it (the admin `GET /cache`).
//!
//! Every key in memory sits in a `BTreeMap` in key order ([`CacheKey`]'s `Ord`: path and query, then variant),
//! with its entry. A page of the listing is one range read: the cursor is the last key of the previous page, and
//! a path prefix is a contiguous range (every key starting with `/blog/` sorts between `/blog/` and the first
//! key that does not), so a page costs `O(log n + page)` whatever the cache holds. A tag filter reads the tag's
//! own ordered set the same way. Only a state filter (fresh, stale, expired: a matter of time, which no index
//! can keep) has to look at entries one by one; it looks at no more than [`MAX_SCAN`] per page and hands back a
//! cursor to go on from, so a page stays bounded even when few entries match.
//!
//! Prefix revalidation reads the same ranges ([`KeyIndex::run_chunk`]), a bounded chunk at a time, so that it
//! never holds the index's lock for long.
//!
//! The index is written where entries are stored and evicted, never on a hit. It holds the entry itself, so
//! listing reads no moka entry (which would count as an access and skew eviction). An eviction removes a key
//! only while the index still holds the evicted entry (pointer equality), so a notification that arrives after
//! a newer entry was stored cannot drop the key.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::prefix::{PathPrefix, Run};
use super::{CacheKey, Entry, Freshness};

/// Index entries one listing page may examine. A page with a state filter that finds fewer matches stops here
/// and returns a cursor; the next call goes on from it.
pub const MAX_SCAN: usize = 10_000;

/// Which pages a listing wants, and where it resumes.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only keys whose path (and query) start with this.
    pub prefix: Option<String>,
    /// Only pages carrying this tag.
    pub tag: Option<String>,
    /// Only pages in this state now.
    pub state: Option<Freshness>,
    /// Resume after this key (the previous page's `next`).
    pub after: Option<CacheKey>,
    /// Most pages returned; at least 1.
    pub limit: usize,
}

/// One page of a listing.
#[derive(Debug)]
pub struct ListPage {
    /// The pages, in key order.
    pub entries: Vec<(CacheKey, Arc<Entry>)>,
    /// Where the next page starts (pass it as [`ListQuery::after`]); `None` when nothing is left.
    pub next: Option<CacheKey>,
    /// Pages in memory, or, with a tag filter, pages indexed under the tag (neither prefix nor state is counted:
    /// that would be a scan).
    pub total: usize,
    /// Index entries examined for this page (at most [`MAX_SCAN`]).
    pub scanned: usize,
}

/// Every key in memory, in order, with the entry stored under it.
#[derive(Default)]
pub(super) struct KeyIndex {
    keys: Mutex<BTreeMap<CacheKey, Arc<Entry>>>,
}

impl KeyIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CacheKey, Arc<Entry>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `entry` as the one stored under `key` (called by the writer that stores it, in moka's per-key
    /// order).
    pub(super) fn put(&self, key: &CacheKey, entry: &Arc<Entry>) {
        self.lock().insert(key.clone(), entry.clone());
    }

    /// Forgets `key` if `entry` is still the one indexed under it; returns whether it was.
    pub(super) fn remove_if_same(&self, key: &CacheKey, entry: &Arc<Entry>) -> bool {
        let mut keys = self.lock();
        let same = keys.get(key).is_some_and(|indexed| Arc::ptr_eq(indexed, entry));
        if same {
            keys.remove(key);
        }
        same
    }

    /// The entry indexed under `key`, without touching moka.
    pub(super) fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.lock().get(key).cloned()
    }

    /// The keys of `run` (with their entries) that `prefix` covers, in order, starting after `after` (or at the
    /// run's start), examining at most `limit` keys; and the key to go on after if the run may hold more. Reads one range: keys
    /// outside the run are never examined, and other sites' keys at a covered path only to be skipped.
    pub(super) fn run_chunk(
        &self,
        prefix: &PathPrefix,
        run: &Run,
        after: Option<&CacheKey>,
        limit: usize,
    ) -> (Vec<(CacheKey, Arc<Entry>)>, Option<CacheKey>) {
        let start = match after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Included(CacheKey::new(&run.start, None, Vec::new())),
        };
        let keys = self.lock();
        let mut found = Vec::new();
        let mut last: Option<&CacheKey> = None;
        for (examined, (key, entry)) in keys.range((start, Bound::Unbounded)).enumerate() {
            if !run.contains(key.path_and_query()) {
                return (found, None);
            }
            if examined >= limit {
                return (found, last.cloned());
            }
            last = Some(key);
            if prefix.covers(key) {
                found.push((key.clone(), entry.clone()));
            }
        }
        (found, None)
    }

    /// Keys indexed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A page over every key in memory; `is_live` tells whether moka still holds a key (it may have been
    /// invalidated and not yet evicted).
    pub(super) fn page(&self, query: &ListQuery, now: SystemTime, is_live: impl Fn(&CacheKey) -> bool) -> ListPage {
        let keys = self.lock();
        let range = keys.range((start_bound(query), Bound::Unbounded));
        let (entries, next, scanned) = collect_page(range.map(|(k, e)| (k, Some(e))), query, now, is_live);
        ListPage {
            entries,
            next,
            total: keys.len(),
            scanned,
        }
    }

    /// A page over `candidates`, keys in order from a tag's set starting at the query's start bound, of which
    /// `total` exist. Each is looked up here: a tag's set can name pages no longer in memory (or only on disk).
    pub(super) fn page_of<'a>(
        &self,
        candidates: impl Iterator<Item = &'a CacheKey>,
        total: usize,
        query: &ListQuery,
        now: SystemTime,
        is_live: impl Fn(&CacheKey) -> bool,
    ) -> ListPage {
        let keys = self.lock();
        let items = candidates.map(|key| (key, keys.get(key)));
        let (entries, next, scanned) = collect_page(items, query, now, is_live);
        ListPage {
            entries,
            next,
            total,
            scanned,
        }
    }
}

/// Where a page starts: after the cursor, but not before the prefix.
pub(super) fn start_bound(query: &ListQuery) -> Bound<CacheKey> {
    let prefix = query.prefix.as_deref().map(|p| CacheKey::new(p, None, Vec::new()));
    match (&query.after, prefix) {
        (Some(after), Some(prefix)) if prefix > *after => Bound::Included(prefix),
        (Some(after), _) => Bound::Excluded(after.clone()),
        (None, Some(prefix)) => Bound::Included(prefix),
        (None, None) => Bound::Unbounded,
    }
}

/// A page's entries, the cursor to go on from, and how many keys were examined.
type Collected = (Vec<(CacheKey, Arc<Entry>)>, Option<CacheKey>, usize);

/// Takes matching entries from `items` (keys in order, from the start bound) until the page is full, the prefix
/// range ends, or [`MAX_SCAN`] keys were examined. Returns the page, the cursor to go on from, and the count
/// examined. A candidate without an entry (a tag's key no longer in memory) is examined and skipped.
fn collect_page<'a>(
    items: impl Iterator<Item = (&'a CacheKey, Option<&'a Arc<Entry>>)>,
    query: &ListQuery,
    now: SystemTime,
    is_live: impl Fn(&CacheKey) -> bool,
) -> Collected {
    let mut entries = Vec::with_capacity(query.limit.min(1024));
    let mut scanned = 0;
    let mut last: Option<&CacheKey> = None;
    for (key, entry) in items {
        if query
            .prefix
            .as_deref()
            .is_some_and(|prefix| !key.path_and_query().starts_with(prefix))
        {
            return (entries, None, scanned);
        }
        // Another candidate exists: the page is full, or out of budget, and the next one goes on from here.
        if entries.len() >= query.limit || scanned >= MAX_SCAN {
            return (entries, last.cloned(), scanned);
        }
        scanned += 1;
        last = Some(key);
        let Some(entry) = entry else { continue };
        // The state first: it is cheap, and moka's lookup is the dearer check.
        if query.state.is_some_and(|state| entry.freshness(now) != state) || !is_live(key) {
            continue;
        }
        entries.push((key.clone(), entry.clone()));
    }
    (entries, None, scanned)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::PathPrefix;
    use crate::cache::tests::{key, page_at};

    fn entry(generated_at: SystemTime) -> Arc<Entry> {
        page_at("", 1, generated_at)
    }

    fn query(limit: usize) -> ListQuery {
        ListQuery {
            prefix: None,
            tag: None,
            state: None,
            after: None,
            limit,
        }
    }

    fn paths(page: &ListPage) -> Vec<&str> {
        page.entries.iter().map(|(k, _)| k.path_and_query()).collect()
    }

    fn index_of(paths: &[&str], now: SystemTime) -> KeyIndex {
        let index = KeyIndex::default();
        for path in paths {
            index.put(&key(path), &entry(now));
        }
        index
    }

    #[test]
    fn pages_follow_the_cursor_to_the_end_in_key_order() {
        let now = SystemTime::now();
        let index = index_of(&["/c", "/a", "/b/2", "/b/1", "/d"], now);
        let mut q = query(2);
        let mut seen = Vec::new();
        loop {
            let page = index.page(&q, now, |_| true);
            assert!(page.entries.len() <= 2);
            assert_eq!(page.total, 5);
            seen.extend(paths(&page).into_iter().map(str::to_owned));
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["/a", "/b/1", "/b/2", "/c", "/d"]);
    }

    #[test]
    fn a_prefix_is_one_range_and_ends_the_listing() {
        let now = SystemTime::now();
        let index = index_of(&["/a", "/blog/x", "/blog/y", "/blogroll", "/c"], now);
        let mut q = query(10);
        q.prefix = Some("/blog/".to_owned());
        let page = index.page(&q, now, |_| true);
        assert_eq!(paths(&page), ["/blog/x", "/blog/y"]);
        assert_eq!(page.next, None);
        assert_eq!(page.scanned, 2, "keys outside the prefix are not examined");

        q.after = Some(key("/blog/x"));
        assert_eq!(paths(&index.page(&q, now, |_| true)), ["/blog/y"]);
        q.after = Some(key("/a"));
        assert_eq!(
            paths(&index.page(&q, now, |_| true)),
            ["/blog/x", "/blog/y"],
            "a cursor before the prefix starts at the prefix"
        );
    }

    #[test]
    fn a_full_page_at_the_end_of_the_range_has_no_next_cursor() {
        let now = SystemTime::now();
        let index = index_of(&["/a/1", "/a/2", "/b"], now);
        let mut q = query(2);
        q.prefix = Some("/a/".to_owned());
        let page = index.page(&q, now, |_| true);
        assert_eq!(paths(&page), ["/a/1", "/a/2"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_state_filter_examines_at_most_the_scan_budget() {
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let now = SystemTime::now();
        let index = KeyIndex::default();
        for i in 0..MAX_SCAN + 5 {
            index.put(&key(&format!("/p/{i:06}")), &entry(now));
        }
        index.put(&key("/z/old"), &entry(long_ago));
        let mut q = query(10);
        q.state = Some(Freshness::Expired);
        let page = index.page(&q, now, |_| true);
        assert!(page.entries.is_empty());
        assert_eq!(page.scanned, MAX_SCAN);
        let next = page.next.expect("a cursor to go on from");
        q.after = Some(next);
        let page = index.page(&q, now, |_| true);
        assert_eq!(paths(&page), ["/z/old"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn eviction_of_a_replaced_entry_keeps_the_newer_one() {
        let now = SystemTime::now();
        let index = KeyIndex::default();
        let (old, new) = (entry(now), entry(now));
        index.put(&key("/a"), &old);
        index.put(&key("/a"), &new);
        assert!(
            !index.remove_if_same(&key("/a"), &old),
            "a late notification for the old entry"
        );
        assert!(index.get(&key("/a")).is_some_and(|e| Arc::ptr_eq(&e, &new)));
        assert!(index.remove_if_same(&key("/a"), &new));
        assert_eq!(index.len(), 0);
    }

    /// Keys once ordered without their host: two sites' pages at one path were one key of the index, so the
    /// listing showed one of them and a prefix could reach only one.
    #[test]
    fn two_sites_pages_at_one_path_are_two_keys() {
        let now = SystemTime::now();
        let index = KeyIndex::default();
        let on = |host| CacheKey::on_host(Some(host), "/blog/a", None, Vec::new());
        index.put(&on("a.example.com"), &entry(now));
        index.put(&on("b.example.com"), &entry(now));
        index.put(&key("/blog/a"), &entry(now));
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn a_prefix_run_is_read_in_chunks_and_skips_other_sites() {
        let now = SystemTime::now();
        let index = index_of(
            &["/blog", "/blog-old", "/blog/a", "/blog/b", "/blog/c", "/blogroll"],
            now,
        );
        index.put(
            &CacheKey::on_host(Some("news.example.com"), "/blog/b", None, Vec::new()),
            &entry(now),
        );
        let prefix = PathPrefix::new(None, "/blog");
        let runs = prefix.runs();
        let (exact, next) = index.run_chunk(&prefix, &runs[0], None, 10);
        assert_eq!((exact.len(), next), (1, None), "the page itself, not /blog-old");

        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let (chunk, next) = index.run_chunk(&prefix, &runs[1], after.as_ref(), 2);
            assert!(chunk.len() <= 2);
            seen.extend(chunk.into_iter().map(|(k, _)| k.to_string()));
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["/blog/a", "/blog/b", "/blog/c"],
            "another site's /blog/b is skipped"
        );
        let (query, _) = index.run_chunk(&prefix, &runs[2], None, 10);
        assert!(query.is_empty());
    }

    #[test]
    fn keys_moka_no_longer_holds_are_skipped() {
        let now = SystemTime::now();
        let index = index_of(&["/a", "/b", "/c"], now);
        let page = index.page(&query(10), now, |k| k.path() != "/b");
        assert_eq!(paths(&page), ["/a", "/c"]);
    }
}
