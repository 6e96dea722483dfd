use super::*;

fn rule(pattern: &str) -> RouteRule {
    RouteRule {
        pattern: pattern.to_owned(),
        hosts: Vec::new(),
        cache: true,
        revalidate: Revalidate::After(Duration::from_secs(60)),
        expire: Duration::from_secs(3600),
        query: QueryPolicy::Ignore,
        not_found_revalidate: None,
        origin_cache_control: OriginCacheControl::Respect,
        fallback: Fallback::Blocking,
        fallback_page: None,
        prerender: Vec::new(),
    }
}

fn table(patterns: &[&str]) -> RouteTable {
    RouteTable::new(patterns.iter().map(|p| rule(p)).collect()).expect("valid table")
}

#[test]
fn most_specific_pattern_wins_regardless_of_order() {
    let t = table(&["/blog/*rest", "/blog/:slug", "/blog/featured", "/"]);
    let cases = [
        ("/blog/featured", Some("/blog/featured")),
        ("/blog/hello", Some("/blog/:slug")),
        ("/blog/2024/hello", Some("/blog/*rest")),
        ("/", Some("/")),
        ("/about", None),
    ];
    for (path, want) in cases {
        let got = t.match_path(path).map(|r| r.pattern.as_str());
        assert_eq!(got, want, "path {path}");
    }
}

fn on(hosts: &[&str], pattern: &str) -> RouteRule {
    RouteRule {
        hosts: hosts
            .iter()
            .map(|h| HostPattern::parse(h).expect("valid host"))
            .collect(),
        ..rule(pattern)
    }
}

#[test]
fn a_hosts_routes_come_first_and_unknown_hosts_fall_through() {
    let t = RouteTable::new(vec![
        rule("/blog/:slug"),
        rule("/about"),
        on(&["shop.example.com"], "/blog/*rest"),
        on(&["*.example.com"], "/about"),
    ])
    .expect("valid table");
    let cases = [
        (Some("shop.example.com"), "/blog/a", Some(("/blog/*rest", true))),
        (Some("shop.example.com"), "/about", Some(("/about", true))),
        (Some("blog.example.com"), "/blog/a", Some(("/blog/:slug", false))),
        (Some("other.org"), "/about", Some(("/about", false))),
        (None, "/blog/a", Some(("/blog/:slug", false))),
        (Some("shop.example.com"), "/cart", None),
    ];
    for (host, path, want) in cases {
        let got = t
            .match_route(host, path)
            .map(|(r, specific)| (r.pattern.as_str(), specific));
        assert_eq!(got, want, "{host:?} {path}");
    }
    let key = |host| {
        t.cached_route_at(host, "/blog/a", None, Vec::new())
            .expect("cached")
            .key
    };
    assert_eq!(key(Some("shop.example.com")).host(), Some("shop.example.com"));
    assert_eq!(
        key(Some("other.org")).host(),
        None,
        "host-less routes share one key across hosts"
    );
    assert_eq!(key(Some("other.org")), key(None));
    assert!(!RouteTable::new(vec![rule("/a")]).expect("valid").has_sites());
}

#[test]
fn the_same_pattern_twice_for_one_host_is_a_duplicate() {
    let ok = RouteTable::new(vec![rule("/a"), on(&["a.com"], "/a"), on(&["b.com"], "/a")]);
    assert!(ok.is_ok(), "one pattern per host is fine");
    let dup = RouteTable::new(vec![on(&["a.com", "b.com"], "/a"), on(&["b.com"], "/a")]);
    assert!(matches!(dup, Err((1, RouteError::Duplicate { .. }))));
}

#[test]
fn duplicate_and_malformed_patterns_are_rejected() {
    let dup = RouteTable::new(vec![rule("/blog/:slug"), rule("/blog/:id")]);
    assert!(matches!(dup, Err((1, RouteError::Duplicate { pattern, .. })) if pattern == "/blog/:id"));
    let same = RouteTable::new(vec![rule("/a"), rule("/a")]);
    assert!(matches!(same, Err((1, RouteError::Duplicate { .. }))));
    for bad in ["blog", "/a/:", "/a/*rest/b", "/a/x:y", "/a/*", "/a+b"] {
        assert!(RouteTable::new(vec![rule(bad)]).is_err(), "{bad} must be rejected");
    }
}

#[test]
fn query_policy_keeps_what_it_allows_sorted() {
    let allow = QueryPolicy::Allow(vec!["page".into(), "sort".into()]);
    let cases = [
        (QueryPolicy::Ignore, Some("utm=1&page=2"), None),
        (QueryPolicy::Ignore, Some("_rsc=abc&x=1"), Some("_rsc=abc")),
        (QueryPolicy::Keep, Some("b=2&a=1"), Some("a=1&b=2")),
        (QueryPolicy::Keep, Some(""), None),
        (allow.clone(), Some("sort=asc&utm=x&page=2"), Some("page=2&sort=asc")),
        (allow.clone(), Some("utm=x"), None),
        (allow, Some("page=1&page=2"), Some("page=1&page=2")),
    ];
    for (policy, query, want) in cases {
        assert_eq!(policy.apply(query).as_deref(), want, "{policy:?} {query:?}");
    }
}

#[test]
fn equivalent_paths_normalise_to_one() {
    let cases = [
        ("/blog/hello", Ok("/blog/hello")),
        ("/blog/%68ello", Ok("/blog/hello")),
        ("/blog/a%2fb", Ok("/blog/a%2Fb")),
        ("//blog//hello", Ok("/blog/hello")),
        ("/blog/./x/../hello", Ok("/blog/hello")),
        ("/blog/", Ok("/blog/")),
        ("/", Ok("/")),
        ("/..", Err(PathError::EscapesRoot)),
        ("/a/%zz", Err(PathError::BadEscape)),
        ("/a/%4", Err(PathError::BadEscape)),
        ("/a/%+1", Err(PathError::BadEscape)),
        ("/%2e%2E/etc", Err(PathError::EscapesRoot)),
        ("/a/%2e%2e/b", Ok("/b")),
        ("/caf\u{e9}", Ok("/caf%C3%A9")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/a/%FF", Err(PathError::InvalidUtf8)),
        ("/a/%C3", Err(PathError::InvalidUtf8)),
        ("blog", Err(PathError::NotAbsolute)),
    ];
    let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    assert_eq!(normalize_path(&long), Err(PathError::TooLong));
    for (input, want) in cases {
        let got = normalize_path(input);
        assert_eq!(got.as_deref().map_err(|e| *e), want, "{input}");
    }
}
