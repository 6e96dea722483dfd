//! Instances sharing a real Redis Cluster (three primaries, `cluster-enabled yes`): pages, invalidations and
//! regeneration locks work across slots and nodes, and a node stopped mid-run fails no request.

mod common;

use std::time::Duration;

use common::binary::Load;
use common::fleet::{
    eventually_serves, flushed, instance, render, revalidate, share, stale_burst_regenerates_once, wait_until_up,
};
use common::redis_server::RedisCluster;
use common::{OriginHandle, ProxyHandle, TestOrigin, eventually};
use isr_proxy::cache::store::redis::RedisState;

/// Paths whose Redis keys spread over all three primaries (a key's slot comes from its hash).
const PATHS: [&str; 8] = [
    "/blog/a", "/blog/b", "/blog/c", "/blog/d", "/blog/e", "/blog/f", "/blog/g", "/blog/h",
];

struct ClusterFleet {
    cluster: RedisCluster,
    origin: OriginHandle,
    a: ProxyHandle,
    b: ProxyHandle,
}

impl ClusterFleet {
    async fn start(origin: TestOrigin) -> Self {
        let cluster = RedisCluster::start(3).await;
        let origin = origin.start().await;
        let a = instance(&cluster.seeds(), &origin).await;
        let b = instance(&cluster.seeds(), &origin).await;
        Self { cluster, origin, a, b }
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_and_revalidations_reach_the_other_instance_through_the_cluster() {
    let fleet = ClusterFleet::start(TestOrigin::new().header("/blog/a", "x-isr-tags", "blog").header(
        "/blog/h",
        "x-isr-tags",
        "blog",
    ))
    .await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    for path in PATHS {
        share(a, b, path).await;
        assert_eq!(origin.renders(path), 1, "{path}: B took A's page from the cluster");
    }

    let report = revalidate(a, "path=/blog/c").await;
    assert_eq!(report["paths"]["/blog/c"], "regenerated");
    eventually_serves(b, "/blog/c", 2, 5000).await;
    assert_eq!(
        origin.renders("/blog/c"),
        2,
        "B picked the new page up from the cluster"
    );

    // A tag's pages live in other slots than its set: B marks them stale in the cluster and A hears of it.
    let report = revalidate(b, "tag=blog").await;
    assert_eq!(report["tags"]["blog"], 2, "{report}");
    eventually(5000, "A to learn of the tag revalidation", async || {
        a.client.get("/blog/h").await.cache() == "STALE"
    })
    .await;

    let report = revalidate(b, "path=/blog/d&purge=1").await;
    assert_eq!(report["paths"]["/blog/d"], "purged");
    eventually(5000, "A to drop the purged page", async || {
        a.client.get("/blog/d").await.cache() == "MISS"
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stale_requests_regenerate_once_per_fleet_in_a_cluster() {
    let fleet = ClusterFleet::start(TestOrigin::new().latency("/blog/a", Duration::from_millis(150))).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;
    stale_burst_regenerates_once(origin, a, b).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_mid_run_fails_no_request_and_sharing_resumes() {
    let mut fleet = ClusterFleet::start(TestOrigin::new()).await;
    for path in PATHS {
        share(&fleet.a, &fleet.b, path).await;
    }
    let mut paths: Vec<String> = PATHS.iter().map(|p| (*p).to_owned()).collect();
    paths.extend((0..24).map(|i| format!("/blog/new-{i}")));
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let on_a = Load::start(&fleet.a.client, &paths, 3, false);
    let on_b = Load::start(&fleet.b.client, &paths, 3, false);
    tokio::time::sleep(Duration::from_millis(100)).await;

    fleet.cluster.nodes[1].kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let served = on_a.stop().await + on_b.stop().await;
    assert!(served > 0, "requests kept flowing while a node was down");

    fleet.cluster.nodes[1].restart().await;
    fleet.cluster.wait_until_ok(&[]).await;
    for proxy in [&fleet.a, &fleet.b] {
        wait_until_up(proxy).await;
        assert_eq!(proxy.proxy.redis_state(), Some(RedisState::Up));
    }
    for path in ["/blog/after-1", "/blog/after-2", "/blog/after-3", "/blog/after-4"] {
        share(&fleet.a, &fleet.b, path).await;
        assert_eq!(fleet.origin.renders(path), 1, "{path}: sharing resumed on every node");
    }
    flushed(&fleet.a).await;
    assert_eq!(
        fleet.b.client.get("/blog/after-1").await.text,
        render("/blog/after-1", 1)
    );
    fleet.shutdown().await;
}
