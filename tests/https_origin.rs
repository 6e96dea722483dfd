//! `https://` origins: cached fetches and pass-through over rustls, HTTP/2 or HTTP/1.1 by ALPN, pooled
//! connections, and a certificate that does not verify is a 502, never a request in the clear.
//!
//! Every test starts a TLS origin with a certificate from a CA made in the test (`common::tls`).

mod common;

use common::tls::{TestCa, acceptor};
use common::{TestOrigin, spawn_proxy};
use http::{StatusCode, Version};

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];

fn config(extra_origin_keys: &str) -> String {
    format!(
        r#"
[origin]
url = "{{origin}}"
timeout = "2s"
{extra_origin_keys}

[[route]]
path = "/blog/:slug"
revalidate = 60
"#
    )
}

fn trusting(ca: &TestCa) -> String {
    config(&format!("ca_file = {:?}", ca.ca_file().display().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_an_https_origin_are_cached_over_http2() {
    let ca = TestCa::new();
    let identity = ca.issue("origin", &["localhost", "127.0.0.1"]);
    let origin = TestOrigin::new().start_tls(acceptor(&identity, BOTH)).await;
    let proxy = spawn_proxy(&trusting(&ca), &origin).await;

    let first = proxy.client.get("/blog/a").await;
    assert_eq!(
        (first.status, first.cache()),
        (StatusCode::OK, "MISS"),
        "{}",
        first.text
    );
    assert_eq!(first.text, "<p>/blog/a render 1</p>");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(origin.renders("/blog/a"), 1);
    assert_eq!(
        origin.last_request("/blog/a").version,
        Version::HTTP_2,
        "ALPN offers h2 and the origin takes it"
    );
    let passed = proxy.client.get("/api/x").await;
    assert_eq!(
        (passed.status, passed.cache()),
        (StatusCode::OK, "BYPASS"),
        "pass-through uses TLS too"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_without_h2_is_fetched_over_http1_on_reused_connections() {
    let ca = TestCa::new();
    let identity = ca.issue("origin", &["127.0.0.1"]);
    let origin = TestOrigin::new().start_tls(acceptor(&identity, &[b"http/1.1"])).await;
    let proxy = spawn_proxy(&trusting(&ca), &origin).await;

    for i in 0..10 {
        let response = proxy.client.get(&format!("/blog/{i}")).await;
        assert_eq!(response.cache(), "MISS");
    }
    assert_eq!(origin.last_request("/blog/9").version, Version::HTTP_11);
    assert_eq!(
        origin.connections(),
        1,
        "ten sequential fetches reuse one pooled TLS connection"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_origin_certificate_is_a_502_and_nothing_reaches_the_origin() {
    let (ca, stranger) = (TestCa::new(), TestCa::new());
    let identity = stranger.issue("origin", &["127.0.0.1"]);
    let origin = TestOrigin::new().start_tls(acceptor(&identity, BOTH)).await;
    let proxy = spawn_proxy(&trusting(&ca), &origin).await;

    for path in ["/blog/a", "/api/x"] {
        let response = proxy.client.get(path).await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{path}: {}", response.text);
    }
    assert_eq!(
        (
            origin.renders("/blog/a"),
            origin.renders("/api/x"),
            origin.connections()
        ),
        (0, 0, 0),
        "no request may be sent without a verified certificate"
    );
    assert_eq!(
        proxy.client.get("/blog/a").await.status,
        StatusCode::BAD_GATEWAY,
        "nothing was cached"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_name_is_the_name_the_certificate_must_carry() {
    let ca = TestCa::new();
    let identity = ca.issue("origin", &["app.internal"]);
    let origin = TestOrigin::new().start_tls(acceptor(&identity, BOTH)).await;

    let mismatched = spawn_proxy(&trusting(&ca), &origin).await;
    assert_eq!(
        mismatched.client.get("/blog/a").await.status,
        StatusCode::BAD_GATEWAY,
        "the certificate is for app.internal, not 127.0.0.1"
    );
    mismatched.shutdown().await;

    let ca_file = ca.ca_file().display().to_string();
    let named = spawn_proxy(
        &config(&format!("ca_file = {ca_file:?}\ntls_server_name = \"app.internal\"")),
        &origin,
    )
    .await;
    let response = named.client.get("/blog/a").await;
    assert_eq!(
        (response.status, response.cache()),
        (StatusCode::OK, "MISS"),
        "{}",
        response.text
    );
    assert_eq!(origin.renders("/blog/a"), 1);
    named.shutdown().await;
}
