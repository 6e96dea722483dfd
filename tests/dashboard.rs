//! The admin dashboard in a real browser: headless Chromium (Debian's `chromium`, driven by `puppeteer-core`
//! from `tests/dashboard/`) loads the page from an admin listener after known traffic, and checks what a person
//! would: the figures equal `/stats`, a page past its `revalidate` shows as stale, the state filter and an
//! entry's detail work, and a Revalidate click regenerates the page, only with the right token and never on a
//! proxy without one. The checks are `tests/dashboard/check.mjs`; this file starts the origin, the proxies and
//! the traffic, runs it with node and checks the origin's render counts.
//!
//! Needs node, npm and `/usr/bin/chromium` (`.ci/run` installs them); without them the test fails and says so.
//! `ISR_SKIP_BROWSER=1` skips it with a notice, for developers without Chromium. `npm install` runs here when
//! `tests/dashboard/node_modules` is missing.
//!
//! `ISR_DASHBOARD_SCREENSHOTS=<dir>` makes it also generate a minute of varied traffic (set
//! `ISR_DASHBOARD_SCREENSHOT_SECONDS` to change that) and write `dashboard-light.png` and `dashboard-dark.png`
//! there: that is how `docs/img/` is made.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::admin::{spawn_admin, spawn_admin_sampling};
use common::{OriginHandle, ProxyHandle, TestOrigin, spawn_proxy, spawn_proxy_with, within};
use http::StatusCode;
use isr_proxy::config::Token;

const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dashboard");
const SKIP_ENV: &str = "ISR_SKIP_BROWSER";
const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "dashboard-t0ken";
/// Bounds one run of the browser script (Chromium starts in about a second; the checks take a few).
const SCRIPT_TIMEOUT_MS: u64 = 120_000;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[cache]
max_size = "2MiB"
max_entry_size = "512KiB"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_figures_and_stale_pages_and_revalidates_on_click_only_with_the_token() {
    if !browser_available() {
        return;
    }
    let origin = TestOrigin::new()
        .header("/blog/new", "x-isr-tags", "news")
        .start()
        .await;
    let proxy = spawn_proxy_with(CONFIG, &origin, |config| config.revalidate.token = Token::new(TOKEN)).await;
    let admin = spawn_admin_sampling(&proxy, Duration::from_millis(200)).await;
    let bare = spawn_proxy(CONFIG, &origin).await;
    let bare_admin = spawn_admin(&bare).await;

    // Known traffic: 3 HIT, 2 MISS, 1 BYPASS; /blog/old past its revalidate time and not requested since.
    for expected in ["MISS", "HIT", "HIT"] {
        assert_eq!(proxy.client.get("/blog/old").await.cache(), expected);
    }
    assert_eq!(proxy.client.get("/other").await.cache(), "BYPASS");
    proxy.clock.advance(Duration::from_secs(61));
    for expected in ["MISS", "HIT"] {
        assert_eq!(proxy.client.get("/blog/new").await.cache(), expected);
    }
    let expect = serde_json::json!({
        "requests": { "HIT": 3, "MISS": 2, "BYPASS": 1, "STALE": 0 },
        "stale": "/blog/old",
        "fresh": "/blog/new",
        "tag": "news",
    });
    let env = [
        ("ADMIN_URL", admin.url()),
        ("BARE_ADMIN_URL", bare_admin.url()),
        ("PROXY_URL", format!("http://{}", proxy.addr)),
        ("TOKEN", TOKEN.to_owned()),
        ("EXPECT", expect.to_string()),
    ];
    run_script(&env).await;
    assert_eq!(
        origin.renders("/blog/old"),
        2,
        "one render, then exactly one for the accepted click"
    );
    assert_eq!(
        origin.renders("/blog/new"),
        1,
        "a tag revalidation marks stale, it renders nothing"
    );

    if let Ok(dir) = std::env::var("ISR_DASHBOARD_SCREENSHOTS") {
        screenshots(&dir).await;
    }
}

/// A minute of traffic a small site might see, then the screenshots.
async fn screenshots(dir: &str) {
    let seconds: u64 = std::env::var("ISR_DASHBOARD_SCREENSHOT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut origin = TestOrigin::new();
    for i in 1..=24 {
        let tags = if i % 3 == 0 { "blog, featured" } else { "blog" };
        origin = origin
            .page(&format!("/blog/post-{i}"), move |n| {
                format!(
                    "<h1>Post {i}</h1><p>render {n}</p>{}",
                    "lorem ipsum ".repeat(900 + 150 * i)
                )
            })
            .header(&format!("/blog/post-{i}"), "x-isr-tags", tags)
            .latency(&format!("/blog/post-{i}"), Duration::from_millis(20 + 5 * i as u64));
    }
    let origin = origin.start().await;
    let proxy = spawn_proxy_with(CONFIG, &origin, |config| config.revalidate.token = Token::new(TOKEN)).await;
    let admin = spawn_admin_sampling(&proxy, Duration::from_secs(1)).await;
    let proxy = Arc::new(proxy);
    // The traffic goes on while the pictures are taken, so the rates at the right end are not zero.
    let traffic = tokio::spawn(site_traffic(proxy.clone(), origin, seconds + 30));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let env = [
        ("ADMIN_URL", admin.url()),
        ("SCREENSHOTS", dir.to_owned()),
        ("TOKEN", TOKEN.to_owned()),
    ];
    run_script(&env).await;
    traffic.abort();
}

async fn site_traffic(proxy: Arc<ProxyHandle>, origin: OriginHandle, seconds: u64) {
    let ticks = seconds * 4;
    for tick in 0.. {
        // Popular posts often, the long tail now and then; the clock moves 5 s a tick, so pages go stale.
        let burst = if (ticks / 3..ticks / 2).contains(&tick) { 12 } else { 4 };
        for i in 0..burst {
            let post = 1 + (tick * 7 + i * 3) % if tick % 5 == 0 { 24 } else { 6 };
            proxy.client.get(&format!("/blog/post-{post}")).await;
        }
        if tick % 9 == 0 {
            proxy.client.get("/api/time").await;
        }
        if tick == ticks / 2 {
            origin.set_failing("/blog/post-2", Some(StatusCode::BAD_GATEWAY));
            origin.set_failing("/blog/post-5", Some(StatusCode::INTERNAL_SERVER_ERROR));
        }
        proxy.clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether node, npm, Chromium and the script's packages are there; false (with a notice) under
/// `ISR_SKIP_BROWSER=1`, a panic saying what is missing otherwise.
fn browser_available() -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{SKIP_ENV}=1: skipping the dashboard browser test");
        return false;
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "tests/dashboard.rs needs Chromium at {CHROMIUM} (apt-get install -y chromium), or set {SKIP_ENV}=1"
    );
    if !Path::new(SCRIPT_DIR).join("node_modules/puppeteer-core").exists() {
        let output = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(SCRIPT_DIR)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run npm (apt-get install -y nodejs npm, or set {SKIP_ENV}=1): {err}"));
        assert!(
            output.status.success(),
            "npm install in {SCRIPT_DIR} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    true
}

/// Runs `check.mjs` with `env`; panics with its output unless every check passed.
async fn run_script(env: &[(&str, String)]) {
    let mut command = tokio::process::Command::new("node");
    command
        .arg("check.mjs")
        .current_dir(SCRIPT_DIR)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = within(SCRIPT_TIMEOUT_MS, "the browser script", command.output())
        .await
        .unwrap_or_else(|err| panic!("cannot run node (apt-get install -y nodejs, or set {SKIP_ENV}=1): {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "tests/dashboard/check.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
