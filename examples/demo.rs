//! The one-command live demo: the demo origin on 127.0.0.1:8080 and isr-proxy on 127.0.0.1:3000 in front of it,
//! configured by `examples/demo.toml`.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Then follow the curl commands it prints: MISS, HIT, STALE after 10 s, HIT with a new render, pass-through.
//! Proxy logs go to stderr (`RUST_LOG`, default `isr_proxy=debug`); origin renders are printed to stdout.

#[path = "common/demo_origin_app.rs"]
mod demo_origin_app;

use std::net::SocketAddr;
use std::process::ExitCode;

use demo_origin_app::{DEFAULT_DELAY, DEFAULT_LISTEN, DemoOrigin, POSTS};
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

/// The demo config, found wherever the demo is started from.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.toml");

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("isr_proxy=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = match Config::load(CONFIG) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let origin_addr: SocketAddr = DEFAULT_LISTEN.parse().expect("DEFAULT_LISTEN is a socket address");
    if config.origin.url.authority().map(|a| a.as_str()) != Some(DEFAULT_LISTEN) {
        eprintln!("error: {CONFIG}: origin.url must point at the demo origin, http://{DEFAULT_LISTEN}");
        return ExitCode::FAILURE;
    }
    let (origin_listener, proxy_listener) = match (bind(origin_addr).await, bind(config.listen).await) {
        (Ok(origin), Ok(proxy)) => (origin, proxy),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };

    let admin_listener = match config.admin.listen {
        Some(addr) => match bind(addr).await {
            Ok(listener) => Some(listener),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };

    let origin = tokio::spawn(DemoOrigin::new(DEFAULT_DELAY).serve(origin_listener));
    let proxy = Proxy::new(&config, Clock::system());
    if let Some(listener) = admin_listener {
        tokio::spawn(isr_proxy::run_admin(listener, proxy.clone(), std::future::pending()));
    }
    print_try_this(config.listen, origin_addr, config.admin.listen);
    let shutdown = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("error: cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    isr_proxy::run(proxy_listener, proxy, shutdown, config.server.shutdown_timeout).await;
    origin.abort();
    println!("demo stopped");
    ExitCode::SUCCESS
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err} (is another demo still running?)"))
}

fn print_try_this(proxy: SocketAddr, origin: SocketAddr, admin: Option<SocketAddr>) {
    let post = format!("http://{proxy}/blog/{}", POSTS[0]);
    println!(
        "
isr-proxy demo
  proxy   http://{proxy}  (config: examples/demo.toml)
  origin  http://{origin}  (each render takes {delay} ms)
  routes  /  revalidate 30s  |  /blog/:slug  revalidate 10s  |  /api/*rest  not cached

Try this in another terminal. `isr` shows the interesting headers; x-demo-render is the origin's render
counter, replayed from the cache:

  isr() {{ curl -si \"$@\" | grep -iE '^(x-isr-cache|age|x-demo-render):'; }}

  isr {post}              # MISS: waits ~1 s for render #1, stores it
  isr {post}              # HIT: instant, same render #1
  sleep 10; isr {post}    # STALE: instant, still render #1; render #2 runs in the background
  sleep 2; isr {post}     # HIT: render #2
  curl -si http://{proxy}/api/time    # BYPASS: /api/* is passed through, never cached

Open http://{proxy}/ in a browser for the index. Ctrl-C to stop.
",
        delay = DEFAULT_DELAY.as_millis(),
    );
    if let Some(admin) = admin {
        println!(
            "Admin listener on http://{admin}. With the binary (cargo build; target/debug/isr-proxy):

  isr-proxy inspect                       # the cached pages
  isr-proxy stats                         # hit ratio, size, regenerations
  curl -X POST http://{origin}/_demo/fail     # the origin starts failing (500); /_demo/recover fixes it
  isr-proxy inspect --path /blog/{post}   # one page, its last regeneration and next retry
  isr-proxy revalidate --path /blog/{post}   # needs ISR_REVALIDATE_TOKEN set here and for the demo
",
            post = POSTS[0],
        );
    }
}
