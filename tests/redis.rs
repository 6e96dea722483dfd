//! Several instances sharing one Redis: pages rendered once for the fleet, invalidations everywhere, one
//! regeneration per page across instances, and a Redis outage that never fails a request.
//!
//! Every test starts a real `redis-server` on a free loopback port (see `common::redis_server`).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::fleet::{
    CONFIG, eventually_serves, flushed, instance, render, revalidate, share, stale_burst_regenerates_once,
    wait_until_up,
};
use common::redis_server::RedisServer;
use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy_with, within};
use http::header::HeaderName;
use http::{HeaderMap, StatusCode};
use isr_proxy::admin::Health;
use isr_proxy::cache::store::codec::key_hash;
use isr_proxy::cache::store::redis::{RedisOptions, RedisState, RedisStore};
use isr_proxy::cache::store::{ApplyInvalidation, Store};
use isr_proxy::cache::{CacheKey, Entry, Lifetime};
use tokio::task::JoinSet;

async fn single(redis: &RedisServer, origin: &OriginHandle) -> ProxyHandle {
    instance(&redis_url(redis), origin).await
}

fn redis_url(redis: &RedisServer) -> String {
    format!("url = \"{}\"", redis.url())
}

/// Two instances sharing one Redis in front of one origin.
struct Fleet {
    redis: RedisServer,
    origin: OriginHandle,
    a: ProxyHandle,
    b: ProxyHandle,
}

impl Fleet {
    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }

    async fn start(origin: TestOrigin) -> Self {
        let redis = RedisServer::start().await;
        let origin = origin.start().await;
        let a = instance(&redis_url(&redis), &origin).await;
        let b = instance(&redis_url(&redis), &origin).await;
        Self { redis, origin, a, b }
    }
}

