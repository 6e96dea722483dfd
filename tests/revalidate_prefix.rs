//! Prefix revalidation: `prefixes` / `?prefix=` mark stale (or purge) exactly the pages under a path prefix, by
//! whole segments, with their queries and variants, per site; bad prefixes get a 400.

mod common;

use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::config::Token;

const TOKEN: &str = "prefix-token";

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog"
revalidate = 60
query = ["page"]

[[route]]
path = "/blog/*rest"
revalidate = 60

[[route]]
path = "/blog-old"
revalidate = 60

[[route]]
path = "/blogroll"
revalidate = 60

[[route]]
path = "/docs/*rest"
revalidate = 60

[[route]]
path = "/shop/:slug"
revalidate = 60
host = ["a.example.com", "b.example.com"]
"#;

/// Pages the prefix `/blog` covers, and pages it must leave alone (`/blog` as a string prefix of the latter two).
const UNDER_BLOG: [&str; 4] = ["/blog", "/blog/a", "/blog/b/c", "/blog?page=2"];
const BESIDE_BLOG: [&str; 3] = ["/blog-old", "/blogroll", "/docs/x"];

async fn proxy(origin: &OriginHandle) -> ProxyHandle {
    spawn_proxy_with(CONFIG, origin, |config| config.revalidate.token = Token::new(TOKEN)).await
}

