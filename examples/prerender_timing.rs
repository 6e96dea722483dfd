//! Startup prerendering benchmark: how long isr-proxy takes to render N listed paths into its cache before it
//! accepts connections, against the demo origin with a fixed render time.
//!
//! ```text
//! cargo run --release --example prerender_timing -- [PATHS (1000)] [RENDER_MS (20)] [CONCURRENCY (8)] > /dev/null
//! ```
//!
//! The result goes to stderr (stdout carries the origin's per-render lines). The floor is
//! PATHS × RENDER_MS / CONCURRENCY.

#[path = "common/demo_origin_app.rs"]
#[allow(dead_code)] // shared with the demo; this benchmark uses only the app itself
mod demo_origin_app;

use std::time::{Duration, Instant};

use demo_origin_app::DemoOrigin;
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let paths: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let render_ms: u64 = args.next().map_or(Ok(20), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(8), |a| a.parse())?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let origin = listener.local_addr()?;
    tokio::spawn(DemoOrigin::new(Duration::from_millis(render_ms)).serve(listener));

    let listed: Vec<String> = (0..paths).map(|i| format!("\"/blog/post-{i}\"")).collect();
    let config = Config::from_toml_str(&format!(
        r#"
[origin]
url = "http://{origin}"
max_connections = {concurrency}

[prerender]
concurrency = {concurrency}
wait = true

[[route]]
path = "/blog/:slug"
revalidate = 60
prerender = [{}]
"#,
        listed.join(", ")
    ))?;
    let proxy = Proxy::new(&config, Clock::system());
    let started = Instant::now();
    proxy.start().await;
    let elapsed = started.elapsed();
    proxy.cache().run_pending_tasks().await;
    let floor = Duration::from_millis(render_ms * paths as u64 / concurrency.max(1) as u64);
    eprintln!(
        "prerendered {} of {paths} paths ({render_ms} ms renders, concurrency {concurrency}) in {:.2} s (floor {:.2} s)",
        proxy.cache().entry_count(),
        elapsed.as_secs_f64(),
        floor.as_secs_f64()
    );
    Ok(())
}
