//! Instances sharing a Redis that speaks TLS only (`rediss://`), with a CA made in the test: pages and
//! invalidations go through it; one that requires client certificates gets the configured one, and without it
//! the instances run on their own (requests still succeed).

mod common;

use common::fleet::{eventually_serves, instance, revalidate, share};
use common::redis_server::RedisServer;
use common::tls::{Issued, TestCa};
use common::{TestOrigin, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::cache::store::redis::RedisState;

fn tls_keys(redis: &RedisServer, ca: &TestCa, client: Option<&Issued>) -> String {
    let mut keys = format!(
        "url = {:?}\nca_file = {:?}\n",
        redis.url(),
        ca.ca_file().display().to_string()
    );
    if let Some(client) = client {
        keys.push_str(&format!(
            "client_cert = {:?}\nclient_key = {:?}\n",
            client.cert_file.display().to_string(),
            client.key_file.display().to_string()
        ));
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_and_revalidations_are_shared_through_a_tls_redis() {
    let ca = TestCa::new();
    let redis = RedisServer::start_tls(&ca, None).await;
    let origin = TestOrigin::new().start().await;
    let keys = tls_keys(&redis, &ca, None);
    let (a, b) = (instance(&keys, &origin).await, instance(&keys, &origin).await);

    share(&a, &b, "/blog/a").await;
    assert_eq!(origin.renders("/blog/a"), 1, "B read A's page over TLS");
    let report = revalidate(&a, "path=/blog/a").await;
    assert_eq!(report["paths"]["/blog/a"], "regenerated");
    eventually_serves(&b, "/blog/a", 2, 2000).await;
    assert_eq!(origin.renders("/blog/a"), 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_requiring_client_certificates_gets_the_configured_one() {
    let ca = TestCa::new();
    let client = ca.issue("client", &["isr-proxy"]);
    let redis = RedisServer::start_tls(&ca, Some(client.clone())).await;
    let origin = TestOrigin::new().start().await;
    let keys = tls_keys(&redis, &ca, Some(&client));
    let (a, b) = (instance(&keys, &origin).await, instance(&keys, &origin).await);
    share(&a, &b, "/blog/a").await;
    a.shutdown().await;
    b.shutdown().await;

    // Without a client certificate Redis refuses the handshake: the instance never connects, and serves anyway.
    let refused = spawn_proxy_with(
        &common::fleet::CONFIG.replace("{redis}", &tls_keys(&redis, &ca, None)),
        &origin,
        |_| {},
    )
    .await;
    let response = refused.client.get("/blog/b").await;
    assert_eq!((response.status, response.cache()), (StatusCode::OK, "MISS"));
    // Long enough for the instances above to have connected (they were up within this time).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        refused.proxy.redis_state(),
        Some(RedisState::Down),
        "Redis refused the handshake without a client certificate"
    );
    refused.shutdown().await;
}
