//! Standards mode, content negotiation (RFC 9111 §4.1): a response that varies on request headers is stored as
//! one variant per combination of their values, side by side under one URL (bounded), and only ever reaches a
//! request with the same values. The client's end-to-end request headers reach the origin on a miss.

mod common;

use std::time::Duration;

use common::{STANDARD_CONFIG, TestOrigin, spawn_proxy};
use isr_proxy::regen::MAX_VARY_VARIANTS;
use tokio::task::JoinSet;

fn by_language() -> TestOrigin {
    TestOrigin::new()
        .page_for("/std/hello", |headers, n| {
            let language = headers
                .get("accept-language")
                .map_or("none", |v| v.to_str().expect("ascii"));
            format!("{language} render {n}")
        })
        .header("/std/hello", "cache-control", "max-age=60")
        .header("/std/hello", "vary", "Accept-Language")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn variants_are_stored_side_by_side_and_only_matching_requests_get_them() {
    let origin = by_language().start().await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let get = async |language: Option<&str>| {
        let request = proxy.client.get("/std/hello");
        let request = match language {
            Some(language) => request.header("accept-language", language),
            None => request,
        };
        let r = request.await;
        (r.cache().to_owned(), r.text)
    };
    assert_eq!(get(Some("fr")).await, ("MISS".into(), "fr render 1".into()));
    assert_eq!(get(Some("de")).await, ("MISS".into(), "de render 2".into()));
    assert_eq!(
        get(None).await,
        ("MISS".into(), "none render 3".into()),
        "an absent header is its own variant"
    );
    assert_eq!(get(Some("")).await.0, "MISS", "and differs from an empty one");
    assert_eq!(get(Some("fr")).await, ("HIT".into(), "fr render 1".into()));
    assert_eq!(get(Some("de")).await, ("HIT".into(), "de render 2".into()));
    assert_eq!(get(None).await, ("HIT".into(), "none render 3".into()));
    let vary = proxy.client.get("/std/hello").header("accept-language", "fr").await;
    assert_eq!(
        vary.header("vary"),
        Some("Accept-Language"),
        "Vary reaches the client as sent"
    );
    assert_eq!(origin.renders("/std/hello"), 4);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_request_headers_reach_the_origin_on_a_miss_minus_hop_by_hop_ones() {
    let origin = TestOrigin::new()
        .header("/std/h", "cache-control", "max-age=60")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    proxy
        .client
        .get("/std/h")
        .header("accept-language", "fr")
        .header("x-app", "42")
        .header("cookie", "theme=dark")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("te", "trailers")
        .header("if-none-match", "\"client-tag\"")
        .header("range", "bytes=0-1")
        .header("accept-encoding", "gzip")
        .await;
    let seen = origin.last_request("/std/h");
    let header = |name: &str| seen.headers.get(name).map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(header("accept-language").as_deref(), Some("fr"));
    assert_eq!(header("x-app").as_deref(), Some("42"));
    assert_eq!(header("cookie").as_deref(), Some("theme=dark"));
    for dropped in ["x-secret", "te", "if-none-match", "range"] {
        assert_eq!(header(dropped), None, "{dropped} is the cache's own business");
    }
    assert_eq!(
        header("accept-encoding").as_deref(),
        Some("identity"),
        "isr-proxy compresses itself"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalesced_requests_with_another_variant_are_never_handed_the_leaders_response() {
    let origin = by_language()
        .latency("/std/hello", Duration::from_millis(150))
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let mut requests = JoinSet::new();
    for i in 0..10 {
        let client = proxy.client.clone();
        let language = if i % 2 == 0 { "fr" } else { "de" };
        requests.spawn(async move {
            let r = client.get("/std/hello").header("accept-language", language).await;
            (language, r.text)
        });
    }
    while let Some(result) = requests.join_next().await {
        let (language, text) = result.expect("request task");
        assert!(text.starts_with(language), "a {language} request got {text:?}");
    }
    assert_eq!(
        origin.renders("/std/hello"),
        2,
        "10 concurrent misses of two variants: one fetch per variant"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_variant_limit_new_variants_are_passed_through() {
    let origin = TestOrigin::new()
        .header("/std/ua", "cache-control", "max-age=60")
        .header("/std/ua", "vary", "User-Agent")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    for i in 0..MAX_VARY_VARIANTS {
        let r = proxy
            .client
            .get("/std/ua")
            .header("user-agent", &format!("bot/{i}"))
            .await;
        assert_eq!(r.cache(), "MISS");
    }
    proxy.proxy.cache().run_pending_tasks().await;
    let over = proxy.client.get("/std/ua").header("user-agent", "one-too-many").await;
    assert_eq!(over.cache(), "BYPASS");
    assert_eq!(
        over.header("cache-status"),
        Some("isr-proxy; fwd=miss; detail=too-many-variants")
    );
    let known = proxy.client.get("/std/ua").header("user-agent", "bot/0").await;
    assert_eq!(known.cache(), "HIT", "stored variants are still served");
    proxy.shutdown().await;
}
