//! Past `revalidate`, the old page is served at once (STALE) while one background regeneration replaces it.

mod common;

use std::time::Duration;

use common::{BLOG_CONFIG, TestOrigin, eventually, spawn_proxy, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_page_is_served_at_once_and_regenerated_once_in_background() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");

    origin.set_latency("/blog/a", Duration::from_millis(400));
    proxy.clock.advance(Duration::from_secs(61));
    let stale = within(
        200,
        "a STALE answer that does not wait for the 400 ms origin",
        proxy.client.get("/blog/a"),
    )
    .await;
    assert_eq!(stale.cache(), "STALE");
    assert_eq!(stale.text, "<p>/blog/a render 1</p>", "STALE serves the old page");
    let age: u64 = stale
        .header("age")
        .expect("Age on STALE")
        .parse()
        .expect("Age in seconds");
    assert!(age >= 61, "Age counts from the old render: {age}");

    let again = proxy.client.get("/blog/a").await;
    assert_eq!(
        (again.cache(), again.text.as_str()),
        ("STALE", "<p>/blog/a render 1</p>")
    );

    eventually(2_000, "the regenerated page to be served as a HIT", async || {
        let r = proxy.client.get("/blog/a").await;
        r.cache() == "HIT" && r.text == "<p>/blog/a render 2</p>"
    })
    .await;
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "stale requests share one background regeneration"
    );
    let hit = proxy.client.get("/blog/a").await;
    assert_eq!(hit.header("age"), Some("0"), "the new page's age starts at its render");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_page_within_revalidate_is_not_regenerated() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/b").await.cache(), "MISS");

    proxy.clock.advance(Duration::from_secs(59));
    let hit = proxy.client.get("/blog/b").await;
    assert_eq!((hit.cache(), hit.text.as_str()), ("HIT", "<p>/blog/b render 1</p>"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        origin.renders("/blog/b"),
        1,
        "a fresh page must not trigger a regeneration"
    );
    proxy.shutdown().await;
}
