//! A cold page is fetched once (MISS) and then served from the cache (HIT) with ISR headers.

mod common;

use std::time::Duration;

use common::{TestOrigin, spawn_proxy};
use http::StatusCode;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog/:slug"
revalidate = 60

[[route]]
path = "/about"
revalidate = false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_request_misses_then_hits_with_one_origin_fetch() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/blog/a").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.text, "<p>/blog/a render 1</p>");

    let second = proxy.client.get("/blog/a").await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.text, "<p>/blog/a render 1</p>", "a HIT serves the stored page");
    assert_eq!(origin.renders("/blog/a"), 1, "a HIT must not reach the origin");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hits_carry_age_and_shared_cache_control() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let miss = proxy.client.get("/blog/a").await;
    assert_eq!(miss.cache(), "MISS");
    assert_eq!(miss.header("age"), Some("0"));
    proxy.clock.advance(Duration::from_secs(30));
    let hit = proxy.client.get("/blog/a").await;
    assert_eq!(hit.cache(), "HIT");
    let age: u64 = hit
        .header("age")
        .expect("Age on a HIT")
        .parse()
        .expect("Age in seconds");
    assert!((30..32).contains(&age), "Age follows the clock: {age}");
    assert_eq!(
        hit.header("cache-control"),
        Some("s-maxage=60, stale-while-revalidate=31536000"),
        "revalidate = 60 with the default one-year expire"
    );
    assert!(hit.header("etag").is_some(), "stored pages carry an ETag");
    assert_eq!(origin.renders("/blog/a"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_demand_route_advertises_one_year_s_maxage() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    assert_eq!(proxy.client.get("/about").await.cache(), "MISS");
    proxy.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let hit = proxy.client.get("/about").await;
    assert_eq!(
        hit.cache(),
        "HIT",
        "revalidate = false pages stay fresh until revalidated on demand"
    );
    assert_eq!(hit.text, "<p>/about render 1</p>");
    assert_eq!(
        hit.header("cache-control"),
        Some("s-maxage=31536000, stale-while-revalidate=31536000")
    );
    assert_eq!(origin.renders("/about"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_returns_headers_and_length_without_body() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let page = "<p>/blog/h render 1</p>";

    let miss = proxy.client.head("/blog/h").await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(miss.cache(), "MISS");
    assert_eq!(miss.text, "", "HEAD has no body");
    assert_eq!(miss.header("content-length"), Some(page.len().to_string().as_str()));

    let hit = proxy.client.head("/blog/h").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.text, "");
    assert_eq!(hit.header("content-length"), Some(page.len().to_string().as_str()));
    assert!(hit.header("etag").is_some());

    let get = proxy.client.get("/blog/h").await;
    assert_eq!(get.cache(), "HIT", "HEAD and GET share one entry");
    assert_eq!(get.text, page);
    assert_eq!(origin.renders("/blog/h"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_found_from_origin_is_cached() {
    let origin = TestOrigin::new()
        .status("/blog/gone", StatusCode::NOT_FOUND)
        .page("/blog/gone", |n| format!("not found {n}"))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let miss = proxy.client.get("/blog/gone").await;
    assert_eq!(
        (miss.status, miss.cache(), miss.text.as_str()),
        (StatusCode::NOT_FOUND, "MISS", "not found 1")
    );
    let hit = proxy.client.get("/blog/gone").await;
    assert_eq!(
        (hit.status, hit.cache(), hit.text.as_str()),
        (StatusCode::NOT_FOUND, "HIT", "not found 1")
    );
    assert_eq!(origin.renders("/blog/gone"), 1, "a 404 page is stored like any page");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_error_on_miss_is_passed_and_not_cached() {
    let origin = TestOrigin::new().start().await;
    origin.set_failing("/blog/broken", Some(StatusCode::INTERNAL_SERVER_ERROR));
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/blog/broken").await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(first.cache(), "BYPASS");
    assert_eq!(first.text, "origin failing: /blog/broken render 1");
    let second = proxy.client.get("/blog/broken").await;
    assert_eq!(second.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(second.text, "origin failing: /blog/broken render 2");
    assert_eq!(origin.renders("/blog/broken"), 2, "a 500 must never be stored");

    origin.set_failing("/blog/broken", None);
    let recovered = proxy.client.get("/blog/broken").await;
    assert_eq!((recovered.status, recovered.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(recovered.text, "<p>/blog/broken render 3</p>");
    proxy.shutdown().await;
}
