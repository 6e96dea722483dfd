use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::http_cache::directives::RequestDirectives;

const NOW: u64 = 1_700_000_000;

fn at(seconds: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(seconds))
}

fn date(seconds: i64) -> String {
    httpdate::fmt_http_date(at(seconds))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

fn lifetime(pairs: &[(&str, &str)]) -> Result<u64, BypassReason> {
    judge(StatusCode::OK, &headers(pairs), at(0)).map(|d| d.freshness.lifetime.as_secs())
}

#[test]
fn freshness_lifetime_sources_in_order() {
    let future = date(3600);
    let now = date(0);
    let past = date(-10);
    let long_ago = date(-100);
    type Case<'a> = (Vec<(&'a str, &'a str)>, Result<u64, BypassReason>);
    let cases: Vec<Case<'_>> = vec![
        (vec![("cache-control", "max-age=60")], Ok(60)),
        (vec![("cache-control", "max-age=60, s-maxage=5")], Ok(5)),
        (
            vec![("cache-control", "s-maxage=5"), ("cache-control", "max-age=60")],
            Ok(5),
        ),
        (
            vec![("cache-control", "max-age=0, s-maxage=90"), ("expires", &future)],
            Ok(90),
        ),
        (vec![("expires", &future), ("date", &now)], Ok(3600)),
        (vec![("expires", &future), ("date", "garbage")], Ok(3600)),
        (vec![("expires", &future)], Ok(3600)),
        (vec![("cache-control", "max-age=10"), ("expires", &future)], Ok(10)),
        (vec![("cache-control", "max-age=10"), ("expires", "0")], Ok(10)),
        (
            vec![("cdn-cache-control", "max-age=30"), ("cache-control", "max-age=9000")],
            Ok(30),
        ),
        (
            vec![("cdn-cache-control", "max-age=9000"), ("cache-control", "no-store")],
            Ok(9000),
        ),
        (
            vec![("cdn-cache-control", "max-age=\"9\""), ("cache-control", "max-age=40")],
            Ok(40),
        ),
        (
            vec![("cdn-cache-control", "max-age=0"), ("expires", &future)],
            Err(BypassReason::MaxAgeZero),
        ),
        (vec![("cache-control", "max-age=-1")], Err(BypassReason::MaxAgeZero)),
        (vec![("cache-control", "max-age=\"60\"")], Err(BypassReason::MaxAgeZero)),
        (vec![("expires", "0")], Err(BypassReason::MaxAgeZero)),
        (
            vec![("expires", &future), ("expires", &future)],
            Err(BypassReason::MaxAgeZero),
        ),
        (
            vec![("expires", "Sun, 06 Nov 1994 08:49:37 UTC")],
            Err(BypassReason::MaxAgeZero),
        ),
        (vec![("expires", &past), ("date", &now)], Err(BypassReason::MaxAgeZero)),
        (vec![], Err(BypassReason::NoFreshness)),
        (vec![("etag", "\"v1\"")], Ok(0)),
        (vec![("last-modified", &long_ago)], Ok(0)),
        (vec![("cache-control", "max-age=0, stale-if-error=60")], Ok(0)),
    ];
    for (pairs, want) in cases {
        assert_eq!(lifetime(&pairs), want, "{pairs:?}");
    }
}

