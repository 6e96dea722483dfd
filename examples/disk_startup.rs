//! Startup benchmark for the disk tier: how soon a restarted proxy serves its first persisted page, and how long
//! indexing all of them takes, next to loading every page into memory up front (the eager alternative).
//!
//! ```text
//! cargo run --release --example disk_startup -- [PAGES (100000)] [BYTES (8192)]
//! ```
//!
//! It writes PAGES entries of BYTES into a fresh temp directory (setup, not measured), then measures, each from a
//! cold process state (the OS page cache stays warm, as after a restart of the process alone):
//! 1. lazy (what isr-proxy does): proxy start → first HIT over HTTP, and → the background index scan finished;
//!    meanwhile clients request random persisted pages, to show that the scan does not hold requests up;
//! 2. eager: read, decode and insert every file into the in-memory cache before serving.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use isr_proxy::cache::Cache;
use isr_proxy::cache::store::{codec, disk};
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

#[path = "common/measure.rs"]
mod measure;
#[path = "common/pages.rs"]
mod pages;
use measure::{Percentiles, mib, peak_rss_bytes, rss_bytes, spawn_hitters};
use pages::fresh_page;

/// Clients requesting random persisted pages while the index scan runs, each one request at a time.
const CLIENTS_DURING_SCAN: usize = 4;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The binary's allocator (see `src/main.rs`), so that memory and timings are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let pages: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let bytes: usize = args.next().map_or(Ok(8192), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("isr-disk-startup-{}", std::process::id()));
    let result = run(&dir, pages, bytes).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &Path, pages: usize, bytes: usize) -> Result<(), Error> {
    let started = Instant::now();
    populate(&dir.join("default"), pages, bytes)?;
    println!(
        "setup: wrote {pages} pages of {bytes} B in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let config = Config::from_toml_str(&format!(
        r#"
listen = "127.0.0.1:0"
[origin]
url = "http://127.0.0.1:9"
[cache]
max_size = "4GiB"
max_entry_size = "1MiB"
dir = "{}"
max_disk_size = "100GiB"
[[route]]
path = "/page/:id"
revalidate = 3600
"#,
        dir.display()
    ))?;

    // Lazy: serve at once, index in the background.
    let started = Instant::now();
    let proxy = Proxy::new(&config, Clock::system());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(isr_proxy::run(
        listener,
        proxy.clone(),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let status = first_hit(addr, pages / 2).await?;
    let first_hit_ms = started.elapsed().as_secs_f64() * 1e3;
    let stop_clients = Arc::new(AtomicBool::new(false));
    let clients = spawn_hitters(CLIENTS_DURING_SCAN, &stop_clients, move |client, n| {
        format!("http://{addr}/page/{}", random_below(pages, client, n))
    });
    proxy.cache().flush().await; // queued after the scan: returns when indexing is done
    let indexed_s = started.elapsed().as_secs_f64();
    stop_clients.store(true, Ordering::Relaxed);
    let (samples, not_hits) = clients.await?;
    println!("lazy:  first HIT after {first_hit_ms:.1} ms ({status}); all {pages} indexed after {indexed_s:.2} s");
    println!(
        "lazy:  during the scan, {CLIENTS_DURING_SCAN} clients on random pages: {} ({not_hits} not HIT); resident \
         {:.0} MiB (peak {:.0} MiB)",
        Percentiles::of(samples.into_iter().map(|(_, took)| took).collect()),
        mib(rss_bytes() as f64),
        mib(peak_rss_bytes() as f64),
    );
    let _ = stop.send(());
    server.await?;

    // Eager: everything in memory before the first request.
    let started = Instant::now();
    let cache = Cache::new(4 << 30);
    let mut loaded = 0usize;
    for shard in std::fs::read_dir(dir.join("default"))? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(shard)? {
            let (key, entry) = codec::decode(&std::fs::read(file?.path())?)?;
            cache.insert(key, Arc::new(entry)).await;
            loaded += 1;
        }
    }
    println!(
        "eager: {loaded} pages loaded before serving after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn populate(root: &Path, pages: usize, bytes: usize) -> Result<(), Error> {
    let body = Bytes::from(vec![b'x'; bytes]);
    for id in 0..pages {
        let (key, entry) = fresh_page(&format!("/page/{id}"), body.clone());
        let path = disk::file_path(root, &key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, codec::encode(&key, &entry))?;
    }
    Ok(())
}

/// A page id below `pages` for `client`'s n-th request, spread over all of them (splitmix64 of both).
fn random_below(pages: usize, client: usize, n: u64) -> u64 {
    let mut z = ((client as u64) << 40 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % pages.max(1) as u64
}

async fn first_hit(addr: SocketAddr, id: usize) -> Result<String, Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(format!("http://{addr}/page/{id}").parse()?).await?;
    let cache = response
        .headers()
        .get("x-isr-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    response.into_body().collect().await?;
    if cache != "HIT" {
        return Err(format!("expected a HIT for a persisted page, got {cache}").into());
    }
    Ok(cache)
}
