//! Where freshness comes from: the route, the origin's `x-isr-revalidate`, the origin's `Cache-Control`
//! (`revalidate = "origin"`), the expire window, and which statuses are stored.

mod common;

use std::time::Duration;

use common::{TestOrigin, eventually, spawn_proxy};
use http::StatusCode;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[cache]
expire = "10m"

[[route]]
path = "/blog/:slug"
revalidate = 60
not_found_revalidate = 5

[[route]]
path = "/std/:slug"
revalidate = "origin"
"#;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_expire_window_a_request_waits_for_a_fresh_render() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    proxy.client.get("/blog/a").await;
    let first = proxy.client.get("/blog/a").await;
    assert_eq!(
        first.header("cache-control"),
        Some("s-maxage=60, stale-while-revalidate=600")
    );

    proxy.clock.advance(MINUTE + 11 * MINUTE);
    let expired = proxy.client.get("/blog/a").await;
    assert_eq!(
        expired.cache(),
        "MISS",
        "too old to serve stale: blocks on a fresh render"
    );
    assert_eq!(expired.text, "<p>/blog/a render 2</p>");

    proxy.clock.advance(12 * MINUTE);
    origin.set_failing("/blog/a", Some(StatusCode::INTERNAL_SERVER_ERROR));
    let fallback = proxy.client.get("/blog/a").await;
    assert_eq!(
        fallback.status,
        StatusCode::OK,
        "a failed render falls back to the old page"
    );
    assert_eq!(fallback.cache(), "STALE");
    assert_eq!(fallback.text, "<p>/blog/a render 2</p>");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_header_overrides_the_route_revalidate() {
    let origin = TestOrigin::new()
        .header("/blog/short", "x-isr-revalidate", "5")
        .header("/blog/forever", "x-isr-revalidate", "false")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let short = proxy.client.get("/blog/short").await;
    assert!(
        short.header("x-isr-revalidate").is_none(),
        "the override header is internal"
    );
    assert_eq!(
        short.header("cache-control"),
        Some("s-maxage=5, stale-while-revalidate=600")
    );
    proxy.client.get("/blog/forever").await;

    proxy.clock.advance(Duration::from_secs(6));
    assert_eq!(
        proxy.client.get("/blog/short").await.cache(),
        "STALE",
        "5 s from the origin, not the route's 60"
    );
    proxy.clock.advance(365 * 24 * 60 * MINUTE);
    assert_eq!(
        proxy.client.get("/blog/forever").await.cache(),
        "HIT",
        "false from the origin: on demand only"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_mode_follows_the_origin_cache_control() {
    let origin = TestOrigin::new()
        .header(
            "/std/a",
            "cache-control",
            "public, max-age=30, stale-while-revalidate=20",
        )
        .header("/std/shared", "cache-control", "s-maxage=30, stale-while-revalidate=20")
        .header("/std/none", "cache-control", "public")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    proxy.client.get("/std/a").await;
    let hit = proxy.client.get("/std/a").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(
        hit.header("cache-control"),
        Some("public, max-age=30, stale-while-revalidate=20"),
        "the origin's Cache-Control reaches the client unchanged"
    );
    proxy.clock.advance(Duration::from_secs(31));
    assert_eq!(
        proxy.client.get("/std/a").await.cache(),
        "STALE",
        "inside stale-while-revalidate: served stale"
    );
    eventually(2_000, "refresh", async || origin.renders("/std/a") == 2).await;
    proxy.clock.advance(Duration::from_secs(31 + 21));
    assert_eq!(
        proxy.client.get("/std/a").await.cache(),
        "MISS",
        "past stale-while-revalidate it blocks"
    );

    proxy.client.get("/std/shared").await;
    proxy.clock.advance(Duration::from_secs(31));
    assert_eq!(
        proxy.client.get("/std/shared").await.cache(),
        "STALE",
        "s-maxage beside stale-while-revalidate: served stale inside the window the origin named"
    );

    for _ in 0..2 {
        assert_eq!(
            proxy.client.get("/std/none").await.cache(),
            "BYPASS",
            "no freshness from the origin: not stored"
        );
    }
    assert_eq!(origin.renders("/std/none"), 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_found_pages_are_cached_with_their_own_revalidate() {
    let origin = TestOrigin::new()
        .status("/blog/gone", StatusCode::NOT_FOUND)
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/gone").await.status, StatusCode::NOT_FOUND);
    let again = proxy.client.get("/blog/gone").await;
    assert_eq!((again.status, again.cache()), (StatusCode::NOT_FOUND, "HIT"));
    proxy.clock.advance(Duration::from_secs(6));
    assert_eq!(
        proxy.client.get("/blog/gone").await.cache(),
        "STALE",
        "not_found_revalidate = 5"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_error_never_replaces_a_good_page() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    proxy.client.get("/blog/a").await;
    origin.set_failing("/blog/a", Some(StatusCode::INTERNAL_SERVER_ERROR));
    proxy.clock.advance(2 * MINUTE);
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "STALE");
    eventually(2_000, "failed refresh", async || origin.renders("/blog/a") == 2).await;
    let kept = proxy.client.get("/blog/a").await;
    assert_eq!(
        (kept.status, kept.text.as_str()),
        (StatusCode::OK, "<p>/blog/a render 1</p>")
    );
    proxy.shutdown().await;
}