#[test]
fn what_a_shared_cache_must_not_store() {
    let judged = |status: u16, pairs: &[(&str, &str)]| {
        judge(StatusCode::from_u16(status).expect("status"), &headers(pairs), at(0)).err()
    };
    let ma = ("cache-control", "max-age=60");
    assert_eq!(judged(200, &[ma, ("set-cookie", "a=b")]), Some(BypassReason::SetCookie));
    assert_eq!(
        judged(200, &[("cache-control", "max-age=60, private")]),
        Some(BypassReason::Private)
    );
    assert_eq!(
        judged(200, &[("cache-control", "max-age=60, No-Store")]),
        Some(BypassReason::NoStore)
    );
    assert_eq!(judged(200, &[ma, ("vary", "Foo, *")]), Some(BypassReason::VaryStar));
    assert_eq!(
        judged(200, &[ma, ("cdn-cache-control", "private")]),
        Some(BypassReason::Private)
    );
    assert_eq!(
        judged(200, &[ma, ("cdn-cache-control", "no-store")]),
        Some(BypassReason::NoStore)
    );
    assert_eq!(
        judged(599, &[("cache-control", "max-age=60, no-store, must-understand")]),
        Some(BypassReason::Status(StatusCode::from_u16(599).expect("status")))
    );
    assert_eq!(
        judged(200, &[("cache-control", "max-age=60, no-store, must-understand")]),
        None
    );
    assert_eq!(
        judged(206, &[ma]),
        Some(BypassReason::Status(StatusCode::PARTIAL_CONTENT))
    );
    for status in [
        200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599,
    ] {
        assert_eq!(
            judged(status, &[ma]),
            None,
            "{status} with explicit freshness is stored"
        );
    }
    // No heuristic freshness: a validator alone is enough only for statuses RFC 9110 calls cacheable.
    assert_eq!(judged(200, &[("last-modified", &date(-100))]), None);
    for status in [201, 202, 403, 502, 503, 504, 599] {
        assert_eq!(
            judged(status, &[("last-modified", &date(-100))]),
            Some(BypassReason::NoFreshness),
            "{status}"
        );
    }
}

#[test]
fn directives_that_shape_reuse() {
    let freshness = |value: &str| {
        judge(StatusCode::OK, &headers(&[("cache-control", value)]), at(0))
            .expect("stored")
            .freshness
    };
    let f = freshness("max-age=10, stale-while-revalidate=20, stale-if-error=30");
    assert_eq!(f.stale_while_revalidate, Duration::from_secs(20));
    assert_eq!(f.stale_if_error, Duration::from_secs(30));
    assert!(f.serve_stale == ServeStale::Allowed && !f.no_cache);
    let cases = [
        ("max-age=10, must-revalidate", ServeStale::Never),
        ("max-age=10, proxy-revalidate", ServeStale::Never),
        (
            "max-age=10, must-revalidate, stale-while-revalidate=20",
            ServeStale::Never,
        ),
        ("s-maxage=10", ServeStale::Never),
        ("s-maxage=10, stale-while-revalidate=0", ServeStale::Never),
        ("s-maxage=10, stale-while-revalidate=20", ServeStale::WithinWindows),
        ("s-maxage=10, stale-if-error=20", ServeStale::WithinWindows),
        (
            "s-maxage=10, proxy-revalidate, stale-while-revalidate=20",
            ServeStale::Never,
        ),
        ("max-age=10, stale-while-revalidate=20", ServeStale::Allowed),
    ];
    for (value, want) in cases {
        assert_eq!(freshness(value).serve_stale, want, "{value}");
    }
    assert!(freshness("max-age=10, no-cache").no_cache);
}

#[test]
fn age_header_parsing() {
    let age = |lines: &[&str]| {
        let mut pairs = vec![("cache-control", "max-age=3600")];
        pairs.extend(lines.iter().map(|l| ("age", *l)));
        judge(StatusCode::OK, &headers(&pairs), at(0))
            .expect("stored")
            .initial_age
            .as_secs()
    };
    assert_eq!(age(&[]), 0);
    assert_eq!(age(&["30"]), 30);
    for ignored in ["abc", "-7200", "7200.0", ""] {
        assert_eq!(age(&[ignored]), 0, "{ignored:?} is ignored");
    }
    assert_eq!(age(&["2147483648"]), 1 << 31);
    assert_eq!(age(&["99999999999999999999999"]), 1 << 31);
    assert_eq!(age(&["7200, 0"]), 7200, "the first member counts");
    assert_eq!(age(&["0, 7200"]), 0);
    assert_eq!(age(&["7200", "0"]), 7200, "the first line counts");
    assert_eq!(age(&["0", "7200"]), 0);
}

fn stored(lifetime: u64, swr: u64, sie: u64) -> HttpFreshness {
    HttpFreshness {
        lifetime: Duration::from_secs(lifetime),
        stale_while_revalidate: Duration::from_secs(swr),
        stale_if_error: Duration::from_secs(sie),
        serve_stale: ServeStale::Allowed,
        no_cache: false,
    }
}

