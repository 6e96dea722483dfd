//! Prerendering at startup: listed paths and `paths_url` are fetched before (or while) the proxy accepts.

mod common;

use std::time::Duration;

use common::{TestOrigin, eventually, spawn_proxy, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prerender_finishes_before_the_first_request_is_accepted() {
    let origin = TestOrigin::new()
        .page("/api/isr-paths", |_| r#"["/blog/from-origin", "/blog/b"]"#.into())
        .latency("/blog/a", Duration::from_millis(100))
        .start()
        .await;
    let config = r#"
[origin]
url = "{origin}"

[prerender]
paths_url = "/api/isr-paths"
concurrency = 2

[[route]]
path = "/blog/:slug"
revalidate = 60
prerender = ["/blog/a", "/blog/b"]
"#;
    let proxy = spawn_proxy(config, &origin).await;
    let first = proxy.client.get("/blog/a").await;
    assert_eq!(
        first.cache(),
        "HIT",
        "the first request is accepted only after prerendering"
    );
    for path in ["/blog/a", "/blog/b", "/blog/from-origin"] {
        assert_eq!(
            origin.renders(path),
            1,
            "{path} prerendered exactly once (duplicates merged)"
        );
        assert_eq!(proxy.client.get(path).await.cache(), "HIT");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_wait_false_the_proxy_answers_while_warming() {
    let origin = TestOrigin::new()
        .latency("/blog/slow", Duration::from_millis(800))
        .start()
        .await;
    let config = r#"
[origin]
url = "{origin}"

[prerender]
wait = false

[[route]]
path = "/blog/:slug"
revalidate = 60
prerender = ["/blog/slow"]

[[route]]
path = "/other"
revalidate = 60
"#;
    let proxy = spawn_proxy(config, &origin).await;
    let other = within(500, "an answer while prerendering runs", proxy.client.get("/other")).await;
    assert_eq!(other.cache(), "MISS");
    eventually(3_000, "background prerender", async || {
        origin.renders("/blog/slow") == 1
    })
    .await;
    eventually(2_000, "prerendered page cached", async || {
        proxy.client.get("/blog/slow").await.cache() == "HIT"
    })
    .await;
    assert_eq!(origin.renders("/blog/slow"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_paths_url_answer_is_logged_and_startup_continues() {
    let origin = TestOrigin::new()
        .page("/api/isr-paths", |_| "{not json".into())
        .start()
        .await;
    let config = r#"
[origin]
url = "{origin}"

[prerender]
paths_url = "/api/isr-paths"

[[route]]
path = "/blog/:slug"
revalidate = 60
prerender = ["/blog/listed"]
"#;
    let proxy = spawn_proxy(config, &origin).await;
    assert_eq!(
        proxy.client.get("/blog/listed").await.cache(),
        "HIT",
        "listed paths still prerendered"
    );
    assert_eq!(proxy.client.get("/blog/other").await.cache(), "MISS");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_prerender_path_never_stops_startup_and_renders_on_demand() {
    let origin = TestOrigin::new().start().await;
    origin.set_failing("/blog/broken", Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    let config = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog/:slug"
revalidate = 60
prerender = ["/blog/broken", "/blog/fine"]
"#;
    let proxy = spawn_proxy(config, &origin).await;
    assert_eq!(proxy.client.get("/blog/fine").await.cache(), "HIT");
    origin.set_failing("/blog/broken", None);
    let broken = proxy.client.get("/blog/broken").await;
    assert_eq!(broken.cache(), "MISS", "a failed prerender is retried on demand");
    assert_eq!(origin.renders("/blog/broken"), 2);
    proxy.shutdown().await;
}
