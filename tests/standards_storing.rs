//! Standards mode (`revalidate = "origin"`), response side: headers pass through as the origin sent them, the
//! freshness lifetime comes from `CDN-Cache-Control`, `s-maxage`, `max-age` or `Expires` (RFC 9111 §4.2.1, RFC
//! 9213), `Age` counts what the origin reported (§4.2.3), and what a shared cache must not store is not (§3).

mod common;

use std::time::Duration;

use common::{STANDARD_CONFIG, TestOrigin, spawn_proxy};
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_headers_reach_the_client_unchanged_and_hop_by_hop_ones_do_not() {
    let origin = TestOrigin::new()
        .header("/std/a", "cache-control", "max-age=3600, stale-while-revalidate=60")
        .header("/std/a", "expires", "Thu, 01 Jan 2099 00:00:00 GMT")
        .header("/std/a", "etag", "\"origin-etag\"")
        .header("/std/a", "last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")
        .header("/std/a", "x-custom", "kept")
        .header("/std/a", "content-md5", "rL0Y20zC+Fzt72VPzMSk2A==")
        .header("/std/a", "connection", "x-hop")
        .header("/std/a", "x-hop", "dropped")
        .header("/std/a", "proxy-authentication-info", "dropped")
        .header("/std/a", "x-isr-tags", "t1")
        .header("/std/a", "x-isr-revalidate", "5")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let miss = proxy.client.get("/std/a").await;
    assert_eq!(miss.cache(), "MISS");
    let origin_date = miss.header("date").expect("the origin's Date").to_owned();
    proxy.clock.advance(Duration::from_secs(3));
    let hit = proxy.client.get("/std/a").await;
    assert_eq!(hit.cache(), "HIT");
    for (name, value) in [
        ("cache-control", "max-age=3600, stale-while-revalidate=60"),
        ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
        ("etag", "\"origin-etag\""),
        ("last-modified", "Wed, 01 Jan 2020 00:00:00 GMT"),
        ("x-custom", "kept"),
        ("content-md5", "rL0Y20zC+Fzt72VPzMSk2A=="),
    ] {
        assert_eq!(hit.header(name), Some(value), "{name} passes through as sent");
    }
    assert_eq!(hit.header("date"), Some(origin_date.as_str()), "Date is never replaced");
    for gone in [
        "x-hop",
        "proxy-authentication-info",
        "x-isr-tags",
        "x-isr-revalidate",
        "vary",
    ] {
        assert_eq!(hit.header(gone), None, "{gone} is not sent");
    }
    assert_eq!(hit.header("age"), Some("3"));
    assert_eq!(hit.header("cache-status"), Some("isr-proxy; hit"));
    assert_eq!(origin.renders("/std/a"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn freshness_comes_from_cdn_cache_control_then_s_maxage_then_max_age_then_expires() {
    let in_an_hour = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    let origin = TestOrigin::new()
        .header("/std/cdn", "cdn-cache-control", "max-age=10")
        .header("/std/cdn", "cache-control", "max-age=1000")
        .header("/std/cdn-over-no-store", "cdn-cache-control", "max-age=1000")
        .header("/std/cdn-over-no-store", "cache-control", "no-store")
        .header("/std/bad-cdn", "cdn-cache-control", "max-age=\"1000\"")
        .header("/std/bad-cdn", "cache-control", "max-age=10")
        .header("/std/shared", "cache-control", "max-age=1000, s-maxage=10")
        .header("/std/max-age", "cache-control", "max-age=10")
        .header("/std/expires", "expires", &in_an_hour)
        .header("/std/invalid", "cache-control", "max-age=\"1000\"")
        .header("/std/invalid-expires", "expires", "0")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let paths = [
        "/std/cdn",
        "/std/cdn-over-no-store",
        "/std/bad-cdn",
        "/std/shared",
        "/std/max-age",
        "/std/expires",
        "/std/invalid",
        "/std/invalid-expires",
    ];
    for path in paths {
        proxy.client.get(path).await;
    }
    proxy.clock.advance(Duration::from_secs(11));
    let cache_of = async |path: &str| proxy.client.get(path).await.cache().to_owned();
    assert_eq!(
        cache_of("/std/cdn").await,
        "MISS",
        "CDN-Cache-Control's 10 s, not max-age's 1000"
    );
    assert_eq!(
        cache_of("/std/cdn-over-no-store").await,
        "HIT",
        "a valid CDN-Cache-Control replaces even Cache-Control: no-store"
    );
    assert_eq!(
        cache_of("/std/bad-cdn").await,
        "MISS",
        "an invalid CDN-Cache-Control is ignored"
    );
    assert_eq!(cache_of("/std/shared").await, "MISS", "s-maxage wins over max-age");
    assert_eq!(cache_of("/std/max-age").await, "MISS");
    assert_eq!(cache_of("/std/expires").await, "HIT", "Expires minus Date: an hour");
    for path in ["/std/invalid", "/std/invalid-expires"] {
        proxy.client.get(path).await;
        assert_eq!(
            origin.renders(path),
            2,
            "{path}: an invalid lifetime means stale at once"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn age_adds_the_origin_reported_age_to_the_time_since_the_request() {
    let origin = TestOrigin::new()
        .header("/std/aged", "cache-control", "max-age=100")
        .header("/std/aged", "age", "30")
        .header("/std/too-old", "cache-control", "max-age=3600")
        .header("/std/too-old", "age", "7200")
        .header("/std/huge", "cache-control", "max-age=2147483648")
        .header("/std/huge", "age", "2147483649")
        .header("/std/bogus", "cache-control", "max-age=100")
        .header("/std/bogus", "age", "-5")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    assert_eq!(proxy.client.get("/std/aged").await.header("age"), Some("30"));
    proxy.clock.advance(Duration::from_secs(5));
    let hit = proxy.client.get("/std/aged").await;
    assert_eq!((hit.cache(), hit.header("age")), ("HIT", Some("35")));
    proxy.clock.advance(Duration::from_secs(66));
    assert_eq!(
        proxy.client.get("/std/aged").await.cache(),
        "MISS",
        "30 s of age on arrival plus 71 s here: past max-age=100"
    );
    for stale_at_once in ["/std/too-old", "/std/huge"] {
        proxy.client.get(stale_at_once).await;
        proxy.client.get(stale_at_once).await;
        assert_eq!(origin.renders(stale_at_once), 2, "{stale_at_once} arrives stale");
    }
    proxy.client.get("/std/bogus").await;
    assert_eq!(
        proxy.client.get("/std/bogus").await.cache(),
        "HIT",
        "an invalid Age is ignored"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_a_shared_cache_must_not_store_is_passed_through() {
    let origin = TestOrigin::new()
        .header("/std/no-store", "cache-control", "max-age=60, No-Store")
        .header("/std/private", "cache-control", "max-age=60, private")
        .header("/std/star", "cache-control", "max-age=60")
        .header("/std/star", "vary", "Foo, *")
        .header("/std/cookie", "cache-control", "max-age=60")
        .header("/std/cookie", "set-cookie", "sid=1")
        .header("/std/nothing", "x-no", "freshness or validator")
        .header("/std/unknown", "cache-control", "max-age=60, no-store, must-understand")
        .status("/std/unknown", StatusCode::from_u16(599).expect("status"))
        .header(
            "/std/understood",
            "cache-control",
            "max-age=60, no-store, must-understand",
        )
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    for (path, detail) in [
        ("/std/no-store", "no-store"),
        ("/std/private", "private"),
        ("/std/star", "vary-star"),
        ("/std/cookie", "set-cookie"),
        ("/std/nothing", "no-freshness"),
        ("/std/unknown", "status"),
    ] {
        for _ in 0..2 {
            let r = proxy.client.get(path).await;
            assert_eq!(r.cache(), "BYPASS", "{path}");
            assert_eq!(
                r.header("cache-status"),
                Some(format!("isr-proxy; fwd=miss; detail={detail}").as_str())
            );
        }
        assert_eq!(origin.renders(path), 2, "{path} is never stored");
    }
    proxy.client.get("/std/understood").await;
    assert_eq!(
        proxy.client.get("/std/understood").await.cache(),
        "HIT",
        "must-understand with a status isr-proxy understands overrides no-store"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_status_with_explicit_freshness_is_stored_and_an_error_without_stale_if_error_reaches_the_client() {
    let origin = TestOrigin::new()
        .header("/std/teapot", "cache-control", "max-age=60")
        .status("/std/teapot", StatusCode::from_u16(499).expect("status"))
        .header("/std/oops", "cache-control", "max-age=60")
        .status("/std/oops", StatusCode::SERVICE_UNAVAILABLE)
        .header("/std/good", "cache-control", "max-age=10")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    for path in ["/std/teapot", "/std/oops"] {
        proxy.client.get(path).await;
        let again = proxy.client.get(path).await;
        assert_eq!(again.cache(), "HIT", "{path}: the origin declared it cacheable");
        assert_eq!(origin.renders(path), 1);
    }
    proxy.client.get("/std/good").await;
    origin.set_failing("/std/good", Some(StatusCode::SERVICE_UNAVAILABLE));
    proxy.clock.advance(Duration::from_secs(11));
    let failed = proxy.client.get("/std/good").await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no stale-if-error: the client gets the error"
    );
    origin.set_failing("/std/good", None);
    let recovered = proxy.client.get("/std/good").await;
    assert_eq!((recovered.status, recovered.cache()), (StatusCode::OK, "MISS"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_is_answered_from_a_stored_get_and_query_strings_are_separate_keys() {
    let origin = TestOrigin::new()
        .header("/std/q", "cache-control", "max-age=60")
        .start()
        .await;
    let proxy = spawn_proxy(STANDARD_CONFIG, &origin).await;
    let get = proxy.client.get("/std/q?a=1").await;
    let head = proxy.client.head("/std/q?a=1").await;
    assert_eq!(head.cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()));
    assert_eq!(
        proxy.client.get("/std/q?a=2").await.cache(),
        "MISS",
        "another query, another key"
    );
    assert_eq!(proxy.client.get("/std/q?a=1").await.cache(), "HIT");
    let authorized = proxy.client.get("/std/q?a=1").header("authorization", "Bearer x").await;
    assert_eq!(
        authorized.cache(),
        "BYPASS",
        "a request with Authorization is never answered from the cache"
    );
    assert_eq!(origin.renders("/std/q"), 3);
    proxy.shutdown().await;
}
