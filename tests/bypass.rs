//! Responses and requests that must never be stored or shared: they reach the origin every time (BYPASS).

mod common;

use common::{OriginHandle, ProxyHandle, TestOrigin, spawn_proxy};
use http::StatusCode;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/p/:name"
revalidate = 60

[[route]]
path = "/api/*rest"
cache = false
"#;

/// Requests `path` three times and checks each answer came from its own origin fetch.
async fn assert_never_cached(proxy: &ProxyHandle, origin: &OriginHandle, path: &str) {
    for n in 1..=3 {
        let r = proxy.client.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.cache(), "BYPASS", "{path} request {n}");
        assert_eq!(
            r.text,
            format!("<p>{path} render {n}</p>"),
            "{path} must be fetched anew each time"
        );
    }
    assert_eq!(origin.renders(path), 3, "{path} must never be served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn personal_or_uncacheable_responses_are_never_cached() {
    let cases = [
        ("/p/cookie", "set-cookie", "sid=abc"),
        ("/p/private", "cache-control", "private, max-age=60"),
        ("/p/no-store", "cache-control", "no-store"),
        ("/p/vary-cookie", "vary", "Cookie"),
        ("/p/vary-star", "vary", "*"),
    ];
    let mut builder = TestOrigin::new();
    for (path, name, value) in cases {
        builder = builder.header(path, name, value);
    }
    let origin = builder.start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    for (path, name, value) in cases {
        assert_never_cached(&proxy, &origin, path).await;
        let r = proxy.client.get(path).await;
        assert_eq!(
            r.header(name),
            Some(value),
            "{path}: the origin's {name} reaches the client"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmatched_paths_and_cache_false_routes_pass_through() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    assert_never_cached(&proxy, &origin, "/unrouted").await;
    assert_never_cached(&proxy, &origin, "/api/users").await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorized_requests_bypass_the_cache() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    for n in 1..=2 {
        let r = proxy.client.get("/p/secret").header("authorization", "Bearer t").await;
        assert_eq!(
            (r.cache(), r.text.clone()),
            ("BYPASS", format!("<p>/p/secret render {n}</p>"))
        );
    }
    assert_eq!(
        origin
            .last_request("/p/secret")
            .headers
            .get("authorization")
            .map(|v| v.to_str().expect("ascii")),
        Some("Bearer t"),
        "an authorized request is forwarded as is"
    );
    let anonymous = proxy.client.get("/p/secret").await;
    assert_eq!(
        (anonymous.cache(), anonymous.text.as_str()),
        ("MISS", "<p>/p/secret render 3</p>"),
        "an authorized response must not be stored for anonymous clients"
    );
    let authorized = proxy.client.get("/p/secret").header("authorization", "Bearer t").await;
    assert_eq!(
        authorized.cache(),
        "BYPASS",
        "a stored page is not served to an authorized request"
    );
    assert_eq!(origin.renders("/p/secret"), 4);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_headers_are_stripped_from_cached_and_bypassed_responses() {
    let origin = TestOrigin::new()
        .header("/p/tagged", "x-isr-tags", "blog, post-1")
        .header("/p/tagged", "x-next-cache-tags", "blog")
        .header("/p/tagged-cookie", "x-isr-tags", "blog")
        .header("/p/tagged-cookie", "set-cookie", "sid=1")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    for (path, expected) in [
        ("/p/tagged", "MISS"),
        ("/p/tagged", "HIT"),
        ("/p/tagged-cookie", "BYPASS"),
    ] {
        let r = proxy.client.get(path).await;
        assert_eq!(r.cache(), expected, "{path}");
        assert!(r.text.starts_with(&format!("<p>{path} render")), "{path}: {}", r.text);
        assert_eq!(
            r.header("x-isr-tags"),
            None,
            "{path} {expected}: tags are internal to isr-proxy"
        );
        assert_eq!(r.header("x-next-cache-tags"), None, "{path} {expected}");
    }
    assert_eq!(origin.renders("/p/tagged"), 1);
    proxy.shutdown().await;
}

/// Tags are an origin-to-proxy channel and must not reach clients on any path. Cached and uncacheable responses
/// always dropped them, but pass-through (`cache = false`, unmatched paths, POST) once forwarded them:
/// `forwarded_response` added `x-isr-cache` without removing the tag headers. This test caught it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_headers_are_stripped_from_pass_through_responses() {
    let origin = TestOrigin::new()
        .header("/api/tagged", "x-isr-tags", "blog")
        .header("/api/tagged", "x-next-cache-tags", "blog")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let r = proxy.client.get("/api/tagged").await;
    assert_eq!((r.cache(), r.text.as_str()), ("BYPASS", "<p>/api/tagged render 1</p>"));
    assert_eq!(r.header("x-isr-tags"), None, "tags are internal to isr-proxy");
    assert_eq!(r.header("x-next-cache-tags"), None);
    assert_eq!(origin.renders("/api/tagged"), 1);
    proxy.shutdown().await;
}
