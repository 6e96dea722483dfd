//! Request paths and headers a client controls: equivalent spellings share one entry, the host never splits or
//! poisons the cache, and paths that cannot be keyed safely are refused before the origin sees them.

mod common;

use common::{TestOrigin, spawn_proxy, within};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog/:slug"
revalidate = 60

[[route]]
path = "/files/*rest"
revalidate = 60
"#;

/// Sends raw request bytes (what a test client library would refuse to send) and returns the response text.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut received = Vec::new();
    within(1_000, "a raw response", async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if received.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn percent_encoded_and_plain_spellings_are_one_entry() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/blog/hello").await;
    assert_eq!(first.cache(), "MISS");
    for spelling in ["/blog/%68ello", "/blog/%68%65llo", "//blog/./hello", "/blog/x/../hello"] {
        let r = proxy.client.get(spelling).await;
        assert_eq!((r.cache(), r.text.as_str()), ("HIT", first.text.as_str()), "{spelling}");
    }
    assert_eq!(
        origin.renders("/blog/hello"),
        1,
        "every spelling shares the one cached page"
    );

    // Escapes of reserved characters are kept (upper-cased): `%2F` is not a slash.
    let r = proxy.client.get("/files/a%2fb").await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(proxy.client.get("/files/a%2Fb").await.cache(), "HIT");
    assert_eq!(origin.last_request("/files/a%2Fb").uri, "/files/a%2Fb");
    assert_eq!(proxy.client.get("/files/a/b").await.cache(), "MISS", "a%2Fb is not a/b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_and_forwarded_host_are_never_part_of_the_key() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/blog/a").header("host", "site-one.example").await;
    assert_eq!(first.cache(), "MISS");
    let cases = [
        ("host", "site-two.example"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example"),
    ];
    for (name, value) in cases {
        let r = proxy.client.get("/blog/a").header(name, value).await;
        assert_eq!((r.cache(), r.text.as_str()), ("HIT", first.text.as_str()), "{name}");
    }
    assert_eq!(origin.renders("/blog/a"), 1);
    let seen = origin.last_request("/blog/a");
    assert_eq!(
        seen.headers.get("host").and_then(|h| h.to_str().ok()),
        Some(origin.addr.to_string().as_str()),
        "a cached fetch carries the origin's own Host, never the client's"
    );
    assert!(seen.headers.get("x-forwarded-host").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overlong_path_gets_414_without_reaching_the_origin() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let long = format!("/blog/{}", "a".repeat(isr_proxy::route::MAX_PATH_BYTES));
    let r = proxy.client.get(&long).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    let unrouted = format!("/x/{}", "a".repeat(isr_proxy::route::MAX_PATH_BYTES));
    assert_eq!(proxy.client.get(&unrouted).await.status, StatusCode::URI_TOO_LONG);
    let near = format!("/blog/{}", "a".repeat(isr_proxy::route::MAX_PATH_BYTES - 100));
    assert_eq!(
        proxy.client.get(&near).await.status,
        StatusCode::OK,
        "just under the limit is fine"
    );
    assert_eq!(origin.renders(&long), 0);
    assert_eq!(origin.renders(&unrouted), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_utf8_and_bad_escapes_get_400_without_reaching_the_origin() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    for path in [
        "/blog/%FF",
        "/blog/%C3",
        "/blog/%zz",
        "/blog/%4",
        "/blog/%2e%2e/%2e%2e/etc",
    ] {
        let r = proxy.client.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // Raw bytes that are not UTF-8 in the request line are refused by the HTTP parser itself.
    let response = raw(proxy.addr, b"GET /blog/\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    assert!(origin.requests("/blog/%FF").is_empty());

    // Raw UTF-8 is valid and is the same page as its percent-encoded form.
    let response = raw(proxy.addr, "GET /blog/caf\u{e9} HTTP/1.1\r\nhost: x\r\n\r\n".as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    assert_eq!(proxy.client.get("/blog/caf%c3%a9").await.cache(), "HIT");
    assert_eq!(origin.renders("/blog/caf%C3%A9"), 1);
}
