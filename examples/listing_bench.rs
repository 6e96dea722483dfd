//! How long one page of the admin listing (`GET /cache`) takes with a million pages in memory, with and without
//! filters, against the full scan it replaces.
//!
//! ```text
//! cargo run --release --example listing_bench -- [ENTRIES=1000000]
//! ```
//!
//! Fills the cache with small pages `/p/<n>` (every 10th tagged `t-<n % 100>`, every 1000th stale), then times
//! pages of 100: the first, one from the middle (cursor), by prefix, by tag, by tag and prefix, by state (rare
//! and absent), and, for comparison, a scan of every key for a prefix's first page (the least a listing without
//! the index would cost). Reports the median of repeated runs; `Cache::list` is what the endpoint runs, minus
//! JSON and the tier checks.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use isr_proxy::cache::{Cache, CacheKey, Entry, Freshness, Lifetime, ListQuery};

const PAGE: usize = 100;
const RUNS: usize = 31;

fn entry(i: usize, generated_at: SystemTime) -> Arc<Entry> {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    if i.is_multiple_of(10) {
        let tags =
            HeaderValue::try_from(format!("blog, t-{}", i / 10 % 100)).unwrap_or(HeaderValue::from_static("blog"));
        headers.insert("x-isr-tags", tags);
    }
    Arc::new(Entry::from_origin(
        StatusCode::OK,
        headers,
        Bytes::from(format!("<p>page {i}</p>")),
        generated_at,
        Lifetime {
            revalidate: Some(Duration::from_secs(60)),
            expire: Duration::from_secs(365 * 24 * 3600),
        },
        &HeaderName::from_static("x-isr-tags"),
    ))
}

fn query() -> ListQuery {
    ListQuery {
        prefix: None,
        tag: None,
        state: None,
        after: None,
        limit: PAGE,
    }
}

/// Median time of `run`, and what its last run returned.
fn time<T>(mut run: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        last = Some(run());
        times.push(started.elapsed());
    }
    times.sort();
    (times[RUNS / 2], last.expect("at least one run"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let entries: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n >= 2_000 => n,
        Some(_) => {
            eprintln!("usage: listing_bench [ENTRIES >= 2000]");
            return ExitCode::FAILURE;
        }
    };
    let cache = Cache::new(64 << 30);
    let now = SystemTime::now();
    let long_ago = now - Duration::from_secs(3600);
    let started = Instant::now();
    let mut all_keys = Vec::with_capacity(entries);
    for i in 0..entries {
        let generated_at = if i % 1000 == 7 { long_ago } else { now };
        let key = CacheKey::new(&format!("/p/{i}"), None, Vec::new());
        all_keys.push(key.clone());
        cache.insert(key, entry(i, generated_at)).await;
    }
    cache.run_pending_tasks().await;
    println!(
        "{} pages in memory ({} MiB as weighed), filled in {:.1} s\n",
        cache.entry_count(),
        cache.weighted_size() >> 20,
        started.elapsed().as_secs_f64()
    );

    let middle = CacheKey::new(&format!("/p/{}", entries / 2), None, Vec::new());
    let cases: Vec<(&str, ListQuery)> = vec![
        ("first page", query()),
        (
            "page after a cursor (middle)",
            ListQuery {
                after: Some(middle),
                ..query()
            },
        ),
        (
            "prefix=/p/5",
            ListQuery {
                prefix: Some("/p/5".to_owned()),
                ..query()
            },
        ),
        (
            "tag=t-42",
            ListQuery {
                tag: Some("t-42".to_owned()),
                ..query()
            },
        ),
        (
            "tag=blog&prefix=/p/9",
            ListQuery {
                tag: Some("blog".to_owned()),
                prefix: Some("/p/9".to_owned()),
                ..query()
            },
        ),
        (
            "state=stale (1 in 1000)",
            ListQuery {
                state: Some(Freshness::Stale),
                ..query()
            },
        ),
        (
            "state=expired (none)",
            ListQuery {
                state: Some(Freshness::Expired),
                ..query()
            },
        ),
    ];
    println!(
        "{:<30} {:>10} {:>8} {:>9} {:>6}",
        "page of 100", "median", "listed", "examined", "next?"
    );
    for (name, list) in &cases {
        let (median, page) = time(|| cache.list(list, now));
        println!(
            "{:<30} {:>7} µs {:>8} {:>9} {:>6}",
            name,
            median.as_micros(),
            page.entries.len(),
            page.scanned,
            if page.next.is_some() { "yes" } else { "no" }
        );
    }
    // What a listing without an ordered index costs at least: every key looked at (here in a plain Vec, cheaper
    // than iterating moka) and the matches sorted, to find one page.
    let (median, found) = time(|| {
        let mut found: Vec<&CacheKey> = all_keys
            .iter()
            .filter(|key| key.path_and_query().starts_with("/p/5"))
            .collect();
        found.sort();
        found.truncate(PAGE);
        found.len()
    });
    println!(
        "{:<30} {:>7} µs {:>8} {:>9}   (no index: a full scan)",
        "prefix=/p/5 by scanning",
        median.as_micros(),
        found,
        all_keys.len()
    );
    ExitCode::SUCCESS
}
