//! Standards mode, request directives (RFC 9111 §5.2.1, §5.4): `no-cache` and `Pragma: no-cache` force a
//! validation that updates the cache; `max-age`, `min-fresh` and `max-stale` change what is acceptable;
//! `no-store` keeps the response out of the cache; `only-if-cached` never goes to the origin.

mod common;

use std::time::Duration;

use common::{STANDARD_CONFIG, TestOrigin, spawn_proxy};
use http::StatusCode;

fn origin() -> TestOrigin {
    TestOrigin::new()
        .header("/std/p", "cache-control", "max-age=100")
        .header("/std/p", "etag", "\"v{n}\"")
        .header("/std/p", "x-render", "{n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cache_and_pragma_force_a_validation_that_updates_the_cache() {
    let origin = origin().start().await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/p").await;
    let forced = proxy.client.get("/std/p").header("cache-control", "no-cache").await;
    assert_eq!(forced.cache(), "MISS", "a fresh page, validated anyway");
    assert_eq!(
        origin
            .last_request("/std/p")
            .headers
            .get("if-none-match")
            .map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..]),
        "with the stored validator"
    );
    assert_eq!(forced.header("x-render"), Some("2"));
    let next = proxy.client.get("/std/p").await;
    assert_eq!(
        (next.cache(), next.header("x-render")),
        ("HIT", Some("2")),
        "the cache was updated"
    );

    let pragma = proxy.client.get("/std/p").header("pragma", "no-cache").await;
    assert_eq!(
        pragma.header("x-render"),
        Some("3"),
        "Pragma: no-cache without Cache-Control"
    );
    let ignored = proxy
        .client
        .get("/std/p")
        .header("pragma", "no-cache")
        .header("cache-control", "nothing-to-see-here")
        .await;
    assert_eq!(ignored.cache(), "HIT", "Cache-Control present: Pragma is ignored");
    assert_eq!(origin.renders("/std/p"), 3);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_age_min_fresh_and_max_stale_change_what_is_acceptable() {
    let origin = origin().start().await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/p").await;
    proxy.clock.advance(Duration::from_secs(10));
    let cc = async |value: &str| {
        let r = proxy.client.get("/std/p").header("cache-control", value).await;
        (r.cache().to_owned(), r.header("x-render").map(str::to_owned))
    };
    assert_eq!(cc("max-age=20").await.0, "HIT");
    assert_eq!(
        cc("max-age=5").await,
        ("MISS".to_owned(), Some("2".to_owned())),
        "older than 5 s: validated"
    );
    proxy.clock.advance(Duration::from_secs(10));
    assert_eq!(cc("min-fresh=50").await.0, "HIT", "90 s of freshness left");
    assert_eq!(cc("min-fresh=95").await.0, "MISS", "not fresh enough");
    proxy.clock.advance(Duration::from_secs(150));
    assert_eq!(
        cc("max-stale=60").await,
        ("STALE".to_owned(), Some("3".to_owned())),
        "50 s stale is accepted"
    );
    assert_eq!(cc("max-stale").await.0, "STALE");
    assert_eq!(cc("max-stale=10").await.0, "MISS", "50 s stale is too stale");
    assert_eq!(origin.renders("/std/p"), 4);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_store_keeps_the_response_out_of_the_cache() {
    let origin = origin().start().await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let private = proxy.client.get("/std/p").header("cache-control", "no-store").await;
    assert_eq!(private.cache(), "BYPASS");
    assert_eq!(
        private.header("cache-status"),
        Some("isr-proxy; fwd=miss; detail=request-no-store")
    );
    assert_eq!(proxy.client.get("/std/p").await.cache(), "MISS", "nothing was stored");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_if_cached_answers_504_rather_than_asking_the_origin() {
    let origin = origin().start().await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let only = async || {
        proxy
            .client
            .get("/std/p")
            .header("cache-control", "only-if-cached")
            .await
    };
    assert_eq!(only().await.status, StatusCode::GATEWAY_TIMEOUT, "nothing stored");
    assert_eq!(origin.renders("/std/p"), 0);
    proxy.client.get("/std/p").await;
    assert_eq!(only().await.cache(), "HIT");
    proxy.clock.advance(Duration::from_secs(101));
    assert_eq!(only().await.status, StatusCode::GATEWAY_TIMEOUT, "stored but stale");
    assert_eq!(origin.renders("/std/p"), 1);
    proxy.shutdown().await;
}