fn within_windows(lifetime: u64, swr: u64, sie: u64) -> HttpFreshness {
    HttpFreshness {
        serve_stale: ServeStale::WithinWindows,
        ..stored(lifetime, swr, sie)
    }
}

fn request(value: &'static str) -> RequestDirectives {
    let mut map = HeaderMap::new();
    map.insert("cache-control", HeaderValue::from_static(value));
    RequestDirectives::from_headers(&map)
}

#[test]
fn reuse_of_a_stored_response() {
    let secs = Duration::from_secs;
    let none = RequestDirectives::default();
    let expire = secs(3600);
    let unreachable_only = OnError {
        on_unreachable: true,
        on_server_error: false,
    };
    let both = OnError::ALWAYS;
    let cases: Vec<(HttpFreshness, u64, RequestDirectives, Reuse)> = vec![
        (stored(10, 0, 0), 5, none, Reuse::Fresh),
        (stored(10, 0, 0), 10, none, Reuse::Validate(unreachable_only)),
        (stored(10, 20, 0), 15, none, Reuse::StaleWhileRevalidate),
        (stored(10, 20, 0), 30, none, Reuse::Validate(unreachable_only)),
        (stored(10, 0, 30), 15, none, Reuse::Validate(both)),
        (stored(10, 0, 30), 41, none, Reuse::Validate(unreachable_only)),
        (stored(10, 0, 0), 10 + 3600, none, Reuse::Validate(OnError::NEVER)),
        (
            HttpFreshness {
                serve_stale: ServeStale::Never,
                ..stored(10, 20, 30)
            },
            15,
            none,
            Reuse::Validate(OnError::NEVER),
        ),
        (
            HttpFreshness {
                no_cache: true,
                ..stored(10, 0, 0)
            },
            1,
            none,
            Reuse::Validate(OnError::NEVER),
        ),
        (
            stored(10, 0, 0),
            1,
            request("no-cache"),
            Reuse::Validate(OnError::NEVER),
        ),
        (stored(10, 0, 0), 5, request("max-age=3"), Reuse::Validate(both)),
        (stored(10, 0, 0), 5, request("max-age=5"), Reuse::Fresh),
        (stored(10, 0, 0), 5, request("min-fresh=6"), Reuse::Validate(both)),
        (stored(10, 0, 0), 5, request("min-fresh=5"), Reuse::Fresh),
        (stored(10, 0, 0), 15, request("max-stale"), Reuse::StaleAccepted),
        (stored(10, 0, 0), 15, request("max-stale=5"), Reuse::StaleAccepted),
        (
            stored(10, 0, 0),
            15,
            request("max-stale=4"),
            Reuse::Validate(unreachable_only),
        ),
        (
            HttpFreshness {
                serve_stale: ServeStale::Never,
                ..stored(10, 0, 0)
            },
            15,
            request("max-stale"),
            Reuse::Validate(OnError::NEVER),
        ),
        // s-maxage beside an RFC 5861 window: stale inside the window, and for no other use.
        (within_windows(10, 20, 0), 15, none, Reuse::StaleWhileRevalidate),
        (within_windows(10, 20, 0), 30, none, Reuse::Validate(OnError::NEVER)),
        (
            within_windows(10, 20, 0),
            30,
            request("max-stale"),
            Reuse::Validate(OnError::NEVER),
        ),
        (
            within_windows(10, 20, 0),
            15,
            request("max-age=3"),
            Reuse::Validate(OnError::NEVER),
        ),
        (within_windows(10, 0, 30), 15, none, Reuse::Validate(both)),
        (
            within_windows(10, 0, 30),
            15,
            request("max-stale"),
            Reuse::Validate(both),
        ),
        (within_windows(10, 0, 30), 41, none, Reuse::Validate(OnError::NEVER)),
        (within_windows(10, 20, 0), 5, none, Reuse::Fresh),
    ];
    for (freshness, age, request, want) in cases {
        assert_eq!(
            reuse(&freshness, secs(age), &request, expire),
            want,
            "{freshness:?} at age {age} for {request:?}"
        );
    }
}