async fn call(proxy: &ProxyHandle, uri: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let response = proxy
        .client
        .post(uri, body.to_owned())
        .header("authorization", &format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .await;
    let report =
        serde_json::from_str(&response.text).unwrap_or_else(|err| panic!("not JSON ({err}): {}", response.text));
    (response.status, report)
}

/// The origin's render count for a page (the query is ignored by the counter, so `/blog?page=2` counts as `/blog`).
fn renders(origin: &OriginHandle, page: &str) -> usize {
    origin.renders(page.split_once('?').map_or(page, |(path, _)| path))
}

/// Fetches every page once (a MISS each) so that all of them are cached.
async fn warm(proxy: &ProxyHandle, pages: &[&str]) {
    for page in pages {
        assert_eq!(proxy.client.get(page).await.cache(), "MISS", "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_marks_stale_exactly_the_pages_under_it_by_whole_segments() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin).await;
    warm(&proxy, &UNDER_BLOG).await;
    warm(&proxy, &BESIDE_BLOG).await;
    let navigate = || proxy.client.get("/blog/a?_rsc=1").header("rsc", "1");
    assert_eq!(navigate().await.cache(), "MISS", "the RSC payload of /blog/a");
    let before: Vec<usize> = UNDER_BLOG.iter().map(|page| renders(&origin, page)).collect();

    let (status, report) = call(&proxy, "/_isr/revalidate", r#"{"prefixes": ["/blog"]}"#).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["prefixes"]["/blog"], 5,
        "four pages and one RSC payload: {report}"
    );

    for (page, before) in UNDER_BLOG.iter().zip(before) {
        let stale = proxy.client.get(page).await;
        assert_eq!(stale.cache(), "STALE", "{page} lies under /blog");
        eventually(2_000, &format!("{page} regenerated"), async || {
            renders(&origin, page) > before
        })
        .await;
    }
    assert_eq!(
        navigate().await.cache(),
        "STALE",
        "the payload goes stale with its page"
    );
    // Each covered response rendered exactly once more: /blog and /blog?page=2 (one counter), /blog/a and its
    // payload (one counter), /blog/b/c.
    for (path, renders) in [("/blog", 4), ("/blog/a", 4), ("/blog/b/c", 2)] {
        eventually(2_000, &format!("{path} rendered {renders} times"), async || {
            origin.renders(path) == renders
        })
        .await;
    }
    for page in BESIDE_BLOG {
        assert_eq!(proxy.client.get(page).await.cache(), "HIT", "{page} is not under /blog");
        assert_eq!(origin.renders(page), 1, "{page} must not be rendered again");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_ending_in_a_slash_spares_the_page_itself() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin).await;
    warm(&proxy, &["/blog", "/blog/a", "/blog-old"]).await;

    let (status, report) = call(&proxy, "/_isr/revalidate?prefix=/blog/", "").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["prefixes"]["/blog/"], 1);
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "STALE");
    assert_eq!(
        proxy.client.get("/blog").await.cache(),
        "HIT",
        "/blog/ covers what lies under /blog only"
    );
    assert_eq!(proxy.client.get("/blog-old").await.cache(), "HIT");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_by_prefix_removes_the_pages_so_the_next_request_misses() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin).await;
    warm(&proxy, &["/blog/a", "/docs/x", "/docs/y/z", "/blogroll"]).await;

    let (status, report) = call(&proxy, "/_isr/revalidate?prefix=/blog&prefix=/docs&purge=1", "").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (report["prefixes"]["/blog"].clone(), report["prefixes"]["/docs"].clone()),
        (1.into(), 2.into())
    );
    for page in ["/blog/a", "/docs/x", "/docs/y/z"] {
        assert_eq!(proxy.client.get(page).await.cache(), "MISS", "{page} was purged");
        assert_eq!(origin.renders(page), 2);
    }
    assert_eq!(proxy.client.get("/blogroll").await.cache(), "HIT");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_reaches_its_own_sites_pages_and_no_other_sites() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin).await;
    for host in ["a.example.com", "b.example.com"] {
        let page = proxy.client.get("/shop/x").header("host", host).await;
        assert_eq!(page.cache(), "MISS", "{host}");
    }
    warm(&proxy, &["/blog/a"]).await;
    let site = |host: &'static str| proxy.client.get("/shop/x").header("host", host);

    let (_, report) = call(&proxy, "/_isr/revalidate", r#"{"prefixes": ["/shop"]}"#).await;
    assert_eq!(
        report["prefixes"]["/shop"], 0,
        "without a host, a site's own pages are not meant"
    );
    assert_eq!(site("a.example.com").await.cache(), "HIT");

    let (_, report) = call(
        &proxy,
        "/_isr/revalidate",
        r#"{"prefixes": ["/shop", "/blog"], "host": "a.example.com"}"#,
    )
    .await;
    assert_eq!(report["prefixes"]["/shop"], 1, "{report}");
    assert_eq!(
        report["prefixes"]["/blog"], 1,
        "host-less pages serve every site: {report}"
    );
    assert_eq!(site("a.example.com").await.cache(), "STALE");
    assert_eq!(
        site("b.example.com").await.cache(),
        "HIT",
        "another site's page stays fresh"
    );

    let (_, report) = call(&proxy, "/_isr/revalidate?prefix=https://b.example.com/shop/", "").await;
    assert_eq!(
        report["prefixes"]["https://b.example.com/shop/"], 1,
        "a full URL names its site"
    );
    assert_eq!(site("b.example.com").await.cache(), "STALE");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_prefixes_get_a_400_naming_the_problem_and_change_nothing() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy(&origin).await;
    warm(&proxy, &["/blog/a"]).await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("\"/p/{i}\"")).collect();
    let too_many = format!("{{\"prefixes\": [{}]}}", too_many.join(","));
    for (body, needle) in [
        (r#"{"prefixes": ["blog"]}"#.to_owned(), "must start with '/'"),
        (r#"{"prefixes": [""]}"#.to_owned(), "must start with '/'"),
        (r#"{"prefixes": ["/blog?page=2"]}"#.to_owned(), "without a query"),
        (r#"{"prefixes": ["/../etc"]}"#.to_owned(), "escapes the root"),
        (r#"{"prefixes": "/blog"}"#.to_owned(), "malformed JSON"),
        (r#"{"prefixes": []}"#.to_owned(), "at least one path, tag or prefix"),
        (too_many, "at most 1000 paths, tags and prefixes"),
    ] {
        let (status, report) = call(&proxy, "/_isr/revalidate", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:.60}: {report}");
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "error {error:?} should mention {needle:?}");
    }
    assert_eq!(
        proxy.client.get("/blog/a").await.cache(),
        "HIT",
        "nothing was marked stale"
    );
    proxy.shutdown().await;
}
