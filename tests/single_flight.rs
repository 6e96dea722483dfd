//! Concurrent requests for one key share one origin fetch, except when the response is personal.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestOrigin, TestResponse, eventually, spawn_proxy, within};
use http::StatusCode;
use tokio::task::JoinSet;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog/:slug"
revalidate = 60

[[route]]
path = "/account"
revalidate = 60
"#;

async fn fire(client: &common::TestClient, path: &str, n: usize) -> Vec<TestResponse> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let request = client.get(path);
        set.spawn(request.send());
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_share_one_origin_fetch() {
    let origin = TestOrigin::new()
        .latency("/blog/cold", Duration::from_millis(200))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let responses = within(3_000, "50 concurrent misses", fire(&proxy.client, "/blog/cold", 50)).await;
    assert_eq!(responses.len(), 50);
    for r in &responses {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.text, "<p>/blog/cold render 1</p>",
            "every waiter gets the one shared render"
        );
        assert!(
            matches!(r.cache(), "MISS" | "HIT"),
            "unexpected x-isr-cache {}",
            r.cache()
        );
    }
    assert!(responses.iter().any(|r| r.cache() == "MISS"));
    assert_eq!(
        origin.renders("/blog/cold"),
        1,
        "50 concurrent misses must share one origin fetch"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stale_requests_are_answered_at_once_and_trigger_one_refresh() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/blog/warm").await.cache(), "MISS");

    origin.set_latency("/blog/warm", Duration::from_millis(600));
    proxy.clock.advance(Duration::from_secs(61));
    let responses = within(
        450,
        "50 STALE answers that do not wait for the 600 ms origin",
        fire(&proxy.client, "/blog/warm", 50),
    )
    .await;
    for r in &responses {
        assert_eq!((r.cache(), r.text.as_str()), ("STALE", "<p>/blog/warm render 1</p>"));
    }

    eventually(2_000, "the refreshed page", async || {
        proxy.client.get("/blog/warm").await.text == "<p>/blog/warm render 2</p>"
    })
    .await;
    assert_eq!(
        origin.renders("/blog/warm"),
        2,
        "50 concurrent stale requests must trigger exactly one background refresh"
    );
    proxy.shutdown().await;
}

/// A response with `Set-Cookie` belongs to one user. If single-flight handed the leader's response to the
/// waiters, every concurrent visitor would receive the leader's session cookie. Each render sets a cookie with
/// its own number, so a client whose body and cookie disagree, or two clients sharing a cookie, shows a leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_never_share_a_response_with_set_cookie() {
    let origin = TestOrigin::new()
        .page("/account", |n| format!("account render {n}"))
        .header("/account", "set-cookie", "sid={n}")
        .latency("/account", Duration::from_millis(150))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let responses = within(
        5_000,
        "50 concurrent personal misses",
        fire(&proxy.client, "/account", 50),
    )
    .await;
    let mut cookies = HashSet::new();
    for r in &responses {
        assert_eq!(r.cache(), "BYPASS");
        let cookie = r.header("set-cookie").expect("each client gets its own cookie");
        let n = cookie.strip_prefix("sid=").expect("sid cookie");
        assert_eq!(
            r.text,
            format!("account render {n}"),
            "body and cookie must come from the same fetch"
        );
        assert!(cookies.insert(n.to_owned()), "cookie sid={n} was handed to two clients");
    }
    assert_eq!(
        origin.renders("/account"),
        50,
        "each client fetches its personal page for itself"
    );
    assert_eq!(
        proxy.client.get("/account").await.cache(),
        "BYPASS",
        "nothing was stored"
    );
    proxy.shutdown().await;
}
