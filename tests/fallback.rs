//! Fallback modes (Next.js's `fallback`): `false` serves only known paths, `true` serves a placeholder while the
//! real page renders (crawlers wait for the real page instead).

mod common;

use std::time::Duration;

use common::{TestOrigin, eventually, spawn_proxy, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::config::Token;

const FALLBACK_FALSE: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/docs/:slug"
revalidate = 60
fallback = false
prerender = ["/docs/intro"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fallback_false_serves_prerendered_paths_and_404s_others_without_the_origin() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(FALLBACK_FALSE, &origin).await;

    let known = proxy.client.get("/docs/intro").await;
    assert_eq!(known.cache(), "HIT", "prerendered before the first request");
    assert_eq!(known.text, "<p>/docs/intro render 1</p>");

    let unknown = proxy.client.get("/docs/unknown").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        origin.renders("/docs/unknown"),
        0,
        "an unknown path must not reach the origin"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fallback_false_uses_the_origin_not_found_page_fetched_once() {
    let origin = TestOrigin::new()
        .page("/404", |_| "<h1>custom not found</h1>".into())
        .start()
        .await;
    let config = FALLBACK_FALSE.replace("url = \"{origin}\"", "url = \"{origin}\"\nnot_found_page = \"/404\"");
    let proxy = spawn_proxy(&config, &origin).await;
    for path in ["/docs/a", "/docs/b", "/docs/c"] {
        let response = proxy.client.get(path).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.text, "<h1>custom not found</h1>");
    }
    assert_eq!(
        origin.renders("/404"),
        1,
        "the not-found page is fetched once and cached"
    );
    assert_eq!(origin.renders("/docs/a"), 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fallback_false_serves_paths_regenerated_on_demand() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy_with(FALLBACK_FALSE, &origin, |c| c.revalidate.token = Token::new("t")).await;
    assert_eq!(proxy.client.get("/docs/new").await.status, StatusCode::NOT_FOUND);
    let response = proxy
        .client
        .post("/_isr/revalidate?path=/docs/new", "")
        .header("authorization", "Bearer t")
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let page = proxy.client.get("/docs/new").await;
    assert_eq!((page.status, page.cache()), (StatusCode::OK, "HIT"));
    assert_eq!(origin.renders("/docs/new"), 1);
    proxy.shutdown().await;
}

const FALLBACK_TRUE: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/shop/:id"
revalidate = 60
fallback = true
fallback_page = "/shop/_loading"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fallback_true_serves_the_placeholder_then_the_real_page() {
    let origin = TestOrigin::new()
        .page("/shop/_loading", |_| "<p>loading…</p>".into())
        .latency("/shop/1", Duration::from_millis(200))
        .start()
        .await;
    let proxy = spawn_proxy(FALLBACK_TRUE, &origin).await;

    let first = proxy.client.get("/shop/1").await;
    assert_eq!(first.cache(), "FALLBACK");
    assert_eq!(first.text, "<p>loading…</p>");
    assert_eq!(
        first.header("cache-control"),
        Some("private, no-store"),
        "a placeholder is never cached downstream"
    );

    eventually(2_000, "real page rendered in the background", async || {
        origin.renders("/shop/1") == 1
    })
    .await;
    eventually(2_000, "real page served", async || {
        proxy.client.get("/shop/1").await.cache() == "HIT"
    })
    .await;
    assert_eq!(proxy.client.get("/shop/1").await.text, "<p>/shop/1 render 1</p>");

    proxy.client.get("/shop/2").await;
    assert_eq!(
        origin.renders("/shop/_loading"),
        1,
        "the placeholder is fetched once and cached"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crawlers_get_the_real_page_on_the_first_request() {
    let origin = TestOrigin::new()
        .page("/shop/_loading", |_| "<p>loading…</p>".into())
        .start()
        .await;
    let proxy = spawn_proxy(FALLBACK_TRUE, &origin).await;
    let bot = proxy
        .client
        .get("/shop/9")
        .header(
            "user-agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        )
        .await;
    assert_eq!(bot.cache(), "MISS");
    assert_eq!(
        bot.text, "<p>/shop/9 render 1</p>",
        "a crawler must never index the loading shell"
    );
    assert_eq!(origin.renders("/shop/_loading"), 0);
    proxy.shutdown().await;
}
