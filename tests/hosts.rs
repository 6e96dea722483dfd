//! Several sites behind one proxy: routes that name their hosts key pages by host, render them with the host
//! sent to the origin, and revalidate them per host; other hosts fall through to the host-less routes.

mod common;

use common::{ProxyHandle, TestOrigin, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::config::Token;

const TOKEN: &str = "sites-token";

const SITES: &str = r#"
[origin]
url = "{origin}"
{origin_keys}

[[route]]
path = "/blog/:slug"
revalidate = 60
host = ["a.example.com", "b.example.com"]

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

async fn proxy(origin: &common::OriginHandle, origin_keys: &str) -> ProxyHandle {
    let toml = SITES.replace("{origin_keys}", origin_keys);
    spawn_proxy_with(&toml, origin, |config| config.revalidate.token = Token::new(TOKEN)).await
}

async fn get(proxy: &ProxyHandle, host: &str, path: &str) -> (String, String) {
    let response = proxy.client.get(path).header("host", host).await;
    assert_eq!(response.status, StatusCode::OK, "{host}{path}: {}", response.text);
    (response.cache().to_owned(), response.text)
}

async fn revalidate(proxy: &ProxyHandle, body: &str) -> serde_json::Value {
    let response = proxy
        .client
        .post("/_isr/revalidate", body.to_owned())
        .header("authorization", &format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    serde_json::from_str(&response.text).expect("JSON report")
}

fn render(n: usize) -> String {
    format!("<p>/blog/x render {n}</p>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_on_one_origin_get_their_own_pages() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin, "").await;

    assert_eq!(
        get(&proxy, "a.example.com", "/blog/x").await,
        ("MISS".into(), render(1))
    );
    assert_eq!(
        get(&proxy, "b.example.com", "/blog/x").await,
        ("MISS".into(), render(2))
    );
    assert_eq!(get(&proxy, "a.example.com", "/blog/x").await, ("HIT".into(), render(1)));
    assert_eq!(
        get(&proxy, "B.Example.COM:8080", "/blog/x").await,
        ("HIT".into(), render(2)),
        "the host is normalised: case, port"
    );
    let hosts: Vec<String> = origin
        .requests("/blog/x")
        .iter()
        .map(|r| r.headers["host"].to_str().expect("ASCII").to_owned())
        .collect();
    assert_eq!(
        hosts,
        ["a.example.com", "b.example.com"],
        "each page is rendered for its own site"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_for_one_tenant_leaves_the_other() {
    let origin = TestOrigin::new().header("/blog/x", "x-isr-tags", "blog").start().await;
    let proxy = proxy(&origin, "").await;
    get(&proxy, "a.example.com", "/blog/x").await;
    get(&proxy, "b.example.com", "/blog/x").await;

    let report = revalidate(
        &proxy,
        r#"{"paths": ["/blog/x"], "host": "a.example.com", "purge": true}"#,
    )
    .await;
    assert_eq!(report["paths"]["/blog/x"], "purged");
    assert_eq!(get(&proxy, "b.example.com", "/blog/x").await, ("HIT".into(), render(2)));
    assert_eq!(
        get(&proxy, "a.example.com", "/blog/x").await,
        ("MISS".into(), render(3))
    );

    let report = revalidate(&proxy, r#"{"paths": ["https://b.example.com/blog/x"], "purge": true}"#).await;
    assert_eq!(
        report["paths"]["https://b.example.com/blog/x"], "purged",
        "a full URL names its host"
    );
    assert_eq!(get(&proxy, "a.example.com", "/blog/x").await, ("HIT".into(), render(3)));
    assert_eq!(
        get(&proxy, "b.example.com", "/blog/x").await,
        ("MISS".into(), render(4))
    );

    let report = revalidate(&proxy, r#"{"tags": ["blog"], "host": "a.example.com"}"#).await;
    assert_eq!(report["tags"]["blog"], 1, "a tag reaches its own site's pages only");
    assert_eq!(get(&proxy, "a.example.com", "/blog/x").await.0, "STALE");
    assert_eq!(get(&proxy, "b.example.com", "/blog/x").await.0, "HIT");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_falls_through_to_host_less_routes() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin, "").await;

    assert_eq!(
        get(&proxy, "c.example.com", "/blog/x").await,
        ("MISS".into(), render(1))
    );
    assert_eq!(
        get(&proxy, "d.example.org", "/blog/x").await,
        ("HIT".into(), render(1)),
        "host-less routes share one page across hosts, as without any host routes"
    );
    assert_eq!(
        get(&proxy, "a.example.com", "/blog/x").await,
        ("MISS".into(), render(2))
    );
    let first = &origin.requests("/blog/x")[0];
    assert_eq!(
        first.headers["host"].to_str().expect("ASCII"),
        origin.addr.to_string(),
        "a host-less page is fetched exactly as before"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_can_travel_as_x_forwarded_host() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin, "host_header = \"x-forwarded-host\"").await;

    get(&proxy, "a.example.com", "/blog/x").await;
    let seen = origin.last_request("/blog/x");
    assert_eq!(seen.headers["x-forwarded-host"], "a.example.com");
    assert_eq!(seen.headers["host"].to_str().expect("ASCII"), origin.addr.to_string());
    proxy.shutdown().await;
}
