//! A page gone stale is found, served STALE at once, validated once in the background and then a HIT, whatever
//! the route's settings: time-based or `revalidate = "origin"`, every query policy, a `Vary`ing response, a
//! host-specific route, an RSC request. The key a stale page is looked up, validated and stored under is the one
//! a fresh lookup uses, and the origin is asked for the same URL both times.

mod common;

use std::time::Duration;

use common::{TestOrigin, eventually, spawn_proxy};

/// How Next.js, Nuxt, SvelteKit and Remix say "ISR" in HTTP: fresh for 10 s at the shared cache, then served
/// stale while revalidated for 60 s. (Not shorter: the origin's `Date` lags by up to 2 s of real time, which
/// counts towards the age.)
const ISR_CACHE_CONTROL: &str = "public, s-maxage=10, stale-while-revalidate=60";

/// One combination of route settings and request shape.
#[derive(Clone, Copy, Debug)]
struct Case {
    /// The route's `revalidate` value as TOML: `"origin"` or seconds.
    revalidate: &'static str,
    /// The route's `query` line, if any (none: the default, `ignore`).
    query: Option<&'static str>,
    /// Whether the origin answers `Vary: Accept-Language` (and the client sends one).
    vary: bool,
    /// Whether the route names its host (and the client sends it).
    host: bool,
    /// The request's path and query.
    target: &'static str,
    /// Whether the request is a Next.js RSC request (a variant of the page).
    rsc: bool,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for revalidate in ["\"origin\"", "10"] {
        for query in [None, Some("\"keep\""), Some("[\"page\"]")] {
            // A time-based route does not store a response that varies on request headers.
            for vary in [false, true]
                .into_iter()
                .filter(|&vary| !vary || revalidate == "\"origin\"")
            {
                for host in [false, true] {
                    for (target, rsc) in [("/o/1", false), ("/o/1?utm=x&page=2", false), ("/o/1?_rsc=ab", true)] {
                        cases.push(Case {
                            revalidate,
                            query,
                            vary,
                            host,
                            target,
                            rsc,
                        });
                    }
                }
            }
        }
    }
    cases
}

fn config(case: Case) -> String {
    let mut route = format!("[[route]]\npath = \"/o/:id\"\nrevalidate = {}\n", case.revalidate);
    if let Some(query) = case.query {
        route.push_str(&format!("query = {query}\n"));
    }
    if case.host {
        route.push_str("host = \"shop.example\"\n");
    }
    format!("[origin]\nurl = \"{{origin}}\"\n\n{route}")
}

async fn stale_page_is_served_at_once_validated_once_then_fresh(case: Case) {
    let mut origin = TestOrigin::new().header("/o/1", "cache-control", ISR_CACHE_CONTROL);
    if case.vary {
        origin = origin.header("/o/1", "vary", "accept-language");
    }
    let origin = origin.start().await;
    let proxy = spawn_proxy(&config(case), &origin).await;
    let get = || {
        let mut request = proxy.client.get(case.target);
        if case.vary {
            request = request.header("accept-language", "de");
        }
        if case.host {
            request = request.header("host", "shop.example");
        }
        if case.rsc {
            request = request.header("rsc", "1");
        }
        request
    };
    let first = get().await;
    assert_eq!(
        (first.cache(), first.text.as_str()),
        ("MISS", "<p>/o/1 render 1</p>"),
        "{case:?}"
    );
    assert_eq!(get().await.cache(), "HIT", "{case:?}");

    proxy.clock.advance(Duration::from_secs(15));
    let stale = get().await;
    assert_eq!(
        (stale.cache(), stale.text.as_str()),
        ("STALE", "<p>/o/1 render 1</p>"),
        "{case:?}: a stale page is found under the key it was stored under, and served at once"
    );
    eventually(2_000, "the background validation", async || origin.renders("/o/1") == 2).await;
    eventually(2_000, "the validated page", async || {
        let fresh = get().await;
        (fresh.cache(), fresh.text.as_str()) == ("HIT", "<p>/o/1 render 2</p>")
    })
    .await;
    assert_eq!(origin.renders("/o/1"), 2, "{case:?}: one background validation");
    let requests = origin.requests("/o/1");
    assert_eq!(
        requests[1].uri, requests[0].uri,
        "{case:?}: the validation asks the origin for the URL the page was stored from"
    );
    if case.vary && case.revalidate == "\"origin\"" {
        assert_eq!(
            requests[1].headers.get("accept-language").map(|v| v.as_bytes()),
            Some(&b"de"[..]),
            "{case:?}: the validation carries the headers the variant was selected by"
        );
    }
    proxy.shutdown().await;
}

/// Issue 20: on `revalidate = "origin"` routes, `s-maxage` was read as `proxy-revalidate` even beside
/// `stale-while-revalidate`, so the ISR idiom above never served stale: every visitor after each `s-maxage`
/// period waited for the origin (MISS). The conformance tests used `max-age`, which is why it was missed. Every
/// combination runs, so a split between the key a page is stored under and the one a stale lookup uses would
/// fail here under whichever setting has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_page_is_served_stale_then_validated_once_under_every_route_setting() {
    let runs = cases()
        .into_iter()
        .map(stale_page_is_served_at_once_validated_once_then_fresh);
    futures_util::future::join_all(runs).await;
}
