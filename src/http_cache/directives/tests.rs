use http::HeaderValue;

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn cc(value: &'static str) -> ResponseDirectives {
    ResponseDirectives::from_cache_control(&headers(&[("cache-control", value)]))
}

#[test]
fn delta_seconds_arguments() {
    use Seconds::{Absent, Invalid, Valid};
    let cases: &[(&str, Seconds)] = &[
        ("max-age=3600", Valid(3600)),
        ("MaX-AgE=3600", Valid(3600)),
        ("max-age=003600", Valid(3600)),
        ("max-age=0", Valid(0)),
        ("max-age=2147483647", Valid(2_147_483_647)),
        ("max-age=2147483648", Valid(DELTA_SECONDS_MAX)),
        ("max-age=99999999999", Valid(DELTA_SECONDS_MAX)),
        ("max-age=999999999999999999999999", Valid(DELTA_SECONDS_MAX)),
        ("max-age=-1", Invalid),
        ("max-age=3600.0", Invalid),
        ("max-age=a3600", Invalid),
        ("max-age=3600a", Invalid),
        ("max-age=\"3600\"", Invalid),
        ("max-age='3600'", Invalid),
        ("max-age =3600", Invalid),
        ("max-age= 3600", Invalid),
        ("max-age", Invalid),
        ("max-age=1800, max-age=1", Invalid),
        ("max-age=60, max-age=60", Valid(60)),
        ("extension=\"max-age=3600\", max-age=1", Valid(1)),
        ("max-age=1, extension=\"max-age=3600\"", Valid(1)),
        ("foo=\"a, \\\"max-age=5\", max-age=7", Valid(7)),
        ("public", Absent),
    ];
    for (value, want) in cases {
        let got = ResponseDirectives::from_cache_control(&headers(&[(
            "cache-control",
            Box::leak(value.to_string().into_boxed_str()),
        )]));
        assert_eq!(got.max_age, *want, "{value}");
    }
}

#[test]
fn disagreeing_duplicates_across_lines_are_invalid() {
    let two = headers(&[("cache-control", "max-age=1800"), ("cache-control", "max-age=1")]);
    assert_eq!(ResponseDirectives::from_cache_control(&two).max_age, Seconds::Invalid);
}

#[test]
fn boolean_directives_and_qualified_forms() {
    let d = cc(
        "Public, no-cache=\"Set-Cookie\", PRIVATE=\"x\", must-revalidate, proxy-revalidate, nO-StOrE, must-understand",
    );
    assert!(d.public && d.no_cache && d.private && d.must_revalidate && d.proxy_revalidate);
    assert!(d.no_store && d.must_understand);
    let d = cc("s-maxage=10, stale-while-revalidate=20, stale-if-error=30");
    assert_eq!(
        (d.s_maxage, d.stale_while_revalidate, d.stale_if_error),
        (Seconds::Valid(10), Seconds::Valid(20), Seconds::Valid(30))
    );
}

#[test]
fn cdn_cache_control_is_a_structured_dictionary() {
    let cdn =
        |value: &'static str| ResponseDirectives::from_cdn_cache_control(&headers(&[("cdn-cache-control", value)]));
    assert_eq!(cdn("max-age=10000").map(|d| d.max_age), Some(Seconds::Valid(10000)));
    assert_eq!(
        cdn("max-age=99999999999").map(|d| d.max_age),
        Some(Seconds::Valid(DELTA_SECONDS_MAX))
    );
    let d = cdn("private, no-cache, no-store, must-revalidate").expect("valid");
    assert!(d.private && d.no_cache && d.no_store && d.must_revalidate);
    assert!(cdn("no-store=?0").is_some_and(|d| !d.no_store));
    assert!(cdn("max-age=10000, foo=bar").is_some(), "unknown members are ignored");
    for invalid in [
        "max-age=10000, &&&&&",
        "max-age=\"10000\"",
        "max-age=1.5",
        "MaX-aGe=10",
        "max-age=-1",
    ] {
        assert!(cdn(invalid).is_none(), "{invalid} must be ignored as a whole");
    }
    assert!(ResponseDirectives::from_cdn_cache_control(&HeaderMap::new()).is_none());
    let both = headers(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")]);
    let effective = ResponseDirectives::effective(&both);
    assert!(!effective.no_store, "a valid CDN-Cache-Control replaces Cache-Control");
    assert_eq!(effective.max_age, Seconds::Valid(60));
    let bad = headers(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=\"60\"")]);
    assert!(
        ResponseDirectives::effective(&bad).no_store,
        "an invalid one is ignored"
    );
}

#[test]
fn request_directives() {
    let req = |pairs: &[(&'static str, &'static str)]| RequestDirectives::from_headers(&headers(pairs));
    assert!(req(&[("cache-control", "nothing-to-see-here"), ("pragma", "no-cache")]).is_default());
    assert!(
        req(&[("pragma", "no-cache")]).no_cache,
        "Pragma counts without Cache-Control"
    );
    let r = req(&[("cache-control", "max-age=0, min-fresh=5, only-if-cached, no-store")]);
    assert_eq!((r.max_age, r.min_fresh), (Some(0), Some(5)));
    assert!(r.only_if_cached && r.no_store && !r.no_cache);
    assert_eq!(req(&[("cache-control", "max-stale")]).max_stale, Some(MaxStale::Any));
    assert_eq!(
        req(&[("cache-control", "max-stale=30")]).max_stale,
        Some(MaxStale::UpTo(30))
    );
    assert_eq!(req(&[("cache-control", "max-age=abc")]).max_age, None);
    assert!(req(&[("cache-control", "No-Cache")]).no_cache);
}
