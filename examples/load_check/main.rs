//! Load checks for the cache's bounds, in one process: an origin that counts its fetches and the most it served
//! at once, isr-proxy in front of it on loopback, and many concurrent HTTP clients.
//!
//! ```text
//! cargo run --release --example load_check -- misses  [PATHS (10000)] [CONCURRENCY (256)]
//! cargo run --release --example load_check -- memory  [PAGES (100000)] [BYTES (8192)]
//! cargo run --release --example load_check -- flood   [URLS (400000)] [MAX_SIZE_MIB (256)]
//! cargo run --release --example load_check -- fill    [PAGES (1000)] [BYTES (65536)] [CONCURRENCY (64)] [on|off]
//! cargo run --release --example load_check -- tags    [TAGGED (100000)] [OTHERS (10000)]
//! ```
//!
//! - `misses`: every path is requested once, cold, at the given concurrency. Reports origin fetches (must equal
//!   PATHS), client errors, and the origin's peak concurrency (must not exceed `origin.max_connections` = 64).
//! - `memory`: caches PAGES pages of BYTES, then reports resident memory against the payload, and the memory
//!   each entry costs beyond its body: (resident after − resident before filling − payload) / PAGES.
//! - `flood`: requests URLS distinct URLs of 8 KiB through a cache bounded at MAX_SIZE_MIB and samples resident
//!   memory as it goes: once the bound is reached it must stay flat.
//! - `fill`: caches PAGES HTML pages of BYTES at CONCURRENCY, compressed (`cache.compress`, `on` by default) or
//!   not, and reports the peak resident memory while filling (`VmHWM`) against the payload and what is stored.
//! - `tags`: caches TAGGED pages carrying one tag and OTHERS untagged ones, then marks the tag stale through
//!   `POST /_isr/revalidate?tag=` while clients hit the untagged pages: the endpoint's answer time, and the hits'
//!   latency during the call against before it. The token is `ISR_REVALIDATE_TOKEN` if set, else a temporary
//!   token file.
//!
//! Resident memory is this whole process (proxy, origin and clients), with the binary's allocator (jemalloc);
//! the origin and clients hold no pages, so it is an upper bound on the proxy's own.

