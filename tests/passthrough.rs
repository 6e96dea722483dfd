//! Requests that are not cached stream through to the origin and back, with hop-by-hop headers removed and
//! `X-Forwarded-*` added.

mod common;

use bytes::Bytes;
use common::{ECHO_PATH, TestOrigin, spawn_proxy, within};
use http::StatusCode;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/echo"
revalidate = 60

[[route]]
path = "/page"
revalidate = 60
"#;

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ascii header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_post_body_is_echoed_intact_and_not_cached() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let chunks: Vec<Bytes> = body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();

    for n in 1..=2 {
        let request = proxy.client.post_chunks(ECHO_PATH, chunks.clone());
        let r = within(5_000, "a 1 MiB echo", request).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.cache(), "BYPASS", "a POST is never cached, even on a cached route");
        assert_eq!(r.body.len(), body.len(), "request {n}: the whole body comes back");
        assert!(r.body == body, "request {n}: the body comes back byte for byte");
    }
    assert_eq!(origin.renders(ECHO_PATH), 2, "every POST reaches the origin");
    let seen = origin.last_request(ECHO_PATH);
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(
        header(&seen.headers, "transfer-encoding"),
        Some("chunked"),
        "the body is streamed, not buffered"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_added() {
    let origin = TestOrigin::new()
        .header("/pass", "connection", "x-origin-hop")
        .header("/pass", "x-origin-hop", "secret")
        .header("/pass", "proxy-authenticate", "Basic")
        .header("/pass", "x-end-to-end", "kept")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let r = proxy
        .client
        .get("/pass?q=1")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret")
        .header("proxy-authorization", "Basic abc")
        .header("keep-alive", "timeout=5")
        .header("x-end-to-end", "kept")
        .await;
    assert_eq!(
        (r.status, r.cache(), r.text.as_str()),
        (StatusCode::OK, "BYPASS", "<p>/pass render 1</p>")
    );
    assert_eq!(
        r.header("x-origin-hop"),
        None,
        "headers the origin's Connection names stay with that hop"
    );
    assert_eq!(r.header("proxy-authenticate"), None);
    assert_eq!(r.header("x-end-to-end"), Some("kept"));

    let seen = origin.last_request("/pass");
    assert_eq!(seen.uri, "/pass?q=1", "pass-through forwards the query as is");
    for gone in ["x-client-hop", "proxy-authorization", "keep-alive"] {
        assert_eq!(header(&seen.headers, gone), None, "{gone} must not be forwarded");
    }
    assert_eq!(header(&seen.headers, "x-end-to-end"), Some("kept"));
    assert_eq!(header(&seen.headers, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        header(&seen.headers, "x-forwarded-host"),
        Some(proxy.addr.to_string().as_str()),
        "the client's Host"
    );
    assert_eq!(header(&seen.headers, "x-forwarded-proto"), Some("http"));
    assert_eq!(origin.renders("/pass"), 1);
    proxy.shutdown().await;
}

/// A cached page is shared by everyone, so nothing personal from the request that happened to miss may shape it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_fetches_send_no_client_headers_to_the_origin() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let r = proxy
        .client
        .get("/page")
        .header("cookie", "sid=personal")
        .header("accept-language", "fr")
        .await;
    assert_eq!((r.cache(), r.text.as_str()), ("MISS", "<p>/page render 1</p>"));
    let seen = origin.last_request("/page");
    for gone in ["cookie", "accept-language", "x-forwarded-for"] {
        assert_eq!(header(&seen.headers, gone), None, "{gone} must not shape a shared page");
    }
    assert_eq!(header(&seen.headers, "accept-encoding"), Some("identity"));
    assert_eq!(origin.renders("/page"), 1);
    proxy.shutdown().await;
}

/// Regression: the proxy routed `/blog/../etc/passwd` as `/etc/passwd` (no route: pass-through) but forwarded the
/// raw target, so the origin resolved a path the proxy never decided on. Whatever the spelling, the origin must
/// see the normalised path the proxy routed on, with the query as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pass_through_forwards_the_normalised_path_it_routed_on() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    for (sent, forwarded) in [
        ("/blog/../etc/passwd", "/etc/passwd"),
        ("/blog/./a/../../etc/passwd?x=1", "/etc/passwd?x=1"),
        ("//etc//passwd", "/etc/passwd"),
        ("/a/%2E%2E/etc/passwd", "/etc/passwd"),
        ("/files/a%2fb/../c", "/files/c"),
        ("/files/a%2fb", "/files/a%2Fb"),
    ] {
        let r = proxy.client.post(sent, "x").await;
        assert_eq!(r.status, StatusCode::OK, "{sent}");
        assert_eq!(r.cache(), "BYPASS", "{sent}");
        let path = forwarded.split_once('?').map_or(forwarded, |(p, _)| p);
        assert_eq!(
            origin.last_request(path).uri,
            forwarded,
            "{sent} reaches the origin as the path it was routed on"
        );
    }
    // A GET that normalises onto a cached route is cached under, and fetched as, that route's path.
    let r = proxy.client.get("/x/..//page").await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(origin.last_request("/page").uri, "/page");
    assert_eq!(proxy.client.get("/page").await.cache(), "HIT");
    proxy.shutdown().await;
}
