//! Conditional requests: `If-None-Match` with the stored ETag is answered 304 without a body.

mod common;

use std::time::Duration;

use common::{BLOG_CONFIG, TestOrigin, spawn_proxy};
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matching_if_none_match_gets_304_without_body() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    let miss = proxy.client.get("/blog/a").await;
    assert_eq!((miss.cache(), miss.text.as_str()), ("MISS", "<p>/blog/a render 1</p>"));
    let etag = miss.header("etag").expect("stored pages carry an ETag").to_owned();

    for inm in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}")] {
        let r = proxy.client.get("/blog/a").header("if-none-match", &inm).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert_eq!(r.text, "", "a 304 has no body");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.cache(), "HIT");
    }
    assert_eq!(origin.renders("/blog/a"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_matching_if_none_match_gets_the_page() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");

    let r = proxy
        .client
        .get("/blog/a")
        .header("if-none-match", "\"not-the-etag\"")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!((r.cache(), r.text.as_str()), ("HIT", "<p>/blog/a render 1</p>"));
    assert!(r.header("etag").is_some());
    assert_eq!(origin.renders("/blog/a"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_page_answers_304_and_regenerated_page_gets_a_new_etag() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    let old = proxy.client.get("/blog/a").await;
    let old_etag = old.header("etag").expect("ETag").to_owned();

    proxy.clock.advance(Duration::from_secs(61));
    let stale = proxy.client.get("/blog/a").header("if-none-match", &old_etag).await;
    assert_eq!(
        (stale.status, stale.cache(), stale.text.as_str()),
        (StatusCode::NOT_MODIFIED, "STALE", "")
    );

    common::eventually(2_000, "the regenerated page", async || {
        let r = proxy.client.get("/blog/a").header("if-none-match", &old_etag).await;
        r.status == StatusCode::OK && r.cache() == "HIT" && r.text == "<p>/blog/a render 2</p>"
    })
    .await;
    let fresh = proxy.client.get("/blog/a").await;
    assert_ne!(
        fresh.header("etag"),
        Some(old_etag.as_str()),
        "a new body has a new ETag"
    );
    assert_eq!(origin.renders("/blog/a"), 2);
    proxy.shutdown().await;
}
