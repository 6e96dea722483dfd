//! Several instances of the proxy sharing one Redis (or Redis Cluster) in front of one origin: the config, an
//! instance that waits until its shared tier is up, and the checks the shared-tier tests have in common.

use http::StatusCode;
use isr_proxy::cache::store::redis::RedisState;
use isr_proxy::config::Token;

use super::{OriginHandle, ProxyHandle, eventually, spawn_proxy_with, within};
use tokio::task::JoinSet;

pub(crate) const TOKEN: &str = "fleet-token";

/// Budgets are generous (a loaded CI machine must not look like a Redis outage); production uses 50 ms.
/// `{redis}` stands for the `[cache.redis]` keys that say where Redis is.
pub(crate) const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "2s"

[cache.redis]
{redis}
lock_ttl = "5s"
timeout = "500ms"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

/// An instance whose `[cache.redis]` is `redis_keys` (`url = "..."`, and TLS or cluster keys), once its shared
/// tier is up.
pub(crate) async fn instance(redis_keys: &str, origin: &OriginHandle) -> ProxyHandle {
    let toml = CONFIG.replace("{redis}", redis_keys);
    let proxy = spawn_proxy_with(&toml, origin, |config| config.revalidate.token = Token::new(TOKEN)).await;
    wait_until_up(&proxy).await;
    proxy
}

/// Waits until `proxy` answers `path` with the origin's `n`th render.
pub(crate) async fn eventually_serves(proxy: &ProxyHandle, path: &str, n: usize, ms: u64) {
    let expected = render(path, n);
    eventually(ms, &format!("{path} render {n}"), async || {
        proxy.client.get(path).await.text == expected
    })
    .await;
}

pub(crate) async fn wait_until_up(proxy: &ProxyHandle) {
    eventually(5000, "the instance to connect to redis", async || {
        proxy.proxy.redis_state() == Some(RedisState::Up)
    })
    .await;
}

/// Waits for the instance's queued Redis writes (they are write-behind).
pub(crate) async fn flushed(proxy: &ProxyHandle) {
    within(3000, "queued redis writes", proxy.proxy.cache().flush()).await;
}

/// Renders `path` through `a` and checks that `b` serves it from Redis (HIT, no render of its own).
pub(crate) async fn share(a: &ProxyHandle, b: &ProxyHandle, path: &str) {
    a.client.get(path).await;
    flushed(a).await;
    let shared = b.client.get(path).await;
    assert_eq!(shared.cache(), "HIT", "{path} rendered by A is a hit on B");
}

pub(crate) async fn revalidate(proxy: &ProxyHandle, query: &str) -> serde_json::Value {
    let response = proxy
        .client
        .post(&format!("/_isr/revalidate?{query}"), "")
        .header("authorization", &format!("Bearer {TOKEN}"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    serde_json::from_str(&response.text).expect("JSON report")
}

pub(crate) fn render(path: &str, n: usize) -> String {
    format!("<p>{path} render {n}</p>")
}

/// `/blog/a` (already shared by `a` and `b`) goes stale on both; 100 concurrent requests split between them
/// all get the stale page at once, and the fleet renders it once.
pub(crate) async fn stale_burst_regenerates_once(origin: &OriginHandle, a: &ProxyHandle, b: &ProxyHandle) {
    a.clock.advance(std::time::Duration::from_secs(61));
    b.clock.advance(std::time::Duration::from_secs(61));
    let mut requests = JoinSet::new();
    for i in 0..100 {
        let client = if i % 2 == 0 { a.client.clone() } else { b.client.clone() };
        requests.spawn(async move { client.get("/blog/a").await });
    }
    while let Some(response) = within(2000, "stale responses", requests.join_next()).await {
        let response = response.expect("request task");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.cache(), "STALE", "stale pages are served at once");
    }
    for proxy in [a, b] {
        eventually_serves(proxy, "/blog/a", 2, 3000).await;
    }
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "2 instances x 50 stale requests must share one regeneration"
    );
}
