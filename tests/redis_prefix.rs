//! Prefix revalidation across a fleet sharing one Redis: a prefix revalidated on one instance reaches the pages
//! in every instance's memory and the pages only Redis holds, and nothing beside the prefix, per site.
//!
//! Every test starts a real `redis-server` on a free loopback port (see `common::redis_server`).

mod common;

use common::fleet::{CONFIG, TOKEN, eventually_serves, flushed, render, revalidate, share, wait_until_up};
use common::redis_server::RedisServer;
use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy_with};
use isr_proxy::config::Token;

/// The fleet's config with pages at any depth under `/blog/`, and site-specific pages under `/shop/`.
fn config(redis: &RedisServer) -> String {
    let redis_keys = format!("url = \"{}\"", redis.url());
    let sites = "\n[[route]]\npath = \"/shop/:slug\"\nrevalidate = 60\nhost = [\"a.example.com\", \"b.example.com\"]\n";
    CONFIG
        .replace("{redis}", &redis_keys)
        .replace("/blog/:slug", "/blog/*rest")
        + sites
}

async fn instance(redis: &RedisServer, origin: &OriginHandle) -> ProxyHandle {
    let proxy = spawn_proxy_with(&config(redis), origin, |config| {
        config.revalidate.token = Token::new(TOKEN)
    })
    .await;
    wait_until_up(&proxy).await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_revalidated_on_one_instance_reaches_every_instance_and_pages_only_redis_holds() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new().start().await;
    let (a, b) = (instance(&redis, &origin).await, instance(&redis, &origin).await);
    share(&a, &b, "/blog/a/1").await;
    share(&a, &b, "/blog/ab").await;
    // A page in Redis and in no instance's memory: rendered by an instance that is gone.
    let gone = instance(&redis, &origin).await;
    gone.client.get("/blog/a/2").await;
    flushed(&gone).await;
    gone.shutdown().await;

    let report = revalidate(&a, "prefix=/blog/a").await;
    assert_eq!(
        report["prefixes"]["/blog/a"], 2,
        "Redis's path index knows both pages under /blog/a: {report}"
    );
    eventually(1000, "B to learn of A's prefix revalidation", async || {
        b.client.get("/blog/a/1").await.cache() == "STALE"
    })
    .await;
    let redis_only = b.client.get("/blog/a/2").await;
    assert_eq!(
        (redis_only.cache(), redis_only.text.as_str()),
        ("STALE", render("/blog/a/2", 1).as_str()),
        "a page read from Redis after the revalidation is stale"
    );
    for path in ["/blog/a/1", "/blog/a/2"] {
        eventually_serves(&b, path, 2, 2000).await;
        eventually_serves(&a, path, 2, 2000).await;
        assert_eq!(origin.renders(path), 2, "{path}: one regeneration for the fleet");
    }
    for proxy in [&a, &b] {
        assert_eq!(
            proxy.client.get("/blog/ab").await.cache(),
            "HIT",
            "/blog/ab is not under /blog/a"
        );
    }
    assert_eq!(origin.renders("/blog/ab"), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_prefix_purged_on_one_instance_leaves_the_other_sites_pages_everywhere() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new().start().await;
    let (a, b) = (instance(&redis, &origin).await, instance(&redis, &origin).await);
    let get = |proxy: &ProxyHandle, host: &'static str| proxy.client.get("/shop/x").header("host", host);
    for host in ["a.example.com", "b.example.com"] {
        assert_eq!(get(&a, host).await.cache(), "MISS");
        flushed(&a).await;
        assert_eq!(get(&b, host).await.cache(), "HIT", "{host}'s page is shared");
    }

    let report = revalidate(&a, "prefix=/shop&host=a.example.com&purge=1").await;
    assert_eq!(report["prefixes"]["/shop"], 1, "{report}");
    eventually(1000, "B to drop site a's purged page", async || {
        get(&b, "a.example.com").await.cache() == "MISS"
    })
    .await;
    for proxy in [&a, &b] {
        assert_eq!(
            get(proxy, "b.example.com").await.cache(),
            "HIT",
            "site b's page survives"
        );
    }
    assert_eq!(
        origin.renders("/shop/x"),
        3,
        "site a's page rendered once more, for the fleet"
    );
    a.shutdown().await;
    b.shutdown().await;
}
