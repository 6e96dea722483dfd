//! The work of a cache HIT without sockets: `Cache::get` on a warm 8 KiB entry among 1,000, and
//! `response::entry_response` building the client response from it.
//!
//! Run: `cargo bench --bench hit_path -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use isr_proxy::cache::{Cache, CacheKey, Entry, Freshness, Lifetime};
use isr_proxy::response::{CacheStatus, RequestFacts, entry_response};

const ENTRIES: usize = 1_000;
const BODY_BYTES: usize = 8 * 1024;
const WARM_PATH: &str = "/page/500";

/// An origin page as a Next.js app sends it, including the headers `Entry::from_origin` strips.
fn origin_entry(id: usize, generated_at: SystemTime) -> Entry {
    let mut headers = HeaderMap::new();
    let static_headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("x-powered-by", "Next.js"),
        (
            "vary",
            "RSC, Next-Router-State-Tree, Next-Router-Prefetch, Next-Router-Segment-Prefetch, Accept-Encoding",
        ),
        ("date", "Mon, 23 Nov 2026 09:00:00 GMT"),
        ("x-nextjs-cache", "MISS"),
        ("content-length", "8192"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
    ];
    for (name, value) in static_headers {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let tags = HeaderValue::try_from(format!("page, page-{id}")).expect("tags are a valid header value");
    headers.insert(HeaderName::from_static("x-isr-tags"), tags);
    let mut body = format!("<!doctype html><html><body data-page=\"{id}\">").into_bytes();
    body.resize(BODY_BYTES, b'x');
    Entry::from_origin(
        StatusCode::OK,
        headers,
        Bytes::from(body),
        generated_at,
        Lifetime {
            revalidate: Some(Duration::from_secs(3600)),
            expire: Duration::from_secs(24 * 3600),
        },
        &HeaderName::from_static("x-isr-tags"),
    )
}

fn key(path: &str) -> CacheKey {
    CacheKey::new(path, None, Vec::new())
}

fn hit_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let generated_at = SystemTime::now();
    let cache = Cache::new(256 * 1024 * 1024);
    runtime.block_on(async {
        for id in 1..=ENTRIES {
            cache
                .insert(key(&format!("/page/{id}")), Arc::new(origin_entry(id, generated_at)))
                .await;
        }
        cache.run_pending_tasks().await;
    });
    assert_eq!(cache.entry_count(), ENTRIES as u64, "every page fits in the cache");
    let warm = key(WARM_PATH);
    let entry = runtime
        .block_on(cache.get(&warm))
        .expect("the warm page was inserted above");
    assert_eq!(entry.body.len(), BODY_BYTES);
    let now = generated_at + Duration::from_secs(30);
    assert_eq!(entry.freshness(now), Freshness::Fresh, "the warm page is a HIT");
    let age = entry.age(now);
    let no_conditions = RequestFacts::default();

    let mut group = c.benchmark_group("hit_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cache_get", |b| {
        b.to_async(&runtime).iter(|| cache.get(black_box(&warm)));
    });
    group.bench_function("entry_response", |b| {
        b.iter(|| entry_response(black_box(&entry), CacheStatus::Hit, age, &no_conditions));
    });
    group.bench_function("entry_response_304", |b| {
        let revalidating = RequestFacts {
            if_none_match: entry.etag.clone(),
            ..RequestFacts::default()
        };
        b.iter(|| entry_response(black_box(&entry), CacheStatus::Hit, age, &revalidating));
    });
    // Key, lookup, freshness and response together: what a HIT costs past routing and before hyper writes.
    group.bench_function("key_get_freshness_response", |b| {
        b.to_async(&runtime).iter(|| async {
            let key = CacheKey::new(black_box(WARM_PATH), None, Vec::new());
            let entry = cache.get(&key).await?;
            (entry.freshness(now) == Freshness::Fresh)
                .then(|| entry_response(&entry, CacheStatus::Hit, entry.age(now), &no_conditions))
        });
    });
    group.finish();
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
