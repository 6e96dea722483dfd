//! Standards mode, invalidation (RFC 9111 §4.4): a non-error response to an unsafe request invalidates the
//! stored responses for its target URI (every `Vary` variant) and for same-origin `Location` and
//! `Content-Location` URIs. Safe methods, failed requests and other origins invalidate nothing.

mod common;

use common::{STANDARD_CONFIG, TestOrigin, spawn_proxy};
use http::StatusCode;

/// The standards route, and a time-based one beside it.
fn config() -> String {
    format!("{STANDARD_CONFIG}\n[[route]]\npath = \"/timed/:slug\"\nrevalidate = 60\n")
}

fn cached(paths: &[&str]) -> TestOrigin {
    let mut origin = TestOrigin::new();
    for path in paths {
        origin = origin.header(path, "cache-control", "max-age=3600");
    }
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_successful_unsafe_request_invalidates_its_target_and_only_then() {
    let origin = cached(&["/std/a"]).start().await;
    let proxy = spawn_proxy(&config(), &origin).await;
    for method in ["POST", "PUT", "DELETE", "M-SEARCH"] {
        proxy.client.get("/std/a?x=1").await;
        assert_eq!(proxy.client.get("/std/a?x=1").await.cache(), "HIT");
        let unsafe_response = proxy.client.method(method, "/std/a?x=1").await;
        assert_eq!(unsafe_response.status, StatusCode::OK, "{method}");
        assert_eq!(
            proxy.client.get("/std/a?x=1").await.cache(),
            "MISS",
            "{method} invalidated the stored response"
        );
    }
    for method in ["OPTIONS", "TRACE"] {
        proxy.client.method(method, "/std/a?x=1").await;
        assert_eq!(proxy.client.get("/std/a?x=1").await.cache(), "HIT", "{method} is safe");
    }
    origin.set_failing("/std/a", Some(StatusCode::INTERNAL_SERVER_ERROR));
    let failed = proxy.client.post("/std/a?x=1", "x").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    origin.set_failing("/std/a", None);
    assert_eq!(
        proxy.client.get("/std/a?x=1").await.cache(),
        "HIT",
        "a failed POST invalidates nothing"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_vary_variant_of_the_target_is_invalidated() {
    let origin = cached(&["/std/v"])
        .header("/std/v", "vary", "Accept-Language")
        .start()
        .await;
    let proxy = spawn_proxy(&config(), &origin).await;
    for language in ["fr", "de"] {
        proxy.client.get("/std/v").header("accept-language", language).await;
    }
    proxy.client.post("/std/v", "x").await;
    for language in ["fr", "de"] {
        let r = proxy.client.get("/std/v").header("accept-language", language).await;
        assert_eq!(r.cache(), "MISS", "the {language} variant was invalidated");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_origin_location_and_content_location_are_invalidated_too() {
    let origin = cached(&["/std/list", "/std/item", "/std/other", "/std/abs"])
        .header("/std/new", "location", "/std/list")
        .header("/std/new", "content-location", "/std/item")
        .header("/std/elsewhere", "location", "http://elsewhere.example/std/other")
        .header("/std/absolute", "location", "http://shop.example/std/abs")
        .start()
        .await;
    let proxy = spawn_proxy(&config(), &origin).await;
    for path in ["/std/list", "/std/item", "/std/other", "/std/abs"] {
        proxy.client.get(path).await;
    }
    proxy.client.post("/std/new", "x").await;
    proxy
        .client
        .post("/std/elsewhere", "x")
        .header("host", "shop.example")
        .await;
    proxy
        .client
        .post("/std/absolute", "x")
        .header("host", "shop.example")
        .await;
    for (path, want) in [
        ("/std/list", "MISS"),
        ("/std/item", "MISS"),
        ("/std/other", "HIT"),
        ("/std/abs", "MISS"),
    ] {
        assert_eq!(proxy.client.get(path).await.cache(), want, "{path}");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_based_routes_keep_their_pages_after_an_unsafe_request() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(&config(), &origin).await;
    proxy.client.get("/timed/a").await;
    proxy.client.post("/timed/a", "x").await;
    assert_eq!(
        proxy.client.get("/timed/a").await.cache(),
        "HIT",
        "ISR routes change only by revalidate or on demand"
    );
    proxy.shutdown().await;
}
