//! The demo origin on its own: a tiny server-rendered "blog" to put isr-proxy in front of.
//!
//! ```text
//! cargo run --example demo_origin -- [--listen 127.0.0.1:8080] [--delay-ms 1000]
//! ```
//!
//! Pages: `/` (index), `/blog/:slug` (tagged `x-isr-tags: blog, post-<slug>`), `/api/time` (JSON). Each page
//! render sleeps `--delay-ms` and shows a per-path render counter. `cargo run --example demo` runs this origin and
//! the proxy together.

#[path = "common/demo_origin_app.rs"]
mod demo_origin_app;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use demo_origin_app::{DEFAULT_DELAY, DEFAULT_LISTEN, DemoOrigin, POSTS};
use tokio::net::TcpListener;

const USAGE: &str = "usage: demo_origin [--listen ADDR] [--delay-ms N]

  --listen ADDR   address to listen on (default 127.0.0.1:8080)
  --delay-ms N    milliseconds each page render takes (default 1000)";

struct Args {
    listen: SocketAddr,
    delay: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        listen: DEFAULT_LISTEN
            .parse()
            .map_err(|err| format!("bad default address: {err}"))?,
        delay: DEFAULT_DELAY,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                parsed.listen = text
                    .parse()
                    .map_err(|err| format!("--listen {text:?}: {err} (expected e.g. 127.0.0.1:8080)"))?;
            }
            "--delay-ms" => {
                let text = value()?;
                let ms: u64 = text
                    .parse()
                    .map_err(|err| format!("--delay-ms {text:?}: {err} (expected milliseconds)"))?;
                parsed.delay = Duration::from_millis(ms);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "demo origin on http://{} ({} ms per render); pages: /, /blog/{}, /api/time",
        args.listen,
        args.delay.as_millis(),
        POSTS[0]
    );
    println!("Ctrl-C to stop");
    tokio::select! {
        () = DemoOrigin::new(args.delay).serve(listener) => {}
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    ExitCode::SUCCESS
}
