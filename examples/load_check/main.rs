//! Load checks for the cache's bounds, in one process: an origin that counts its fetches and the most it served
//! at once, isr-proxy in front of it on loopback, and many concurrent HTTP clients.
//!
//! ```text
//! cargo run --release --example load_check -- misses  [PATHS (10000)] [CONCURRENCY (256)]
//! cargo run --release --example load_check -- memory  [PAGES (100000)] [BYTES (8192)]
//! cargo run --release --example load_check -- flood   [URLS (400000)] [MAX_SIZE_MIB (256)]
//! ```
//!
//! - `misses`: every path is requested once, cold, at the given concurrency. Reports origin fetches (must equal
//!   PATHS), client errors, and the origin's peak concurrency (must not exceed `origin.max_connections` = 64).
//! - `memory`: caches PAGES pages of BYTES, then reports resident memory against the payload.
//! - `flood`: requests URLS distinct URLs of 8 KiB through a cache bounded at MAX_SIZE_MIB and samples resident
//!   memory as it goes: once the bound is reached it must stay flat.
//!
//! Resident memory is this whole process (proxy, origin and clients); the origin and clients hold no pages, so
//! it is an upper bound on the proxy's own.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the origin saw.
#[derive(Default)]
struct OriginStats {
    fetches: AtomicU64,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "misses".to_owned());
    let first: Option<usize> = args.next().map(|a| a.parse()).transpose()?;
    let second: Option<usize> = args.next().map(|a| a.parse()).transpose()?;
    match mode.as_str() {
        "misses" => misses(first.unwrap_or(10_000), second.unwrap_or(256)).await,
        "memory" => memory(first.unwrap_or(100_000), second.unwrap_or(8192)).await,
        "flood" => flood(first.unwrap_or(400_000), second.unwrap_or(256)).await,
        other => Err(format!("unknown mode {other}: misses | memory | flood").into()),
    }
}

async fn misses(paths: usize, concurrency: usize) -> Result<(), Error> {
    let (stats, base) = start(2048, Duration::from_millis(5), 1024).await?;
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
    let before = rss_bytes();
    let (stats, base) = start(bytes, Duration::ZERO, 4096).await?;
    let errors = fetch_all(&base, 0..pages, 64).await;
    let after = rss_bytes();
    let payload = (pages * bytes) as f64;
    println!(
        "memory: {pages} pages of {bytes} B cached ({} fetches, {errors} errors): payload {:.0} MiB, resident \
         {:.0} MiB ({:.0} MiB at start), growth / payload = {:.2}",
        stats.fetches.load(Ordering::Relaxed),
        payload / 1048576.0,
        after as f64 / 1048576.0,
        before as f64 / 1048576.0,
        (after - before.min(after)) as f64 / payload,
    );
    Ok(())
}

async fn flood(urls: usize, max_size_mib: usize) -> Result<(), Error> {
    let (_, base) = start(8192, Duration::ZERO, max_size_mib).await?;
    let step = urls / 8;
    for batch in 0..8 {
        let errors = fetch_all(&base, batch * step..(batch + 1) * step, 64).await;
        println!(
            "flood: {:>7} distinct URLs of 8 KiB, max_size {max_size_mib} MiB: resident {:.0} MiB, errors {errors}",
            (batch + 1) * step,
            rss_bytes() as f64 / 1048576.0
        );
    }
    Ok(())
}

/// Starts the counting origin (pages of `bytes`, rendered in `delay`) and the proxy (`max_size` in MiB);
/// returns the origin's counters and the proxy's base URL.
async fn start(bytes: usize, delay: Duration, max_size_mib: usize) -> Result<(Arc<OriginStats>, String), Error> {
    let stats = Arc::new(OriginStats::default());
    let page = Bytes::from(vec![b'x'; bytes]);
    let origin = TcpListener::bind("127.0.0.1:0").await?;
    let origin_addr = origin.local_addr()?;
    let origin_stats = stats.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = origin.accept().await {
            let (stats, page) = (origin_stats.clone(), page.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                    let (stats, page) = (stats.clone(), page.clone());
                    async move {
                        stats.fetches.fetch_add(1, Ordering::Relaxed);
                        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                        stats.peak.fetch_max(now, Ordering::Relaxed);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/octet-stream")
                                .body(Full::new(page))
                                .unwrap_or_default(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let config = Config::from_toml_str(&format!(
        r#"
[origin]
url = "http://{origin_addr}"
timeout = "60s"
queue_timeout = "60s"

[cache]
max_size = "{max_size_mib}MiB"
compress = false

[[route]]
path = "/page/:id"
revalidate = 3600
"#
    ))?;
    let proxy = Proxy::new(&config, Clock::system());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(isr_proxy::run(listener, proxy, std::future::pending(), Duration::ZERO));
    Ok((stats, base))
}

/// GETs `/page/<i>` for every i, `concurrency` at a time; returns the number of failed or non-2xx requests.
async fn fetch_all(base: &str, ids: std::ops::Range<usize>, concurrency: usize) -> usize {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Empty<Bytes>>();
    let next = Arc::new(AtomicUsize::new(ids.start));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, errors, base, end) =
            (client.clone(), next.clone(), errors.clone(), base.to_owned(), ids.end);
        workers.spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= end {
                    break;
                }
                let ok = match format!("{base}/page/{id}").parse() {
                    Ok(uri) => match client.get(uri).await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            ok && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    errors.load(Ordering::Relaxed)
}

/// Resident set size of this process, from /proc (Linux).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
