//! The operator subcommands of the real `isr-proxy` binary (`revalidate`, `inspect`, `stats`, `health`), run as
//! a child process against a proxy and admin listener on loopback: what they print, what they exit with, and
//! what they say when the proxy is not where they look.

mod common;

use std::time::Duration;

use common::admin::{AdminHandle, Run, isr_proxy, spawn_admin};
use common::binary::ProxyProcess;
use common::{ProxyHandle, TestOrigin, eventually, spawn_proxy, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::admin::api::{CacheListing, Stats};
use isr_proxy::config::Token;

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "500ms"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

const TOKEN: &str = "s3cret";

async fn setup(origin: &common::OriginHandle) -> (ProxyHandle, AdminHandle) {
    let proxy = spawn_proxy_with(CONFIG, origin, |config| {
        config.revalidate.token = Token::new(TOKEN);
    })
    .await;
    let admin = spawn_admin(&proxy).await;
    (proxy, admin)
}

/// A loopback address nothing listens on (free a moment ago).
fn closed_url() -> String {
    format!("http://127.0.0.1:{}", common::binary::free_port())
}

fn succeeded(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
}

/// The run succeeded and printed each of `expected` somewhere.
fn printed(run: &Run, expected: &[&str]) {
    succeeded(run);
    for expected in expected {
        assert!(run.stdout.contains(expected), "{expected:?} in:\n{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inspect_prints_the_cached_pages_as_a_table_and_as_json() {
    let origin = TestOrigin::new()
        .header("/blog/a", "x-isr-tags", "blog, post-a")
        .start()
        .await;
    let (proxy, admin) = setup(&origin).await;
    proxy.client.get("/blog/a").await;
    proxy.client.get("/blog/b").await;
    let url = admin.url();

    let run = isr_proxy(&["inspect", "--admin-url", &url], &[]).await;
    succeeded(&run);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("KEY "), "{}", run.stdout);
    assert!(lines[1].starts_with("/blog/a ") && lines[1].contains(" fresh ") && lines[1].contains("blog,post-a"));
    assert!(lines[2].starts_with("/blog/b "), "{}", run.stdout);
    assert_eq!(lines[3], "2 listed (2 in memory)");

    let run = isr_proxy(&["inspect", "--admin-url", &url, "--json", "--prefix", "/blog/b"], &[]).await;
    succeeded(&run);
    let listing: CacheListing = serde_json::from_str(&run.stdout).expect("the listing JSON");
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].key.path, "/blog/b");

    let run = isr_proxy(
        &["inspect", "--admin-url", &url, "--limit", "1"],
        &[("ISR_ADMIN_URL", "unused")],
    )
    .await;
    succeeded(&run);
    assert!(run.stdout.contains("more with --cursor '/blog/a'"), "{}", run.stdout);
    let run = isr_proxy(
        &["inspect", "--limit", "1", "--cursor", "/blog/a"],
        &[("ISR_ADMIN_URL", &url)],
    )
    .await;
    succeeded(&run);
    assert!(
        run.stdout.lines().nth(1).is_some_and(|l| l.starts_with("/blog/b ")),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inspect_shows_why_a_page_is_stale_and_the_failed_regeneration() {
    let origin = TestOrigin::new().start().await;
    let (proxy, admin) = setup(&origin).await;
    proxy.client.get("/blog/a").await;
    origin.set_failing("/blog/a", Some(StatusCode::BAD_GATEWAY));
    proxy.clock.advance(Duration::from_secs(90));
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "STALE");
    eventually(2_000, "the regeneration to fail", async || {
        proxy.proxy.regenerator().failure_count() == 1
    })
    .await;
    let url = admin.url();

    let run = isr_proxy(&["inspect", "--admin-url", &url, "--state", "stale"], &[]).await;
    succeeded(&run);
    assert!(
        run.stdout.lines().nth(1).is_some_and(|l| l.starts_with("/blog/a ")),
        "{}",
        run.stdout
    );

    let run = isr_proxy(&["inspect", "--admin-url", &url, "--path", "/blog/a"], &[]).await;
    printed(
        &run,
        &[
            "  route         /blog/:slug (revalidate 1m,",
            "  state         stale (age 1m 30s;",
            "(background): origin answered 502 Bad Gateway",
            "  next retry    not before ",
            "    etag: \"",
        ],
    );

    let run = isr_proxy(&["inspect", "--admin-url", &url, "--regenerations"], &[]).await;
    succeeded(&run);
    assert!(
        run.stdout.contains("recent failures (1)\n  /blog/a  failed at "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("failed since start: 1\n"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revalidate_prints_per_path_tag_and_prefix_results_and_fails_if_any_path_failed() {
    let origin = TestOrigin::new()
        .header("/blog/a", "x-isr-tags", "blog")
        .header("/blog/broken", "x-isr-tags", "blog")
        .start()
        .await;
    let (proxy, admin) = setup(&origin).await;
    proxy.client.get("/blog/a").await;
    proxy.client.get("/blog/broken").await;
    origin.set_failing("/blog/broken", Some(StatusCode::INTERNAL_SERVER_ERROR));
    let url = format!("http://{}", proxy.addr);
    let env = [("ISR_REVALIDATE_TOKEN", TOKEN)];

    let run = isr_proxy(
        &[
            "revalidate",
            "--url",
            &url,
            "--path",
            "/blog/a",
            "--path",
            "/blog/broken",
            "--path",
            "/elsewhere",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, Some(1), "one path failed: {run:#?}");
    assert_eq!(
        run.stdout,
        "regenerated  /blog/a\n\
         failed       /blog/broken: origin answered 500 Internal Server Error; last good page kept\n\
         skipped      /elsewhere (no cached route)\n"
    );
    assert_eq!(origin.renders("/blog/a"), 2);

    let run = isr_proxy(
        &["revalidate", "--path", "/blog/a", "--tag", "blog"],
        &[("ISR_PROXY_URL", &url), env[0]],
    )
    .await;
    succeeded(&run);
    assert!(
        run.stdout.ends_with("tag blog: 2 pages marked stale\n"),
        "{}",
        run.stdout
    );

    let run = isr_proxy(
        &[
            "revalidate",
            "--url",
            &url,
            "--prefix",
            "/blog",
            "--prefix",
            "/elsewhere",
        ],
        &env,
    )
    .await;
    succeeded(&run);
    assert_eq!(
        run.stdout,
        "prefix /blog: 2 pages marked stale\nprefix /elsewhere: 0 pages marked stale\n"
    );

    let run = isr_proxy(&["revalidate", "--url", &url, "--path", "/blog/a", "--purge"], &env).await;
    succeeded(&run);
    assert_eq!(run.stdout, "purged       /blog/a\n");
    let listing = admin.json("/cache").await;
    assert_eq!(listing["total"], 1, "only /blog/broken is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revalidate_needs_the_token_and_says_which_variable_holds_it() {
    let origin = TestOrigin::new().start().await;
    let (proxy, _admin) = setup(&origin).await;
    let url = format!("http://{}", proxy.addr);
    let args = ["revalidate", "--url", &url, "--path", "/blog/a"];

    let run = isr_proxy(&args, &[]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("no revalidation token: the environment variable ISR_REVALIDATE_TOKEN is empty or not set"),
        "{}",
        run.stderr
    );
    let run = isr_proxy(&args, &[("ISR_REVALIDATE_TOKEN", "wrong")]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("the proxy refused the token in ISR_REVALIDATE_TOKEN (401)"),
        "{}",
        run.stderr
    );

    let mut custom = args.to_vec();
    custom.extend(["--token-env", "MY_ISR_TOKEN"]);
    succeeded(&isr_proxy(&custom, &[("MY_ISR_TOKEN", TOKEN)]).await);
    assert_eq!(origin.renders("/blog/a"), 1, "only the authenticated call rendered");

    let run = isr_proxy(&["revalidate", "--url", &url], &[("ISR_REVALIDATE_TOKEN", TOKEN)]).await;
    assert_eq!(run.code, Some(2), "a path, a tag or a prefix is required: {run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_reports_hit_ratio_entries_and_redis_state() {
    let origin = TestOrigin::new().start().await;
    let (proxy, admin) = setup(&origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/other").await.cache(), "BYPASS");
    let url = admin.url();

    let run = isr_proxy(&["stats", "--admin-url", &url], &[]).await;
    printed(
        &run,
        &[
            "requests       4 (BYPASS 1, HIT 2, MISS 1)\n",
            "hit ratio      66.7 % (HIT + STALE of HIT + STALE + MISS)\n",
            "cache          1 pages, ",
            "regenerations  0 running, 0 failed since start (0 on record)\n",
            "origin         reachable\n",
            "redis          not configured\n",
        ],
    );
    let run = isr_proxy(&["stats", "--admin-url", &url, "--json"], &[]).await;
    succeeded(&run);
    let stats: Stats = serde_json::from_str(&run.stdout).expect("the stats JSON");
    assert_eq!(stats.cache.entries, 1);
    assert_eq!(stats.requests["HIT"], 2);
    assert!(stats.hit_ratio.is_some_and(|r| (r - 2.0 / 3.0).abs() < 1e-9));
    assert_eq!(stats.redis, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_exits_non_zero_until_the_proxy_serves() {
    let origin = TestOrigin::new()
        .latency("/blog/first", Duration::from_millis(800))
        .start()
        .await;
    let config = format!("{CONFIG}prerender = [\"/blog/first\"]\n").replace("500ms", "3s");
    let proxy = spawn_proxy(&config, &origin).await;
    let admin = spawn_admin(&proxy).await;
    let url = admin.url();

    let run = isr_proxy(&["health", "--admin-url", &url], &[]).await;
    assert_eq!(run.code, Some(1), "prerendering holds the listener back: {run:#?}");
    assert!(
        run.stdout.starts_with("not ready: prerendering 0 of 1 pages"),
        "{}",
        run.stdout
    );
    eventually(3_000, "health to pass", async || {
        isr_proxy(&["health", "--admin-url", &url], &[]).await.code == Some(0)
    })
    .await;
    let run = isr_proxy(&["health", "--admin-url", &url], &[]).await;
    assert_eq!(run.stdout, "ok: 1 pages in memory, origin reachable\n");
}

#[tokio::test]
async fn subcommands_report_an_unreachable_proxy_and_exit_non_zero() {
    let closed = closed_url();
    for args in [
        vec!["inspect", "--admin-url", &closed],
        vec!["inspect", "--admin-url", &closed, "--path", "/blog/a"],
        vec!["stats", "--admin-url", &closed],
        vec!["health", "--admin-url", &closed],
    ] {
        let run = isr_proxy(&args, &[]).await;
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        let expected = format!("error: cannot reach {closed}/");
        assert!(run.stderr.starts_with(&expected), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("is isr-proxy running, with `[admin] listen` on that address?"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = isr_proxy(
        &["revalidate", "--url", &closed, "--tag", "t"],
        &[("ISR_REVALIDATE_TOKEN", "x")],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("is isr-proxy listening there? (--url, ISR_PROXY_URL)"),
        "{}",
        run.stderr
    );
    let run = isr_proxy(&["stats", "--admin-url", "ftp://127.0.0.1:9091"], &[]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim(),
        "error: invalid URL \"ftp://127.0.0.1:9091\": only http:// is supported"
    );
}

#[tokio::test]
async fn every_subcommand_help_shows_an_example() {
    for subcommand in ["revalidate", "inspect", "stats", "health"] {
        let run = isr_proxy(&[subcommand, "--help"], &[]).await;
        succeeded(&run);
        let example = format!("\n  isr-proxy {subcommand} --");
        assert!(run.stdout.contains("Examples:\n"), "{subcommand}: {}", run.stdout);
        assert!(run.stdout.contains(&example), "{subcommand}: {}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inspect_reports_the_admin_listeners_reason_for_a_bad_request() {
    let origin = TestOrigin::new().start().await;
    let (_proxy, admin) = setup(&origin).await;
    let run = isr_proxy(&["inspect", "--admin-url", &admin.url(), "--path", "/api/../../x"], &[]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("answered 400 Bad Request: path \"/api/../../x\": request path escapes the root"),
        "{}",
        run.stderr
    );
    let run = isr_proxy(&["inspect", "--admin-url", &admin.url(), "--limit", "0"], &[]).await;
    assert!(
        run.stderr.contains("limit \"0\" must be a number from 1 to 1000"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_serves_what_its_subcommands_read() {
    let origin = TestOrigin::new().start().await;
    let admin_url = format!("http://127.0.0.1:{}", common::binary::free_port());
    let toml = format!("[admin]\nlisten = \"{}\"\n{CONFIG}", &admin_url["http://".len()..]);
    let mut server = ProxyProcess::start(&toml, &origin.url(), None, &[]).await;
    eventually(10_000, "isr-proxy health to pass", async || {
        isr_proxy(&["health", "--admin-url", &admin_url], &[]).await.code == Some(0)
    })
    .await;
    assert_eq!(server.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(server.client.get("/blog/a").await.cache(), "HIT");

    let run = isr_proxy(&["inspect", "--json"], &[("ISR_ADMIN_URL", &admin_url)]).await;
    succeeded(&run);
    let listing: CacheListing = serde_json::from_str(&run.stdout).expect("the listing JSON");
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].key.key, "/blog/a");
    let run = isr_proxy(&["stats", "--admin-url", &admin_url], &[]).await;
    printed(&run, &["hit ratio      50.0 %"]);
    assert_eq!(origin.renders("/blog/a"), 1);

    server.kill();
    let run = isr_proxy(&["health", "--admin-url", &admin_url], &[]).await;
    assert_eq!(run.code, Some(1), "nothing answers once it is gone");
}
