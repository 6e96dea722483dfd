//! Standards mode, validation (RFC 9111 §4.3): a stale stored response is validated with `If-None-Match` /
//! `If-Modified-Since`, carrying the request headers its `Vary` names; a `304` freshens it and updates its headers
//! without downloading (or compressing) the body again. Clients' own conditional requests and byte ranges are
//! answered from the cache.

mod common;

use std::time::Duration;

use common::{STANDARD_CONFIG, TestOrigin, spawn_proxy};
use http::StatusCode;

fn sent<'a>(request: &'a common::SeenRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().expect("ascii"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_304_freshens_the_stored_response_and_updates_its_headers() {
    let big = "<p>a page worth compressing</p>".repeat(100);
    let origin = TestOrigin::new()
        .page("/std/page", move |_| big.clone())
        .header("/std/page", "cache-control", "max-age=10")
        .header("/std/page", "content-type", "text/html")
        .header("/std/page", "etag", "\"v1\"")
        .header("/std/page", "x-version", "A")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let first = proxy.client.get("/std/page").header("accept-encoding", "br").await;
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert_eq!(
        first.header("etag"),
        Some("\"v1-br\""),
        "each coding has its own validator"
    );
    let first_br = first.body.clone();

    origin.set_not_modified("/std/page", true);
    origin.set_headers(
        "/std/page",
        &[
            ("cache-control", "max-age=100"),
            ("etag", "\"v1\""),
            ("x-version", "B"),
            ("content-length", "999"),
        ],
    );
    proxy.clock.advance(Duration::from_secs(11));
    let validated = proxy.client.get("/std/page").header("accept-encoding", "br").await;
    assert_eq!(validated.cache(), "REVALIDATED");
    assert_eq!(
        validated.header("cache-status"),
        Some("isr-proxy; fwd=stale; fwd-status=304; stored")
    );
    let conditional = origin.last_request("/std/page");
    assert_eq!(sent(&conditional, "if-none-match"), Some("\"v1\""));
    assert_eq!(
        validated.header("x-version"),
        Some("B"),
        "headers from the 304 replace the stored ones"
    );
    assert_eq!(validated.header("cache-control"), Some("max-age=100"));
    assert_eq!(
        validated.body, first_br,
        "the stored compressed body, not downloaded or compressed again"
    );
    assert_ne!(
        validated.header("content-length"),
        Some("999"),
        "Content-Length is never taken from a 304"
    );

    proxy.clock.advance(Duration::from_secs(50));
    let hit = proxy.client.get("/std/page").await;
    assert_eq!(
        hit.cache(),
        "HIT",
        "fresh for the 304's max-age=100 from the validation on"
    );
    assert_eq!(hit.header("x-version"), Some("B"));
    assert_eq!(origin.renders("/std/page"), 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_modified_is_validated_with_if_modified_since() {
    let origin = TestOrigin::new()
        .header("/std/lm", "cache-control", "max-age=10")
        .header("/std/lm", "last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/lm").await;
    origin.set_not_modified("/std/lm", true);
    proxy.clock.advance(Duration::from_secs(11));
    assert_eq!(proxy.client.get("/std/lm").await.cache(), "REVALIDATED");
    let conditional = origin.last_request("/std/lm");
    assert_eq!(
        sent(&conditional, "if-modified-since"),
        Some("Wed, 01 Jan 2020 00:00:00 GMT")
    );
    assert_eq!(sent(&conditional, "if-none-match"), None);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validation_carries_the_request_headers_the_stored_vary_names() {
    let origin = TestOrigin::new()
        .header("/std/v", "cache-control", "max-age=10")
        .header("/std/v", "etag", "\"abc\"")
        .header("/std/v", "vary", "Accept-Language")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/v").header("accept-language", "fr").await;
    origin.set_not_modified("/std/v", true);
    proxy.clock.advance(Duration::from_secs(11));
    let r = proxy.client.get("/std/v").header("accept-language", "fr").await;
    assert_eq!(r.cache(), "REVALIDATED");
    let conditional = origin.last_request("/std/v");
    assert_eq!(sent(&conditional, "accept-language"), Some("fr"));
    assert_eq!(sent(&conditional, "if-none-match"), Some("\"abc\""));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_conditionals_are_answered_from_the_cache_with_a_304() {
    let origin = TestOrigin::new()
        .header("/std/c", "cache-control", "max-age=60")
        .header("/std/c", "etag", "W/\"weak\"")
        .header("/std/c", "last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/c").await;
    let cases = [
        (vec![("if-none-match", "\"weak\"")], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", "\"x\", W/\"weak\"")], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", "*")], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", "\"other\"")], StatusCode::OK),
        (
            vec![("if-modified-since", "Thu, 02 Jan 2020 00:00:00 GMT")],
            StatusCode::NOT_MODIFIED,
        ),
        (
            vec![("if-modified-since", "Tue, 31 Dec 2019 00:00:00 GMT")],
            StatusCode::OK,
        ),
        (
            vec![
                ("if-none-match", "\"other\""),
                ("if-modified-since", "Thu, 02 Jan 2020 00:00:00 GMT"),
            ],
            StatusCode::OK,
        ),
    ];
    for (headers, want) in cases {
        let mut request = proxy.client.get("/std/c");
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let r = request.await;
        assert_eq!(r.status, want, "{headers:?}");
        assert_eq!(r.cache(), "HIT");
        assert_eq!(
            r.header("etag"),
            Some("W/\"weak\""),
            "{headers:?}: a 304 carries the ETag"
        );
    }
    assert_eq!(origin.renders("/std/c"), 1, "every conditional answered from the cache");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_byte_range_of_a_stored_response_is_served_as_206() {
    let origin = TestOrigin::new()
        .page("/std/r", |_| "01234567890".to_owned())
        .header("/std/r", "cache-control", "max-age=60")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let first = proxy.client.get("/std/r").header("range", "bytes=0-1").await;
    assert_eq!(first.cache(), "MISS");
    assert!(
        origin.last_request("/std/r").headers.get("range").is_none(),
        "the origin is asked for the whole response"
    );
    assert_eq!((first.status, first.text.as_str()), (StatusCode::PARTIAL_CONTENT, "01"));
    assert_eq!(first.header("content-range"), Some("bytes 0-1/11"));
    for (range, body, content_range) in [
        ("bytes=1-", "1234567890", "bytes 1-10/11"),
        ("bytes=-1", "0", "bytes 10-10/11"),
    ] {
        let r = proxy.client.get("/std/r").header("range", range).await;
        assert_eq!((r.status, r.cache()), (StatusCode::PARTIAL_CONTENT, "HIT"));
        assert_eq!(
            (r.text.as_str(), r.header("content-range")),
            (body, Some(content_range))
        );
    }
    let several = proxy.client.get("/std/r").header("range", "bytes=0-1,3-4").await;
    assert_eq!(several.status, StatusCode::OK, "several ranges: the whole response");
    assert_eq!(origin.renders("/std/r"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_variant_is_validated_with_the_entity_tags_of_the_stored_ones() {
    let origin = TestOrigin::new()
        .page_for("/std/lang", |headers, n| {
            let language = headers
                .get("accept-language")
                .map_or("none", |v| v.to_str().expect("ascii"));
            format!("{language} render {n}")
        })
        .header("/std/lang", "cache-control", "max-age=60")
        .header("/std/lang", "vary", "Accept-Language")
        .header("/std/lang", "etag", "\"fr-1\"")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy.client.get("/std/lang").header("accept-language", "fr").await;
    origin.set_not_modified("/std/lang", true);
    let german = proxy.client.get("/std/lang").header("accept-language", "de").await;
    let conditional = origin.last_request("/std/lang");
    assert_eq!(
        sent(&conditional, "if-none-match"),
        Some("\"fr-1\""),
        "the stored variant's tag is offered"
    );
    assert_eq!(sent(&conditional, "accept-language"), Some("de"));
    assert_eq!(
        (german.cache(), german.text.as_str()),
        ("MISS", "fr render 1"),
        "the origin's 304 named the stored fr variant as right for de too: no body downloaded"
    );
    assert_eq!(
        proxy
            .client
            .get("/std/lang")
            .header("accept-language", "de")
            .await
            .cache(),
        "HIT"
    );

    // A 304 naming no stored response cannot be used: the origin is asked again, unconditionally.
    origin.set_headers(
        "/std/lang",
        &[
            ("cache-control", "max-age=60"),
            ("vary", "Accept-Language"),
            ("etag", "\"unknown\""),
        ],
    );
    let italian = proxy.client.get("/std/lang").header("accept-language", "it").await;
    assert_eq!((italian.cache(), italian.text.as_str()), ("MISS", "it render 4"));
    assert!(sent(&origin.last_request("/std/lang"), "if-none-match").is_none());
    assert_eq!(origin.renders("/std/lang"), 4);
    proxy.shutdown().await;
}
