//! Unit tests of the page store: indexes, ordering of writes, the byte bound.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::*;

fn page(tags: &'static str, body_len: usize) -> Arc<Entry> {
    page_at(tags, body_len, SystemTime::now())
}

/// A page tagged `tags` (none if empty), fresh for 60 s after `generated_at`; shared with `index`'s tests.
pub(super) fn page_at(tags: &'static str, body_len: usize, generated_at: SystemTime) -> Arc<Entry> {
    let mut headers = HeaderMap::new();
    headers.insert("x-isr-tags", HeaderValue::from_static(tags));
    Arc::new(Entry::from_origin(
        StatusCode::OK,
        headers,
        Bytes::from(vec![b'x'; body_len]),
        generated_at,
        Lifetime {
            revalidate: Some(Duration::from_secs(60)),
            expire: Duration::from_secs(60),
        },
        &HeaderName::from_static("x-isr-tags"),
    ))
}

pub(super) fn key(path: &str) -> CacheKey {
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

/// The listing reads the ordered key index, not moka: this catches an index that keeps evicted or purged
/// keys, or loses keys stored again.
#[tokio::test]
async fn the_key_index_follows_evictions_purges_and_re_inserts() {
    let cache = Cache::new(64 * 1024);
    for i in 0..100 {
        cache.insert(key(&format!("/p/{i:03}")), page("t", 2048)).await;
    }
    cache.remove(&key("/p/099")).await;
    cache.insert(key("/p/098"), page("t", 10)).await;
    cache.run_pending_tasks().await;
    let all = ListQuery {
        prefix: None,
        tag: None,
        state: None,
        after: None,
        limit: 1000,
    };
    let listed = cache.list(&all, SystemTime::now());
    assert_eq!(listed.entries.len() as u64, cache.entry_count(), "listing == moka");
    assert_eq!(
        listed.total as u64,
        cache.entry_count(),
        "no evicted key left in the index"
    );
    assert!(listed.entries.iter().all(|(k, _)| cache.entries.contains_key(k)));
    assert!(
        listed.entries.iter().any(|(k, _)| k.path() == "/p/098"),
        "re-inserted key listed"
    );
    assert!(
        !listed.entries.iter().any(|(k, _)| k.path() == "/p/099"),
        "purged key gone"
    );
    let tagged = cache.list(
        &ListQuery {
            tag: Some("t".to_owned()),
            ..all
        },
        SystemTime::now(),
    );
    assert_eq!(tagged.entries.len(), listed.entries.len());
    assert_eq!(tagged.total, listed.entries.len(), "evictions clean the tag's set too");
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
