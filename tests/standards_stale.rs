//! Standards mode, serving stale (RFC 9111 §4.2.4, RFC 5861): only inside `stale-while-revalidate` (one
//! background validation however many requests), inside `stale-if-error` when the origin fails, or while the
//! origin cannot be reached at all (a disconnected cache may serve stale: isr-proxy's keep-last-good, bounded by
//! the route's `expire`); never with `must-revalidate`, `proxy-revalidate` or `no-cache`, and with `s-maxage`
//! only inside the response's own `stale-while-revalidate` / `stale-if-error` windows.

mod common;

use std::time::Duration;

use common::{STANDARD_CONFIG, TestOrigin, eventually, spawn_proxy};
use http::StatusCode;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inside_stale_while_revalidate_many_requests_are_served_stale_and_validate_once() {
    let origin = TestOrigin::new()
        .header("/std/swr", "cache-control", "max-age=10, stale-while-revalidate=20")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/swr").await;
    origin.set_latency("/std/swr", Duration::from_millis(200));
    proxy.clock.advance(Duration::from_secs(15));
    let mut requests = JoinSet::new();
    for _ in 0..20 {
        let client = proxy.client.clone();
        requests.spawn(async move { client.get("/std/swr").await });
    }
    while let Some(response) = requests.join_next().await {
        let response = response.expect("request task");
        assert_eq!(response.cache(), "STALE");
        assert_eq!(response.text, "<p>/std/swr render 1</p>");
    }
    eventually(2_000, "the background validation", async || {
        origin.renders("/std/swr") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(origin.renders("/std/swr"), 2, "20 stale requests, one validation");
    eventually(2_000, "the fresh page", async || {
        proxy.client.get("/std/swr").await.cache() == "HIT"
    })
    .await;

    proxy.clock.advance(Duration::from_secs(31));
    assert_eq!(
        proxy.client.get("/std/swr").await.cache(),
        "MISS",
        "past the stale-while-revalidate window the request waits for the origin"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_if_error_serves_the_stored_page_on_a_5xx_only_inside_its_window() {
    let origin = TestOrigin::new()
        .header("/std/sie", "cache-control", "max-age=10, stale-if-error=30")
        .header("/std/plain", "cache-control", "max-age=10")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/sie").await;
    proxy.client.get("/std/plain").await;
    origin.set_failing("/std/sie", Some(StatusCode::INTERNAL_SERVER_ERROR));
    origin.set_failing("/std/plain", Some(StatusCode::INTERNAL_SERVER_ERROR));
    proxy.clock.advance(Duration::from_secs(20));
    let within = proxy.client.get("/std/sie").await;
    assert_eq!((within.status, within.cache()), (StatusCode::OK, "STALE"));
    assert_eq!(within.text, "<p>/std/sie render 1</p>");
    let without = proxy.client.get("/std/plain").await;
    assert_eq!(
        without.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no stale-if-error: an answering origin's 5xx reaches the client"
    );
    proxy.clock.advance(Duration::from_secs(25));
    let past = proxy.client.get("/std/sie").await;
    assert_eq!(past.status, StatusCode::INTERNAL_SERVER_ERROR, "past stale-if-error");
    origin.set_failing("/std/sie", None);
    assert_eq!(
        proxy.client.get("/std/sie").await.cache(),
        "MISS",
        "the last good page was kept until then"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_origin_gets_the_stored_page_unless_the_origin_forbade_stale() {
    let origin = TestOrigin::new()
        .header("/std/keep", "cache-control", "max-age=10")
        .header("/std/must", "cache-control", "max-age=10, must-revalidate")
        .header("/std/proxy", "cache-control", "max-age=10, proxy-revalidate")
        .header("/std/shared", "cache-control", "s-maxage=10")
        .header("/std/no-cache", "cache-control", "max-age=10, no-cache")
        .header("/std/no-cache", "etag", "\"v\"")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let paths = ["/std/keep", "/std/must", "/std/proxy", "/std/shared", "/std/no-cache"];
    for path in paths {
        proxy.client.get(path).await;
    }
    origin.stop().await;
    proxy.clock.advance(Duration::from_secs(11));
    let kept = proxy.client.get("/std/keep").await;
    assert_eq!(
        (kept.status, kept.cache()),
        (StatusCode::OK, "STALE"),
        "keep-last-good while disconnected"
    );
    for forbidden in &paths[1..] {
        let r = proxy.client.get(forbidden).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_GATEWAY,
            "{forbidden} must not be served stale"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cache_responses_are_stored_and_validated_before_every_use() {
    let origin = TestOrigin::new()
        .header("/std/nc", "cache-control", "max-age=3600, No-Cache")
        .header("/std/nc", "etag", "\"v1\"")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/nc").await;
    origin.set_not_modified("/std/nc", true);
    for n in 2..=3 {
        let r = proxy.client.get("/std/nc").await;
        assert_eq!(
            r.cache(),
            "REVALIDATED",
            "request {n} is validated even though max-age has not passed"
        );
        assert_eq!(
            r.text, "<p>/std/nc render 1</p>",
            "the stored body, not downloaded again"
        );
        let sent = origin.last_request("/std/nc");
        assert_eq!(
            sent.headers.get("if-none-match").map(|v| v.as_bytes()),
            Some(&b"\"v1\""[..])
        );
    }
    assert_eq!(origin.renders("/std/nc"), 3);
    proxy.shutdown().await;
}

/// `s-maxage` means `proxy-revalidate` to a shared cache (RFC 9111 §5.2.2.10), except inside the RFC 5861
/// windows the same response names: `s-maxage=10, stale-while-revalidate=20` is served stale (one background
/// validation) for 20 s, and never past that, not even while the origin is down or for a client's `max-stale`;
/// `s-maxage=10, stale-if-error=30` is served stale on a 5xx inside its window only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_s_maxage_a_page_is_served_stale_only_inside_its_own_windows() {
    let origin = TestOrigin::new()
        .header("/std/isr", "cache-control", "s-maxage=10, stale-while-revalidate=20")
        .header("/std/sie", "cache-control", "s-maxage=10, stale-if-error=30")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/isr").await;
    proxy.client.get("/std/sie").await;
    proxy.clock.advance(Duration::from_secs(15));
    assert_eq!(proxy.client.get("/std/isr").await.cache(), "STALE");
    eventually(2_000, "the background validation", async || {
        origin.renders("/std/isr") == 2
    })
    .await;
    origin.set_failing("/std/sie", Some(StatusCode::INTERNAL_SERVER_ERROR));
    let within = proxy.client.get("/std/sie").await;
    assert_eq!(
        (within.status, within.cache()),
        (StatusCode::OK, "STALE"),
        "inside stale-if-error"
    );

    proxy.clock.advance(Duration::from_secs(31));
    let past = proxy.client.get("/std/sie").await;
    assert_eq!(past.status, StatusCode::INTERNAL_SERVER_ERROR, "past stale-if-error");
    let max_stale = proxy.client.get("/std/isr").header("cache-control", "max-stale").await;
    assert_eq!(
        max_stale.cache(),
        "MISS",
        "past stale-while-revalidate, s-maxage forbids stale to the client that accepts it too"
    );
    proxy.clock.advance(Duration::from_secs(31));
    origin.stop().await;
    let down = proxy.client.get("/std/isr").await;
    assert_eq!(
        down.status,
        StatusCode::BAD_GATEWAY,
        "past its window, not even keep-last-good while the origin is down"
    );
    proxy.shutdown().await;
}
