//! Precompressed pages: gzip and Brotli forms are made once per generation and served to clients that accept
//! them, with `Content-Encoding`, `Vary: Accept-Encoding` and an ETag per encoding; an origin's own encoding is
//! kept as sent.

mod common;

use std::io::Read;

use common::{BLOG_CONFIG, TestOrigin, TestResponse, spawn_proxy};
use http::StatusCode;

/// A page long and repetitive enough to be worth compressing.
fn article(n: usize) -> String {
    format!(
        "<article>render {n}: {}</article>",
        "the quick brown fox jumps over the lazy dog. ".repeat(100)
    )
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(body: &[u8]) -> String {
    let mut out = String::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_string(&mut out)
        .expect("valid brotli");
    out
}

fn vary_lists_accept_encoding(response: &TestResponse) -> bool {
    response.header("vary").is_some_and(|vary| {
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_client_gets_the_best_encoding_it_accepts_from_one_render() {
    let origin = TestOrigin::new()
        .page("/blog/a", article)
        .header("/blog/a", "content-type", "text/html; charset=utf-8")
        .start()
        .await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    let identity = proxy.client.get("/blog/a").await;
    assert_eq!(identity.cache(), "MISS");
    assert_eq!(identity.text, article(1));
    assert_eq!(identity.header("content-encoding"), None);
    assert!(vary_lists_accept_encoding(&identity), "{:?}", identity.headers);
    let identity_etag = identity.header("etag").expect("etag").to_owned();

    let br = proxy
        .client
        .get("/blog/a")
        .header("accept-encoding", "gzip, deflate, br")
        .await;
    assert_eq!(br.cache(), "HIT");
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), article(1));
    assert!(br.body.len() < identity.body.len() / 4, "{} bytes", br.body.len());
    assert_eq!(br.header("content-length"), Some(br.body.len().to_string().as_str()));
    assert!(vary_lists_accept_encoding(&br));

    let gzip = proxy.client.get("/blog/a").header("accept-encoding", "gzip").await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gzip.body), article(1));

    let refuses_br = proxy
        .client
        .get("/blog/a")
        .header("accept-encoding", "br;q=0, gzip")
        .await;
    assert_eq!(refuses_br.header("content-encoding"), Some("gzip"));

    let etags = [
        identity_etag,
        br.header("etag").unwrap_or_default().to_owned(),
        gzip.header("etag").unwrap_or_default().to_owned(),
    ];
    assert!(
        etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2],
        "representations that differ in coding must not share an ETag: {etags:?}"
    );
    assert_eq!(origin.renders("/blog/a"), 1, "compression needs no extra render");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn if_none_match_is_checked_against_the_encoding_served() {
    let origin = TestOrigin::new()
        .page("/blog/a", article)
        .header("/blog/a", "content-type", "text/html")
        .start()
        .await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    let br = proxy.client.get("/blog/a").header("accept-encoding", "br").await;
    let br_etag = br.header("etag").expect("etag").to_owned();

    let revalidated = proxy
        .client
        .get("/blog/a")
        .header("accept-encoding", "br")
        .header("if-none-match", &br_etag)
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());

    let other_encoding = proxy
        .client
        .get("/blog/a")
        .header("accept-encoding", "gzip")
        .header("if-none-match", &br_etag)
        .await;
    assert_eq!(
        other_encoding.status,
        StatusCode::OK,
        "the gzip form is a different representation"
    );
    assert_eq!(gunzip(&other_encoding.body), article(1));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_or_binary_pages_are_served_as_they_are() {
    let origin = TestOrigin::new()
        .page("/blog/short", |n| format!("<p>{n}</p>"))
        .header("/blog/short", "content-type", "text/html")
        .page("/blog/image", article)
        .header("/blog/image", "content-type", "image/png")
        .start()
        .await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    for path in ["/blog/short", "/blog/image"] {
        proxy.client.get(path).await;
        let hit = proxy.client.get(path).header("accept-encoding", "br, gzip").await;
        assert_eq!(hit.cache(), "HIT");
        assert_eq!(hit.header("content-encoding"), None, "{path}");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_origin_encoded_page_is_stored_as_sent_and_never_served_to_a_client_refusing_it() {
    // The proxy asks for identity; an origin that encodes anyway is passed through byte for byte. (The test
    // origin serves text, so the "gzip" body here is a marker, which is all the proxy may ever look at.)
    let origin = TestOrigin::new()
        .page("/blog/gz", |n| format!("gzipped-by-origin {n}"))
        .header("/blog/gz", "content-type", "text/html")
        .header("/blog/gz", "content-encoding", "gzip")
        .start()
        .await;
    let proxy = spawn_proxy(BLOG_CONFIG, &origin).await;
    let gzip_client = proxy.client.get("/blog/gz").header("accept-encoding", "gzip").await;
    assert_eq!(gzip_client.status, StatusCode::OK);
    assert_eq!(gzip_client.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gzip_client.text, "gzipped-by-origin 1",
        "stored as sent, never re-encoded"
    );

    let identity_only = proxy.client.get("/blog/gz").header("accept-encoding", "identity").await;
    assert_eq!(identity_only.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(origin.renders("/blog/gz"), 1);
    proxy.shutdown().await;
}
