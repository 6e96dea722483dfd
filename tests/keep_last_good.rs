//! When regeneration fails (error status, timeout, origin down) the last good page keeps being served, and the
//! origin is retried at most once per `cache.retry_after`.

mod common;

use std::time::Duration;

use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy, within};
use http::StatusCode;

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "200ms"

[cache]
retry_after = "5s"

[[route]]
path = "/blog/:slug"
revalidate = 10
"#;

const PAGE: &str = "<p>/blog/a render 1</p>";

async fn assert_stale_page(proxy: &ProxyHandle, times: usize) {
    for _ in 0..times {
        let r = within(150, "the last good page", proxy.client.get("/blog/a")).await;
        assert_eq!((r.status, r.cache(), r.text.as_str()), (StatusCode::OK, "STALE", PAGE));
    }
}

/// Waits until a failing attempt that reached the origin has ended (`attempt` is how long the failure takes to
/// show: the origin timeout for a hung origin), plus time for a wrongly started fetch to reach the origin.
async fn settle(attempt: Duration) {
    tokio::time::sleep(attempt + Duration::from_millis(50)).await;
}

/// Caches the page, breaks the origin, and checks the stale page is served while attempts are spaced by
/// `retry_after`; then repairs the origin and checks the next attempt replaces the page.
async fn keeps_last_good_and_backs_off(
    origin: &OriginHandle,
    proxy: &ProxyHandle,
    attempt: Duration,
    break_origin: impl Fn(),
    fix: impl Fn(),
) {
    let miss = proxy.client.get("/blog/a").await;
    assert_eq!((miss.cache(), miss.text.as_str()), ("MISS", PAGE));
    break_origin();

    proxy.clock.advance(Duration::from_secs(11));
    assert_stale_page(proxy, 1).await;
    eventually(1_000, "the first regeneration attempt", async || {
        origin.renders("/blog/a") == 2
    })
    .await;
    assert_stale_page(proxy, 5).await;
    settle(attempt).await;
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "no new attempt within retry_after of a failure"
    );

    proxy.clock.advance(Duration::from_secs(6));
    assert_stale_page(proxy, 1).await;
    eventually(1_000, "a second attempt after retry_after", async || {
        origin.renders("/blog/a") == 3
    })
    .await;
    assert_stale_page(proxy, 5).await;
    settle(attempt).await;
    assert_eq!(origin.renders("/blog/a"), 3, "one attempt per retry_after");

    fix();
    proxy.clock.advance(Duration::from_secs(6));
    assert_stale_page(proxy, 1).await;
    eventually(2_000, "the recovered page", async || {
        let r = proxy.client.get("/blog/a").await;
        r.cache() == "HIT" && r.text == "<p>/blog/a render 4</p>"
    })
    .await;
    assert_eq!(origin.renders("/blog/a"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_origin_keeps_serving_last_good_page_and_retries_after_backoff() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    keeps_last_good_and_backs_off(
        &origin,
        &proxy,
        Duration::ZERO,
        || origin.set_failing("/blog/a", Some(StatusCode::INTERNAL_SERVER_ERROR)),
        || origin.set_failing("/blog/a", None),
    )
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timing_out_origin_keeps_serving_last_good_page_and_retries_after_backoff() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    keeps_last_good_and_backs_off(
        &origin,
        &proxy,
        Duration::from_millis(200),
        || origin.set_latency("/blog/a", Duration::from_millis(500)),
        || origin.set_latency("/blog/a", Duration::ZERO),
    )
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_down_keeps_serving_last_good_page_until_it_is_back() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    origin.stop().await;

    proxy.clock.advance(Duration::from_secs(11));
    assert_stale_page(&proxy, 5).await;
    proxy.clock.advance(Duration::from_secs(6));
    assert_stale_page(&proxy, 5).await;

    origin.resume().await;
    proxy.clock.advance(Duration::from_secs(6));
    assert_stale_page(&proxy, 1).await;
    eventually(2_000, "the page regenerated once the origin is back", async || {
        let r = proxy.client.get("/blog/a").await;
        r.cache() == "HIT" && r.text == "<p>/blog/a render 2</p>"
    })
    .await;
    assert_eq!(origin.renders("/blog/a"), 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn miss_with_origin_down_is_bad_gateway() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    origin.stop().await;

    let r = within(2_000, "a 502", proxy.client.get("/blog/a")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text.contains("cannot connect to origin"), "{}", r.text);
    assert_eq!(r.cache(), "", "an error is not a cache outcome");
    assert_eq!(origin.renders("/blog/a"), 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn miss_with_origin_timeout_is_gateway_timeout() {
    let origin = TestOrigin::new()
        .latency("/blog/a", Duration::from_millis(500))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let r = within(
        450,
        "a 504 after the 200 ms origin timeout",
        proxy.client.get("/blog/a"),
    )
    .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.text.contains("did not answer"), "{}", r.text);
    assert_eq!(origin.renders("/blog/a"), 1);

    origin.set_latency("/blog/a", Duration::ZERO);
    let r = proxy.client.get("/blog/a").await;
    assert_eq!(
        (r.status, r.cache()),
        (StatusCode::OK, "MISS"),
        "a failed miss is not remembered"
    );
    assert_eq!(r.text, "<p>/blog/a render 2</p>");
    proxy.shutdown().await;
}