mod harness;
#[path = "../common/measure.rs"]
mod measure;
mod tags;

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use harness::{OriginPages, ProxySettings, fetch_all, start};
use measure::{mib, peak_rss_bytes, rss_bytes};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The binary's allocator (see `src/main.rs`), so that memory and timings are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("misses", String::as_str);
    let number = |i: usize, default: usize| -> Result<usize, Error> {
        Ok(args.get(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    match mode {
        "misses" => misses(number(1, 10_000)?, number(2, 256)?).await,
        "memory" => memory(number(1, 100_000)?, number(2, 8192)?).await,
        "flood" => flood(number(1, 400_000)?, number(2, 256)?).await,
        "fill" => {
            let compress = match args.get(4).map_or("on", String::as_str) {
                "on" => true,
                "off" => false,
                other => return Err(format!("compression is on or off, not {other}").into()),
            };
            fill(number(1, 1000)?, number(2, 65536)?, number(3, 64)?, compress).await
        }
        "tags" => tags::tags(number(1, 100_000)?, number(2, 10_000)?).await,
        other => Err(format!("unknown mode {other}: misses | memory | flood | fill | tags").into()),
    }
}

async fn misses(paths: usize, concurrency: usize) -> Result<(), Error> {
    let mut pages = OriginPages::plain(2048);
    pages.delay = std::time::Duration::from_millis(5);
    let (stats, _, base) = start(pages, &ProxySettings::uncompressed(1024)).await?;
    let started = Instant::now();
    let errors = fetch_all(&base, 0..paths, concurrency).await;
    println!(
        "misses: {paths} cold paths at concurrency {concurrency} in {:.2} s: origin fetches {}, errors {errors}, \
         origin peak concurrency {} (origin.max_connections = 64)",
        started.elapsed().as_secs_f64(),
        stats.fetches.load(Ordering::Relaxed),
        stats.peak.load(Ordering::Relaxed),
    );
    Ok(())
}

async fn memory(pages: usize, bytes: usize) -> Result<(), Error> {
    let at_start = rss_bytes();
    let (stats, proxy, base) = start(OriginPages::plain(bytes), &ProxySettings::uncompressed(4096)).await?;
    let before = rss_bytes();
    let errors = fetch_all(&base, 0..pages, 64).await;
    let after = rss_bytes();
    let payload = (pages * bytes) as f64;
    let growth = after.saturating_sub(before) as f64;
    proxy.cache().run_pending_tasks().await;
    println!(
        "memory: {pages} pages of {bytes} B cached ({} fetches, {errors} errors): payload {:.0} MiB, resident \
         {:.0} MiB ({:.0} MiB at start, {:.0} MiB before filling), growth / payload = {:.2}, overhead per entry \
         beyond its body {:.0} B (the cache weighs {:.0} B per entry)",
        stats.fetches.load(Ordering::Relaxed),
        mib(payload),
        mib(after as f64),
        mib(at_start as f64),
        mib(before as f64),
        growth / payload,
        (growth - payload) / pages as f64,
        proxy.cache().weighted_size() as f64 / proxy.cache().entry_count().max(1) as f64 - bytes as f64,
    );
    Ok(())
}

async fn flood(urls: usize, max_size_mib: usize) -> Result<(), Error> {
    let (_, _, base) = start(OriginPages::plain(8192), &ProxySettings::uncompressed(max_size_mib)).await?;
    let step = urls / 8;
    for batch in 0..8 {
        let errors = fetch_all(&base, batch * step..(batch + 1) * step, 64).await;
        println!(
            "flood: {:>7} distinct URLs of 8 KiB, max_size {max_size_mib} MiB: resident {:.0} MiB, errors {errors}",
            (batch + 1) * step,
            mib(rss_bytes() as f64)
        );
    }
    Ok(())
}

async fn fill(pages: usize, bytes: usize, concurrency: usize, compress: bool) -> Result<(), Error> {
    let origin = OriginPages {
        body: html_like(bytes),
        content_type: "text/html; charset=utf-8",
        delay: std::time::Duration::ZERO,
        tagged_below: 0,
    };
    let settings = ProxySettings {
        compress,
        ..ProxySettings::uncompressed(4096)
    };
    let body = origin.body.clone();
    let (stats, proxy, base) = start(origin, &settings).await?;
    if compress {
        compressor_peaks(&body).await?;
    }
    let before = rss_bytes();
    let peak_before = peak_rss_bytes();
    let started = Instant::now();
    let errors = fetch_all(&base, 0..pages, concurrency).await;
    let elapsed = started.elapsed();
    let peak = peak_rss_bytes();
    proxy.cache().run_pending_tasks().await;
    let after = rss_bytes();
    let payload = (pages * bytes) as f64;
    let stored = proxy.cache().weighted_size() as f64;
    let peak_growth = peak.saturating_sub(before) as f64;
    println!(
        "fill: {pages} HTML pages of {bytes} B at concurrency {concurrency}, compress {} ({} fetches, {errors} \
         errors, {:.1} s): payload {:.1} MiB, stored {:.1} MiB (with compressed forms); resident before {:.0} MiB \
         (peak {:.0} MiB), peak while filling {:.0} MiB = before + {:.1} MiB = {:.2} x payload, {:.1} MiB beyond \
         1.3 x payload; resident after {:.0} MiB (before + {:.1} MiB)",
        if compress { "on" } else { "off" },
        stats.fetches.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        mib(payload),
        mib(stored),
        mib(before as f64),
        mib(peak_before as f64),
        mib(peak as f64),
        mib(peak_growth),
        peak_growth / payload,
        mib(peak_growth - 1.3 * payload),
        mib(after as f64),
        mib(after.saturating_sub(before) as f64),
    );
    Ok(())
}

/// Compresses `body` as the proxy does (on the blocking pool), once alone and then twice at once (the bound is
/// one per core), and prints how far each raised the process's peak: the compressors' share of a fill's peak.
async fn compressor_peaks(body: &Bytes) -> Result<(), Error> {
    let start = peak_rss_bytes().max(rss_bytes());
    let one = body.clone();
    tokio::task::spawn_blocking(move || isr_proxy::compression::compress(&one)).await?;
    let after_one = peak_rss_bytes();
    let (a, b) = (body.clone(), body.clone());
    let first = tokio::task::spawn_blocking(move || isr_proxy::compression::compress(&a));
    let second = tokio::task::spawn_blocking(move || isr_proxy::compression::compress(&b));
    first.await?;
    second.await?;
    let after_two = peak_rss_bytes();
    println!(
        "fill: compressing one page of {} B raised the peak by {:.1} MiB, two at once by {:.1} MiB more",
        body.len(),
        mib(after_one.saturating_sub(start) as f64),
        mib(after_two.saturating_sub(after_one) as f64),
    );
    Ok(())
}

/// `bytes` of HTML-like text: words from a small vocabulary in pseudo-random order, so that it compresses
/// about as well as a real page (4 to 6 times), not to nothing as one repeated byte would.
fn html_like(bytes: usize) -> Bytes {
    const WORDS: [&str; 24] = [
        "<div class=\"card\">",
        "</div>\n",
        "<p>",
        "</p>",
        "<a href=\"/blog/",
        "\">",
        "</a>",
        "the ",
        "cache ",
        "page ",
        "stale ",
        "while ",
        "revalidate ",
        "origin ",
        "render ",
        "<span>",
        "</span>",
        "2026-11-29 ",
        "price ",
        "42 ",
        "items ",
        "user ",
        "&amp; ",
        "data-id=\"",
    ];
    let mut text = Vec::with_capacity(bytes + 32);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while text.len() < bytes {
        // xorshift64: deterministic, dependency-free.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = WORDS[(state % WORDS.len() as u64) as usize];
        text.extend_from_slice(word.as_bytes());
        if state.is_multiple_of(7) {
            text.extend_from_slice(format!("{}", state % 100_000).as_bytes());
        }
    }
    text.truncate(bytes);
    Bytes::from(text)
}
