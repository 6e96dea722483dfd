//! Where the memory of a cached page goes, part by part, without HTTP in the way: the per-entry overhead of
//! `load_check -- memory` split into the entry (headers, ETag, the `Entry` itself), its key, and the cache's
//! indexes (moka, the front map the hits read, the ordered key index).
//!
//! ```text
//! cargo run --release --example entry_memory -- [PAGES (1000000)] [BYTES (2048)]
//! ```
//!
//! Each step's growth in resident memory is divided by PAGES. The headers are those the example origin of
//! `load_check` sends (`content-type`, `content-length`, `date`), as hyper hands them over.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use isr_proxy::cache::{Cache, CacheKey, Entry, Lifetime};

#[path = "common/measure.rs"]
#[allow(dead_code)] // its latency percentiles are for the load examples
mod measure;
use measure::{mib, peak_rss_bytes, rss_bytes};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The binary's allocator (see `src/main.rs`), so that memory figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let pages: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let bytes: usize = args.next().map_or(Ok(2048), |a| a.parse())?;
    let per_entry = |from: u64, to: u64| (to.saturating_sub(from) as f64) / pages as f64;

    let start = rss_bytes();
    let bodies: Vec<Bytes> = (0..pages).map(|_| Bytes::from(vec![b'x'; bytes])).collect();
    let after_bodies = rss_bytes();

    let tags_header = HeaderName::from_static("x-isr-tags");
    let lifetime = Lifetime {
        revalidate: Some(Duration::from_secs(3600)),
        expire: Duration::from_secs(86_400),
    };
    let length = HeaderValue::from(bytes);
    let date = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))?;
    let entries: Vec<Arc<Entry>> = bodies
        .into_iter()
        .map(|body| {
            let mut headers = HeaderMap::with_capacity(3);
            headers.insert("content-type", HeaderValue::from_static("application/octet-stream"));
            headers.insert("content-length", length.clone());
            headers.insert("date", date.clone());
            let entry = Entry::from_origin(StatusCode::OK, headers, body, SystemTime::now(), lifetime, &tags_header);
            Arc::new(entry)
        })
        .collect();
    let after_entries = rss_bytes();

    let keys: Vec<CacheKey> = (0..pages)
        .map(|id| CacheKey::new(&format!("/page/{id}"), None, Vec::new()))
        .collect();
    let after_keys = rss_bytes();

    let cache = Cache::new(u64::MAX / 2);
    for (key, entry) in keys.iter().zip(&entries) {
        cache.insert(key.clone(), entry.clone()).await;
    }
    cache.run_pending_tasks().await;
    let after_cache = rss_bytes();

    let (headers, capacity) = entries
        .first()
        .map(|e| (e.headers.len(), e.headers.capacity()))
        .unwrap_or_default();
    println!(
        "entry_memory: {pages} pages of {bytes} B ({} in the cache); bytes per page beyond its body:\n  \
         body allocations:       {:>6.0} (resident {:.0} MiB for {:.0} MiB of bodies)\n  \
         entry (Arc<Entry> of {} B inline; {headers} headers in a map sized for {capacity}; ETag): {:>6.0}\n  \
         key (CacheKey):         {:>6.0}\n  \
         cache indexes (moka, front map, key index): {:>6.0}\n  \
         total:                  {:>6.0} (the cache weighs {:.0}); peak resident {:.0} MiB",
        cache.entry_count(),
        per_entry(start, after_bodies) - bytes as f64,
        mib(after_bodies.saturating_sub(start) as f64),
        mib((pages * bytes) as f64),
        std::mem::size_of::<Entry>(),
        per_entry(after_bodies, after_entries),
        per_entry(after_entries, after_keys),
        per_entry(after_keys, after_cache),
        per_entry(start, after_cache) - bytes as f64,
        cache.weighted_size() as f64 / pages as f64 - bytes as f64,
        mib(peak_rss_bytes() as f64),
    );
    Ok(())
}
