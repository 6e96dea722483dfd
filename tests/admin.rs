//! The admin listener: `/metrics` counts what the proxy did, `/health` reports its state, and nothing but the
//! admin paths is served there. The views into the cache are in `admin_cache.rs`.

mod common;

use std::time::Duration;

use common::admin::AdminHandle;
use common::{ProxyHandle, TestClient, TestOrigin, spawn_proxy, spawn_proxy_with, within};
use http::StatusCode;
use isr_proxy::config::Token;

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "300ms"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

/// An admin listener for `proxy`, as its client; it stops when the handle is dropped.
async fn spawn_admin(proxy: &ProxyHandle) -> (TestClient, AdminHandle) {
    let admin = common::admin::spawn_admin(proxy).await;
    (admin.client.clone(), admin)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// The value of the sample `name` (with its labels, exactly as printed) in a scrape.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_requests_by_cache_status_and_report_the_cache() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let (admin, _stop) = spawn_admin(&proxy).await;

    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/other").await.cache(), "BYPASS");
    assert_eq!(proxy.client.get("/blog/%zz").await.status, StatusCode::BAD_REQUEST);

    let scrape = within(1_000, "a scrape", admin.get("/metrics")).await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert!(
        scrape.header("content-type").is_some_and(|t| t.contains("openmetrics")),
        "{:?}",
        scrape.headers
    );
    let text = &scrape.text;
    assert_eq!(sample(text, "isr_requests_total{cache=\"HIT\"}"), 2.0);
    assert_eq!(sample(text, "isr_requests_total{cache=\"MISS\"}"), 1.0);
    assert_eq!(sample(text, "isr_requests_total{cache=\"BYPASS\"}"), 1.0);
    assert_eq!(
        sample(text, "isr_requests_total{cache=\"NONE\"}"),
        1.0,
        "the 400 is counted too"
    );
    assert_eq!(sample(text, "isr_response_latency_seconds_count"), 5.0);
    assert_eq!(sample(text, "isr_origin_fetches_total{outcome=\"complete\"}"), 1.0);
    assert_eq!(sample(text, "isr_origin_latency_seconds_count"), 1.0);
    assert_eq!(sample(text, "isr_cache_entries"), 1.0);
    assert!(sample(text, "isr_cache_bytes") > 0.0);
    assert_eq!(sample(text, "isr_cache_evictions_total"), 0.0);
    assert_eq!(sample(text, "isr_regenerations_in_flight"), 0.0);
    assert_eq!(sample(text, "isr_regeneration_failures_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_revalidations_by_kind_and_result() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy_with(CONFIG, &origin, |config| {
        config.revalidate.token = Token::new("t0ken");
    })
    .await;
    let (admin, _stop) = spawn_admin(&proxy).await;
    proxy.client.get("/blog/a").await;

    let r = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a&path=/nowhere&tag=blog", "")
        .header("authorization", "Bearer t0ken")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a&purge=1", "")
        .header("authorization", "Bearer t0ken")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let text = admin.get("/metrics").await.text;
    for (kind, result) in [
        ("path", "regenerated"),
        ("path", "skipped"),
        ("tag", "marked_stale"),
        ("purge", "purged"),
    ] {
        let name = format!("isr_revalidations_total{{kind=\"{kind}\",result=\"{result}\"}}");
        assert_eq!(sample(&text, &name), 1.0, "{name}");
    }
    assert_eq!(
        sample(&text, "isr_requests_total{cache=\"NONE\"}"),
        2.0,
        "endpoint calls are requests too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_reports_cache_origin_and_prerender_state() {
    let origin = TestOrigin::new().start().await;
    let config = format!("{CONFIG}prerender = [\"/blog/one\", \"/blog/two\"]\n");
    let proxy = spawn_proxy(&config, &origin).await;
    let (admin, _stop) = spawn_admin(&proxy).await;
    // The proxy answers only once prerendering is done (prerender.wait defaults to true).
    assert_eq!(
        within(2_000, "a hit", proxy.client.get("/blog/one")).await.cache(),
        "HIT"
    );

    let r = admin.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let health = json(&r.text);
    assert_eq!(health["ok"], true);
    assert_eq!(health["cache"]["entries"], 2);
    assert!(health["cache"]["bytes"].as_u64().is_some_and(|b| b > 0), "{health}");
    assert_eq!(health["origin"]["reachable"], true);
    assert_eq!(health["prerender"]["total"], 2);
    assert_eq!(health["prerender"]["done"], 2);
    assert_eq!(health["prerender"]["finished"], true);
    assert_eq!(health["tiers"], serde_json::json!([]));

    origin.stop().await;
    proxy.clock.advance(Duration::from_secs(61));
    // A stale hit starts a regeneration, which finds the origin down.
    assert_eq!(proxy.client.get("/blog/one").await.cache(), "STALE");
    common::eventually(1_000, "the origin to be reported unreachable", async || {
        json(&admin.get("/health").await.text)["origin"]["reachable"] == false
    })
    .await;
    let health = json(&admin.get("/health").await.text);
    assert_eq!(
        health["ok"], true,
        "an unreachable origin does not make the proxy unhealthy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_serves_only_its_paths_and_only_reads() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let (admin, _stop) = spawn_admin(&proxy).await;

    for path in ["/index.html", "/blog/a", "/metrics/x", "/_isr/revalidate"] {
        assert_eq!(admin.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/metrics",
        "/health",
        "/stats",
        "/cache",
        "/cache/entry",
        "/regenerations",
        "/history",
        "/",
        "/dashboard.js",
    ] {
        let r = admin.post(path, "x").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        let head = admin.head(path).await.status;
        let expected = if path == "/cache/entry" {
            StatusCode::BAD_REQUEST // needs ?path=
        } else {
            StatusCode::OK
        };
        assert_eq!(head, expected, "{path}");
    }
    assert_eq!(origin.renders("/blog/a"), 0, "admin requests never reach the origin");
    assert_eq!(
        proxy.client.get("/metrics").await.cache(),
        "BYPASS",
        "the public listener does not serve metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_bypass_reasons_render_time_by_route_and_connections() {
    let origin = TestOrigin::new()
        .header("/blog/cookie", "set-cookie", "session=1")
        .start()
        .await;
    let config = format!("{CONFIG}\n[[route]]\npath = \"/api/*rest\"\ncache = false\n");
    let proxy = spawn_proxy(&config, &origin).await;
    let (admin, _stop) = spawn_admin(&proxy).await;

    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(proxy.client.get("/blog/cookie").await.cache(), "BYPASS");
    assert_eq!(proxy.client.get("/api/x").await.cache(), "BYPASS");
    assert_eq!(proxy.client.get("/other").await.cache(), "BYPASS");
    assert_eq!(proxy.client.post("/blog/a", "x").await.cache(), "BYPASS");
    let authorized = proxy.client.get("/blog/a").header("authorization", "Bearer u").await;
    assert_eq!(authorized.cache(), "BYPASS");

    let text = admin.get("/metrics").await.text;
    for reason in ["set-cookie", "route-not-cached", "no-route", "method", "authorization"] {
        let name = format!("isr_bypass_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &name), 1.0, "{name}");
    }
    assert_eq!(sample(&text, "isr_bypass_total{reason=\"private\"}"), 0.0);
    assert_eq!(
        sample(&text, "isr_origin_render_seconds_count{route=\"/blog/:slug\"}"),
        2.0,
        "both renders under the route, the uncacheable one too"
    );
    assert_eq!(sample(&text, "isr_regenerations_total{result=\"stored\"}"), 1.0);
    assert_eq!(sample(&text, "isr_regenerations_total{result=\"not_stored\"}"), 1.0);
    assert_eq!(sample(&text, "isr_cache_max_bytes"), 256.0 * 1024.0 * 1024.0);
    assert!(
        sample(&text, "isr_client_connections") >= 1.0,
        "the test client's pooled connection is open"
    );
}
