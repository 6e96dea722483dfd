//! Standards mode keeps what makes isr-proxy an ISR cache: tags and on-demand revalidation, the disk tier
//! across a restart, the shared Redis tier across instances, precompression, and single-flight misses.

mod common;

use std::path::Path;
use std::time::Duration;

use common::redis_server::RedisServer;
use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy_with, within};
use isr_proxy::cache::store::redis::RedisState;
use isr_proxy::config::Token;
use tokio::task::JoinSet;

const TOKEN: &str = "std-token";

fn config(extra: &str) -> String {
    format!(
        r#"
[origin]
url = "{{origin}}"
{extra}

[[route]]
path = "/std/*rest"
revalidate = "origin"
query = "keep"
"#
    )
}

async fn start(toml: &str, origin: &OriginHandle) -> ProxyHandle {
    spawn_proxy_with(toml, origin, |c| c.revalidate.token = Token::new(TOKEN)).await
}

fn disk(dir: &Path) -> String {
    config(&format!("[cache]\ndir = \"{}\"", dir.display()))
}

async fn revalidate(proxy: &ProxyHandle, query: &str) -> http::StatusCode {
    let r = proxy
        .client
        .post(&format!("/_isr/revalidate?{query}"), "")
        .header("authorization", &format!("Bearer {TOKEN}"))
        .await;
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_and_on_demand_revalidation_reach_origin_mode_pages() {
    let origin = TestOrigin::new()
        .header("/std/post", "cache-control", "max-age=3600")
        .header("/std/post", "x-isr-tags", "posts")
        .start()
        .await;
    let proxy = start(&config(""), &origin).await;
    proxy.client.get("/std/post").await;
    assert_eq!(revalidate(&proxy, "tag=posts").await, http::StatusCode::OK);
    let marked = proxy.client.get("/std/post").await;
    assert_eq!(
        marked.cache(),
        "STALE",
        "marked stale by tag: served at once, revalidated in the background"
    );
    eventually(2_000, "the background render", async || {
        origin.renders("/std/post") == 2
    })
    .await;
    eventually(2_000, "the new page", async || {
        proxy.client.get("/std/post").await.cache() == "HIT"
    })
    .await;

    assert_eq!(revalidate(&proxy, "path=/std/post").await, http::StatusCode::OK);
    assert_eq!(origin.renders("/std/post"), 3, "a path revalidation renders now");
    let fresh = proxy.client.get("/std/post").await;
    assert_eq!(
        (fresh.cache(), fresh.text.as_str()),
        ("HIT", "<p>/std/post render 3</p>")
    );
    assert_eq!(
        fresh.header("cache-control"),
        Some("max-age=3600"),
        "still the origin's headers"
    );

    assert_eq!(
        revalidate(&proxy, "path=/std/post&purge=true").await,
        http::StatusCode::OK
    );
    assert_eq!(proxy.client.get("/std/post").await.cache(), "MISS");
    proxy.shutdown().await;
}

/// A page marked stale by tag is served stale while it is revalidated only if its directives allow serving it
/// stale while revalidating: `s-maxage` with `stale-while-revalidate` does, `s-maxage` alone (proxy-revalidate to
/// a shared cache) does not, so its next request waits for the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_marked_stale_by_tag_is_served_stale_only_if_its_directives_allow_it() {
    let origin = TestOrigin::new()
        .header("/std/isr", "cache-control", "s-maxage=3600, stale-while-revalidate=60")
        .header("/std/isr", "x-isr-tags", "posts")
        .header("/std/strict", "cache-control", "s-maxage=3600")
        .header("/std/strict", "x-isr-tags", "posts")
        .start()
        .await;
    let proxy = start(&config(""), &origin).await;
    proxy.client.get("/std/isr").await;
    proxy.client.get("/std/strict").await;
    assert_eq!(revalidate(&proxy, "tag=posts").await, http::StatusCode::OK);
    assert_eq!(proxy.client.get("/std/isr").await.cache(), "STALE");
    eventually(2_000, "the background render", async || origin.renders("/std/isr") == 2).await;
    let strict = proxy.client.get("/std/strict").await;
    assert_eq!(
        (strict.cache(), strict.text.as_str()),
        ("MISS", "<p>/std/strict render 2</p>"),
        "s-maxage alone: validated before it is used again"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_mode_pages_survive_a_restart_with_their_headers_age_and_validators() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new()
        .header("/std/kept", "cache-control", "max-age=100, stale-while-revalidate=10")
        .header("/std/kept", "etag", "\"e1\"")
        .header("/std/kept", "age", "20")
        .header("/std/lang", "cache-control", "max-age=100")
        .header("/std/lang", "vary", "Accept-Language")
        .start()
        .await;
    let first = start(&disk(dir.path()), &origin).await;
    first.client.get("/std/kept").await;
    first.client.get("/std/lang").header("accept-language", "fr").await;
    first.shutdown().await;

    let second = start(&disk(dir.path()), &origin).await;
    within(3_000, "the startup scan", second.proxy.cache().flush()).await;
    let variant = second.client.get("/std/lang").header("accept-language", "fr").await;
    assert_eq!(
        variant.cache(),
        "HIT",
        "a persisted Vary variant is found after a restart"
    );
    assert_eq!(origin.renders("/std/lang"), 1);
    let restored = second.client.get("/std/kept").await;
    assert_eq!(restored.cache(), "HIT");
    assert_eq!(
        restored.header("cache-control"),
        Some("max-age=100, stale-while-revalidate=10")
    );
    assert_eq!(restored.header("etag"), Some("\"e1\""));
    assert_eq!(restored.header("age"), Some("20"), "the origin's Age came along");
    second.clock.advance(Duration::from_secs(85));
    assert_eq!(
        second.client.get("/std/kept").await.cache(),
        "STALE",
        "105 s old: its stale-while-revalidate window came along too"
    );
    origin.set_not_modified("/std/kept", true);
    eventually(2_000, "the validation", async || origin.renders("/std/kept") == 2).await;
    assert_eq!(
        origin
            .last_request("/std/kept")
            .headers
            .get("if-none-match")
            .map(|v| v.as_bytes()),
        Some(&b"\"e1\""[..])
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_shares_origin_mode_pages_and_invalidations_through_redis() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new()
        .header("/std/shared", "cache-control", "max-age=3600")
        .start()
        .await;
    let toml = config(&format!(
        "timeout = \"2s\"\n\n[cache.redis]\nurl = \"{}\"\nlock_ttl = \"5s\"\ntimeout = \"500ms\"",
        redis.url()
    ));
    let a = start(&toml, &origin).await;
    let b = start(&toml, &origin).await;
    for proxy in [&a, &b] {
        eventually(5_000, "redis", async || {
            proxy.proxy.redis_state() == Some(RedisState::Up)
        })
        .await;
    }
    a.client.get("/std/shared").await;
    within(3_000, "redis writes", a.proxy.cache().flush()).await;
    let on_b = b.client.get("/std/shared").await;
    assert_eq!(on_b.cache(), "HIT", "rendered via A, a hit on B");
    assert_eq!(on_b.header("cache-control"), Some("max-age=3600"));
    assert_eq!(origin.renders("/std/shared"), 1);

    a.client.post("/std/shared", "changed").await;
    eventually(3_000, "the invalidation to reach B", async || {
        b.client.get("/std/shared").await.cache() == "MISS"
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_share_one_fetch_and_pages_are_served_precompressed() {
    let page = "<p>compress me</p>".repeat(200);
    let body = page.clone();
    let origin = TestOrigin::new()
        .page("/std/big", move |_| body.clone())
        .header("/std/big", "cache-control", "max-age=60")
        .header("/std/big", "content-type", "text/html")
        .latency("/std/big", Duration::from_millis(150))
        .start()
        .await;
    let proxy = start(&config(""), &origin).await;
    let mut requests = JoinSet::new();
    for _ in 0..20 {
        let client = proxy.client.clone();
        requests.spawn(async move { client.get("/std/big").header("accept-encoding", "gzip").await });
    }
    while let Some(r) = requests.join_next().await {
        let r = r.expect("request task");
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(
            r.header("vary"),
            Some("Accept-Encoding"),
            "added only because a compressed form exists"
        );
    }
    assert_eq!(origin.renders("/std/big"), 1, "20 concurrent misses, one origin fetch");
    let identity = proxy.client.get("/std/big").await;
    assert_eq!((identity.cache(), identity.text.len()), ("HIT", page.len()));
    proxy.shutdown().await;
}