/// What `/health` (the `redis` tier) and `/metrics` (`isr_redis_up`) say about Redis.
async fn reported_up(proxy: &ProxyHandle) -> (bool, bool) {
    let health = Health::of(&proxy.proxy).await;
    let redis = health
        .tiers
        .iter()
        .find(|tier| tier.name == "redis")
        .expect("redis listed in /health");
    let metrics = proxy
        .proxy
        .metrics()
        .encode(proxy.proxy.snapshot())
        .expect("metrics encode");
    (redis.up, metrics.contains("isr_redis_up 1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_rendered_through_one_instance_is_a_hit_on_the_other() {
    let fleet = Fleet::start(TestOrigin::new()).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);

    let first = a.client.get("/blog/a").await;
    assert_eq!(
        (first.cache(), first.text.as_str()),
        ("MISS", render("/blog/a", 1).as_str())
    );
    flushed(a).await;

    let shared = b.client.get("/blog/a").await;
    assert_eq!(shared.status, StatusCode::OK);
    assert_eq!(shared.cache(), "HIT", "B found A's page in Redis");
    assert_eq!(shared.text, render("/blog/a", 1));
    assert_eq!(
        origin.renders("/blog/a"),
        1,
        "the second instance must not render the page again"
    );
    assert_eq!(b.client.get("/blog/a").await.cache(), "HIT", "now in B's memory");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revalidating_a_path_on_one_instance_reaches_the_other() {
    let fleet = Fleet::start(TestOrigin::new()).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;

    let report = revalidate(a, "path=/blog/a").await;
    assert_eq!(report["paths"]["/blog/a"], "regenerated");
    eventually_serves(b, "/blog/a", 2, 500).await;
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "B picks the new page up from Redis, not from the origin"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purging_a_path_on_one_instance_removes_it_everywhere() {
    let fleet = Fleet::start(TestOrigin::new()).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;

    let report = revalidate(b, "path=/blog/a&purge=1").await;
    assert_eq!(report["paths"]["/blog/a"], "purged");
    eventually(500, "A to forget the purged page", async || {
        a.client.get("/blog/a").await.cache() == "MISS"
    })
    .await;
    assert_eq!(origin.renders("/blog/a"), 2);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_revalidation_on_one_instance_marks_the_others_pages_stale() {
    let fleet = Fleet::start(TestOrigin::new().header("/blog/a", "x-isr-tags", "blog").header(
        "/blog/b",
        "x-isr-tags",
        "blog",
    ))
    .await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    a.client.get("/blog/a").await;
    // Only A has /blog/b: B's tag revalidation must reach it through Redis's tag index.
    a.client.get("/blog/b").await;
    flushed(a).await;
    assert_eq!(b.client.get("/blog/a").await.cache(), "HIT");

    let report = revalidate(b, "tag=blog").await;
    assert_eq!(report["tags"]["blog"], 2, "Redis knows both tagged pages: {report}");
    // The announcement reaches A asynchronously; until it does, A answers HIT (which changes nothing).
    eventually(500, "A to learn of B's tag revalidation", async || {
        let after = a.client.get("/blog/b").await;
        assert_eq!(
            after.text,
            render("/blog/b", 1),
            "the stale page is served while it regenerates"
        );
        after.cache() == "STALE"
    })
    .await;

    for (proxy, path) in [(a, "/blog/a"), (b, "/blog/a"), (b, "/blog/b")] {
        eventually_serves(proxy, path, 2, 2000).await;
    }
    assert_eq!(origin.renders("/blog/a"), 2, "one regeneration for the fleet");
    assert_eq!(origin.renders("/blog/b"), 2, "one regeneration for the fleet");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stale_requests_on_two_instances_regenerate_once() {
    let fleet = Fleet::start(TestOrigin::new().latency("/blog/a", Duration::from_millis(150))).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;
    stale_burst_regenerates_once(origin, a, b).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_two_instances_render_once() {
    let fleet = Fleet::start(TestOrigin::new().latency("/blog/a", Duration::from_millis(150))).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);

    let mut requests = JoinSet::new();
    for i in 0..100 {
        let client = if i % 2 == 0 { a.client.clone() } else { b.client.clone() };
        requests.spawn(async move { client.get("/blog/a").await });
    }
    while let Some(response) = within(3000, "cold responses", requests.join_next()).await {
        let response = response.expect("request task");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text, render("/blog/a", 1));
    }
    assert_eq!(
        origin.renders("/blog/a"),
        1,
        "100 misses on 2 instances must share one render"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_holders_lock_expires_and_the_page_is_rendered() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new().start().await;
    let a = single(&redis, &origin).await;
    // An instance that took the lock and died: its token is nobody's, and only expiry frees the page.
    let lock = format!(
        "isr:lock:{{{:032x}}}",
        key_hash(&CacheKey::new("/blog/a", None, Vec::new()))
    );
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("crashed-instance")
        .arg("PX")
        .arg(400)
        .query_async(&mut conn)
        .await
        .expect("plant the lock");

    let waiting = tokio::spawn({
        let client = a.client.clone();
        async move { client.get("/blog/a").await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(origin.renders("/blog/a"), 0, "the page is locked by another instance");
    let response = within(3000, "the render after the lock expired", waiting)
        .await
        .expect("request task");
    assert_eq!(
        (response.cache(), response.text.as_str()),
        ("MISS", render("/blog/a", 1).as_str())
    );
    assert_eq!(origin.renders("/blog/a"), 1);
    eventually(1000, "the new holder to release its lock", async || {
        let left: Option<String> = redis::cmd("GET").arg(&lock).query_async(&mut conn).await.expect("GET");
        left.is_none()
    })
    .await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_never_fails_a_request_and_sharing_resumes() {
    let mut fleet = Fleet::start(TestOrigin::new()).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;

    fleet.redis.kill();
    for proxy in [a, b] {
        let cached = within(1000, "a cached page during the outage", proxy.client.get("/blog/a")).await;
        assert_eq!(
            (cached.status, cached.cache()),
            (StatusCode::OK, "HIT"),
            "served from memory"
        );
    }
    let fresh = within(2000, "a miss during the outage", a.client.get("/blog/new")).await;
    assert_eq!(
        (fresh.status, fresh.cache()),
        (StatusCode::OK, "MISS"),
        "rendered by the origin"
    );
    let other = within(2000, "a miss during the outage", b.client.get("/blog/other")).await;
    assert_eq!((other.status, other.cache()), (StatusCode::OK, "MISS"));
    for proxy in [a, b] {
        eventually(3000, "the outage to show", async || {
            proxy.proxy.redis_state() == Some(RedisState::Down)
        })
        .await;
        assert_eq!(
            reported_up(proxy).await,
            (false, false),
            "/health and /metrics show the outage"
        );
    }

    fleet.redis.restart().await;
    for proxy in [a, b] {
        wait_until_up(proxy).await;
        assert_eq!(reported_up(proxy).await, (true, true));
    }
    share(a, b, "/blog/c").await;
    assert_eq!(origin.renders("/blog/c"), 1);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revalidation_made_during_an_outage_reaches_the_other_instance_afterwards() {
    let mut fleet = Fleet::start(TestOrigin::new()).await;
    let (origin, a, b) = (&fleet.origin, &fleet.a, &fleet.b);
    share(a, b, "/blog/a").await;

    fleet.redis.kill();
    for proxy in [a, b] {
        eventually(3000, "the outage to show", async || {
            proxy.proxy.redis_state() == Some(RedisState::Down)
        })
        .await;
    }
    let report = revalidate(a, "path=/blog/a").await;
    assert_eq!(report["paths"]["/blog/a"], "regenerated");
    assert_eq!(
        b.client.get("/blog/a").await.text,
        render("/blog/a", 1),
        "B cannot know yet"
    );

    fleet.redis.restart().await;
    eventually_serves(b, "/blog/a", 2, 5000).await;
    assert_eq!(origin.renders("/blog/a"), 2);
    fleet.shutdown().await;
}

fn page(body: &'static str, generated_at: SystemTime) -> Arc<Entry> {
    Arc::new(Entry::from_origin(
        StatusCode::OK,
        HeaderMap::new(),
        Bytes::from_static(body.as_bytes()),
        generated_at,
        Lifetime {
            revalidate: Some(Duration::from_secs(60)),
            expire: Duration::from_secs(600),
        },
        &HeaderName::from_static("x-isr-tags"),
    ))
}

fn store(redis: &RedisServer) -> RedisStore {
    let ignore: ApplyInvalidation = Arc::new(|_| Box::pin(async {}));
    let options = RedisOptions {
        url: redis.url(),
        key_prefix: "isr:".to_owned(),
        lock_ttl: Duration::from_secs(5),
        timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    };
    RedisStore::open(options, ignore).expect("valid redis url")
}

/// Two instances writing one page: the one whose render is older (a slow fetch, a warm-up) finishes last. Redis
/// must keep the newer page, or the fleet would roll back to older content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_page_never_replaces_a_newer_one_in_redis() {
    let redis = RedisServer::start().await;
    let (fast, slow) = (store(&redis), store(&redis));
    for tier in [&fast, &slow] {
        within(5000, "the store to connect", tier.wait_until_up(Duration::from_secs(5))).await;
    }
    let key = CacheKey::new("/blog/a", None, Vec::new());
    let now = SystemTime::now();
    fast.save(&key, &page("newer", now));
    fast.flush().await;
    slow.save(&key, &page("older", now - Duration::from_secs(5)));
    slow.flush().await;

    let kept = fast.load(&key).await.expect("page in redis");
    assert_eq!(
        kept.body,
        Bytes::from_static(b"newer"),
        "the older write must be refused"
    );
    slow.save(&key, &page("newest", now + Duration::from_secs(1)));
    slow.flush().await;
    assert_eq!(fast.load(&key).await.expect("page").body, Bytes::from_static(b"newest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revalidating_a_path_marks_the_other_instances_rsc_variants_stale() {
    let fleet = Fleet::start(TestOrigin::new()).await;
    let (a, b) = (&fleet.a, &fleet.b);
    let rsc = b.client.get("/blog/a").header("rsc", "1").await;
    assert_eq!(rsc.cache(), "MISS");
    assert_eq!(b.client.get("/blog/a").header("rsc", "1").await.cache(), "HIT");

    revalidate(a, "path=/blog/a").await;
    eventually(500, "B's RSC payload of the path to go stale", async || {
        b.client.get("/blog/a").header("rsc", "1").await.cache() == "STALE"
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_redis_costs_a_request_at_most_the_timeout() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new().start().await;
    let toml = CONFIG
        .replace("{redis}", &redis_url(&redis))
        .replace("timeout = \"500ms\"", "timeout = \"100ms\"");
    let a = spawn_proxy_with(&toml, &origin, |_| {}).await;
    wait_until_up(&a).await;
    a.client.get("/blog/a").await;

    // Redis accepts connections but answers nothing for two seconds.
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .query_async(&mut conn)
        .await
        .expect("pause redis");
    let cached = within(300, "a cached page while redis hangs", a.client.get("/blog/a")).await;
    assert_eq!(cached.cache(), "HIT", "a hit never touches redis");
    let fresh = within(1000, "a miss while redis hangs", a.client.get("/blog/new")).await;
    assert_eq!((fresh.status, fresh.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(
        a.proxy.redis_state(),
        Some(RedisState::Down),
        "the slow answer counts as an outage"
    );
    let next = within(300, "a miss once redis is known down", a.client.get("/blog/next")).await;
    assert_eq!(next.cache(), "MISS", "no second wait: redis is skipped while down");
    wait_until_up(&a).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_specific_pages_are_shared_and_purged_per_host_across_instances() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::new().start().await;
    let sites = format!(
        "{}\n[[route]]\nhost = [\"a.example.com\", \"b.example.com\"]\npath = \"/blog/:slug\"\nrevalidate = 60\n",
        CONFIG.replace("{redis}", &redis_url(&redis))
    );
    let start = || {
        spawn_proxy_with(&sites, &origin, |config| {
            config.revalidate.token = isr_proxy::config::Token::new(common::fleet::TOKEN)
        })
    };
    let (a, b) = (start().await, start().await);
    wait_until_up(&a).await;
    wait_until_up(&b).await;
    let get = |proxy: &ProxyHandle, host: &'static str| proxy.client.get("/blog/x").header("host", host);

    assert_eq!(get(&a, "a.example.com").await.cache(), "MISS");
    flushed(&a).await;
    let shared = get(&b, "a.example.com").await;
    assert_eq!(
        (shared.cache(), shared.text.as_str()),
        ("HIT", render("/blog/x", 1).as_str())
    );
    assert_eq!(
        get(&b, "b.example.com").await.text,
        render("/blog/x", 2),
        "each site has its own page"
    );
    flushed(&b).await;

    let response = b
        .client
        .post("/_isr/revalidate?path=/blog/x&host=a.example.com&purge=1", "")
        .header("authorization", &format!("Bearer {}", common::fleet::TOKEN))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    eventually(1000, "A to drop site a's purged page", async || {
        get(&a, "a.example.com").await.cache() == "MISS"
    })
    .await;
    let other = get(&a, "b.example.com").await;
    assert_eq!(
        (other.cache(), other.text.as_str()),
        ("HIT", render("/blog/x", 2).as_str()),
        "site b's page survived the purge of site a's, and A reads it from Redis"
    );
    a.shutdown().await;
    b.shutdown().await;
}
