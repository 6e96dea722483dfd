//! Hit cost against the number of cached pages: the same wrk load on 1k, 10k, 100k and 1M pages in memory, to show
//! that a HIT costs the same CPU however many pages the cache holds (front map and moka stay O(1)).
//!
//! ```text
//! cargo run --release --example page_count -- [PAGES (1000,10000,100000,1000000)] [BYTES (2048)] [SECONDS (5)] [ROUNDS (3)]
//! ```
//!
//! For each page count, in one process: a proxy whose cache is filled directly with that many pages of BYTES
//! (`/page/1..N`, fresh for an hour, no origin: a miss would be a 502 and counted), served on loopback, and
//! `wrk -t1 -c64` cycling through all N paths in order, so every page is requested once per N requests (at 1M,
//! nearly every lookup misses the CPU caches, as on a real large site), ROUNDS times; the table shows
//! medians. `µs/req` is this process's CPU time (user + system, from /proc/self/stat) over the requests: the
//! proxy's alone, wrk runs in its own process. Needs `wrk` (`apt-get install -y wrk`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

#[path = "common/pages.rs"]
mod pages;
use pages::fresh_page;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The binary's allocator (see `src/main.rs`), so that costs are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// wrk script: cycle through `/page/1..PATHS` and print the totals in one parseable line.
const WRK_SCRIPT: &str = r#"
local k = tonumber(os.getenv("PATHS"))
local reqs, i = {}, 0
function init(args) for n = 1, k do reqs[n] = wrk.format("GET", "/page/" .. n) end end
function request() i = i % k + 1; return reqs[i] end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKSTATS %d %d %d %d\n", summary.requests, latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;

/// One page count's figures, per round.
#[derive(Default)]
struct Sample {
    req_s: Vec<f64>,
    us_per_req: Vec<f64>,
    p99_ms: Vec<f64>,
    errors: u64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let counts: Vec<usize> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1_000, 10_000, 100_000, 1_000_000],
    };
    let bytes: usize = args.next().map_or(Ok(2048), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let script = std::env::temp_dir().join(format!("isr-page-count-{}.lua", std::process::id()));
    std::fs::write(&script, WRK_SCRIPT)?;
    let result = measure_all(&counts, bytes, seconds, rounds, &script).await;
    let _ = std::fs::remove_file(&script);
    result
}

async fn measure_all(counts: &[usize], bytes: usize, seconds: u64, rounds: usize, script: &Path) -> Result<(), Error> {
    println!("{bytes}-byte pages, wrk -t1 -c64 -d{seconds}s cycling through every page, {rounds} rounds");
    println!(
        "{:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "pages", "req/s", "µs/req", "p99 ms", "vs first", "errors"
    );
    let mut first = None;
    for &pages in counts {
        let proxy = filled_proxy(pages, bytes).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(isr_proxy::run(
            listener,
            proxy,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        let mut sample = Sample::default();
        for _ in 0..rounds {
            let cpu_before = cpu_time()?;
            let script = script.to_owned();
            let url = format!("http://{addr}/");
            let out = tokio::task::spawn_blocking(move || {
                Command::new("wrk")
                    .args(["-t1", "-c64", &format!("-d{seconds}s"), "-s"])
                    .arg(&script)
                    .arg(&url)
                    .env("PATHS", pages.to_string())
                    .output()
            })
            .await??;
            let cpu = cpu_time()? - cpu_before;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stats = stdout
                .lines()
                .find_map(|line| line.strip_prefix("WRKSTATS "))
                .ok_or_else(|| format!("wrk printed no totals: {}", String::from_utf8_lossy(&out.stderr)))?;
            let fields: Vec<u64> = stats.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
            let [requests, p99_us, socket_errors, status_errors] = fields[..] else {
                return Err(format!("unexpected wrk totals: {stats}").into());
            };
            sample.req_s.push(requests as f64 / seconds as f64);
            sample.us_per_req.push(cpu.as_secs_f64() * 1e6 / requests.max(1) as f64);
            sample.p99_ms.push(p99_us as f64 / 1e3);
            sample.errors += socket_errors + status_errors;
        }
        let _ = stop.send(());
        server.await?;
        let us = median(&mut sample.us_per_req);
        let base = *first.get_or_insert(us);
        println!(
            "{pages:>9} {:>9.0} {us:>8.2} {:>8.2} {:>8.2} {:>7}",
            median(&mut sample.req_s),
            median(&mut sample.p99_ms),
            us / base,
            sample.errors
        );
    }
    Ok(())
}

/// A proxy whose memory tier holds `/page/1..=pages`, each `bytes` long and fresh for an hour.
async fn filled_proxy(pages: usize, bytes: usize) -> Result<Arc<Proxy>, Error> {
    let config = Config::from_toml_str(
        r#"
listen = "127.0.0.1:0"
[origin]
url = "http://127.0.0.1:9"
[cache]
max_size = "8GiB"
[[route]]
path = "/page/:id"
revalidate = 3600
"#,
    )?;
    let proxy = Proxy::new(&config, Clock::system());
    let body = Bytes::from(vec![b'x'; bytes]);
    for id in 1..=pages {
        let (key, entry) = fresh_page(&format!("/page/{id}"), body.clone());
        proxy.cache().insert(key, Arc::new(entry)).await;
    }
    Ok(proxy)
}

/// CPU time this process has used (user + system), from `/proc/self/stat` in clock ticks of 10 ms.
fn cpu_time() -> Result<Duration, Error> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at ") "; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").ok_or("malformed /proc/self/stat")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> Result<u64, Error> { Ok(fields.next().ok_or("short /proc/self/stat")?.parse()?) };
    let ticks = next()? + next()?;
    Ok(Duration::from_millis(ticks * 10))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
