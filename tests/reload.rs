//! Reloading the config of the real binary with SIGHUP: under load, no request fails, a changed route takes
//! effect, the cache stays warm, an invalid file is refused while the old config keeps serving, and settings
//! that need a restart are reported.

mod common;

use common::binary::{Load, ProxyProcess, free_port};
use common::{BLOG_CONFIG, TestOrigin, eventually};

/// `BLOG_CONFIG` plus a cached `/docs/:slug` route.
fn after() -> String {
    format!("{BLOG_CONFIG}\n[[route]]\npath = \"/docs/:slug\"\nrevalidate = 60\n")
}

async fn generation(proxy: &ProxyProcess) -> u64 {
    proxy.health().await["config"]["generation"]
        .as_u64()
        .expect("generation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_applies_a_changed_route_under_load_with_the_cache_warm() {
    let origin = TestOrigin::new().start().await;
    let proxy = ProxyProcess::start_with_admin(BLOG_CONFIG, &origin.url(), free_port()).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(
        proxy.client.get("/docs/a").await.cache(),
        "BYPASS",
        "no /docs route yet"
    );
    assert_eq!(generation(&proxy).await, 0);

    let load = Load::start(&proxy.client, &["/blog/a", "/docs/a"], 4, false);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    proxy.rewrite_config(&after());
    proxy.signal("HUP");
    eventually(5000, "the new /docs route to serve from the cache", async || {
        proxy.client.get("/docs/a").await.cache() == "HIT"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let served = load.stop().await;
    assert!(served > 0, "the load ran");

    assert_eq!(generation(&proxy).await, 1);
    assert_eq!(
        proxy.client.get("/blog/a").await.cache(),
        "HIT",
        "the memory tier survived the reload"
    );
    assert_eq!(
        origin.renders("/blog/a"),
        1,
        "no page was rendered again because of the reload"
    );
    assert!(
        proxy
            .metrics()
            .await
            .contains("isr_config_reloads_total{result=\"success\"} 1"),
        "the reload is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_and_restart_only_changes_are_reported() {
    let origin = TestOrigin::new().start().await;
    let proxy = ProxyProcess::start_with_admin(BLOG_CONFIG, &origin.url(), free_port()).await;
    proxy.client.get("/blog/a").await;

    proxy.rewrite_config(&after().replace("revalidate = 60\n\n[[route]]", "revalidate = \"often\"\n\n[[route]]"));
    proxy.signal("HUP");
    eventually(5000, "the refused reload to be counted", async || {
        proxy
            .metrics()
            .await
            .contains("isr_config_reloads_total{result=\"failure\"} 1")
    })
    .await;
    assert_eq!(generation(&proxy).await, 0, "the old config keeps serving");
    assert_eq!(
        proxy.client.get("/docs/a").await.cache(),
        "BYPASS",
        "nothing of the bad file applied"
    );
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");

    // The file moves `listen` to another port, as an operator would edit it.
    proxy.rewrite_config(&after());
    let moved = std::fs::read_to_string(&proxy.config_file)
        .expect("read config")
        .replace(
            &format!("listen = \"{}\"", proxy.addr),
            &format!("listen = \"127.0.0.1:{}\"", free_port()),
        );
    std::fs::write(&proxy.config_file, moved).expect("write config");
    proxy.signal("HUP");
    eventually(5000, "the reload to apply", async || generation(&proxy).await == 1).await;
    let health = proxy.health().await;
    assert_eq!(
        health["config"]["restart_needed"],
        serde_json::json!(["listen"]),
        "{health}"
    );
    assert_eq!(
        proxy.client.get("/docs/a").await.cache(),
        "MISS",
        "the rest of the file applied"
    );
    assert_eq!(
        proxy.client.get("/blog/a").await.cache(),
        "HIT",
        "still on the old port"
    );
}
