//! Looking inside the cache from the admin listener: `/cache` pages through the pages in memory (filters,
//! cursors, evictions), `/cache/entry` explains one page, `/regenerations` shows what regeneration is doing, and
//! bad parameters get a 400 that says what is wrong. Results are read back as the library's own types.

mod common;

use std::time::Duration;

use common::admin::{AdminHandle, spawn_admin};
use common::{ProxyHandle, TestOrigin, eventually, spawn_proxy, spawn_proxy_with, within};
use http::StatusCode;
use isr_proxy::admin::api::{CacheListing, EntryDetail, ErrorBody, PageState, Regenerations};
use isr_proxy::config::Token;

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "500ms"

[cache]
retry_after = "30s"

[[route]]
path = "/"
revalidate = 600

[[route]]
path = "/blog/:slug"
revalidate = 60

[[route]]
path = "/api/*rest"
cache = false
"#;

/// `GET path` on the admin listener, expecting 200 and a `T`.
async fn get<T: serde::de::DeserializeOwned>(admin: &AdminHandle, path: &str) -> T {
    let response = admin.client.get(path).await;
    assert_eq!(response.status, StatusCode::OK, "GET {path}: {}", response.text);
    serde_json::from_str(&response.text).unwrap_or_else(|err| panic!("GET {path} ({err}): {}", response.text))
}

fn keys(listing: &CacheListing) -> Vec<&str> {
    listing.entries.iter().map(|e| e.key.key.as_str()).collect()
}

async fn warm(proxy: &ProxyHandle, paths: &[&str]) {
    for path in paths {
        assert_eq!(proxy.client.get(path).await.cache(), "MISS", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_listing_pages_through_every_page_in_key_order() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    let paths = ["/blog/g", "/blog/c", "/", "/blog/a", "/blog/f", "/blog/b", "/blog/e"];
    warm(&proxy, &paths).await;

    let mut seen = Vec::new();
    let mut query = "/cache?limit=3".to_owned();
    for page in 1.. {
        let listing: CacheListing = get(&admin, &query).await;
        assert!(listing.entries.len() <= 3);
        assert_eq!(listing.total, 7);
        seen.extend(keys(&listing).into_iter().map(str::to_owned));
        let Some(cursor) = listing.next_cursor else { break };
        assert!(page < 3, "7 pages in pages of 3 take 3 calls");
        let cursor: String = form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        query = format!("/cache?limit=3&cursor={cursor}");
    }
    assert_eq!(
        seen,
        ["/", "/blog/a", "/blog/b", "/blog/c", "/blog/e", "/blog/f", "/blog/g"]
    );
    for path in paths {
        assert_eq!(origin.renders(path), 1, "listing never reaches the origin: {path}");
    }
    assert_eq!(
        proxy.client.get("/blog/a").await.cache(),
        "HIT",
        "listing changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_listing_filters_by_prefix_tag_and_state() {
    let origin = TestOrigin::new()
        .header("/blog/a", "x-isr-tags", "blog, post-a")
        .header("/blog/b", "x-isr-tags", "blog")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    warm(&proxy, &["/", "/blog/a", "/blog/b"]).await;
    // Blog pages are fresh for 60 s, the index for 600 s.
    proxy.clock.advance(Duration::from_secs(61));

    let list = async |query: &str| get::<CacheListing>(&admin, &format!("/cache?{query}")).await;
    assert_eq!(keys(&list("prefix=/blog/").await), ["/blog/a", "/blog/b"]);
    assert_eq!(keys(&list("state=stale").await), ["/blog/a", "/blog/b"]);
    assert_eq!(keys(&list("state=fresh").await), ["/"]);
    assert!(keys(&list("state=expired").await).is_empty());
    let tagged = list("tag=post-a").await;
    assert_eq!(keys(&tagged), ["/blog/a"]);
    assert_eq!(tagged.total, 1, "total counts the tag's pages");
    assert_eq!(tagged.entries[0].page.tags, ["blog", "post-a"]);
    assert_eq!(tagged.entries[0].page.state, PageState::Stale);
    assert_eq!(tagged.entries[0].page.age_seconds, 61);
    assert_eq!(keys(&list("tag=blog&prefix=/blog/b").await), ["/blog/b"]);
    assert_eq!(list("tag=nothing").await.total, 0);
    assert_eq!(keys(&list("prefix=/blog/&state=stale&limit=1").await), ["/blog/a"]);
    assert_eq!(origin.renders("/blog/a"), 1, "a stale page listed is not regenerated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_listing_shows_sizes_variants_and_the_tiers_holding_a_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new()
        .page("/blog/big", |n| format!("<p>{}</p>", "isr-proxy ".repeat(400 + n)))
        .header("/blog/big", "content-type", "text/html")
        .start()
        .await;
    let config = CONFIG.replace(
        "[cache]\n",
        &format!("[cache]\ndir = {:?}\n", dir.path().display().to_string()),
    );
    let proxy = spawn_proxy(&config, &origin).await;
    let admin = spawn_admin(&proxy).await;
    warm(&proxy, &["/blog/big"]).await;
    let rsc = proxy.client.get("/blog/big").header("rsc", "1").await;
    assert_eq!(rsc.cache(), "MISS", "an RSC request is its own variant");

    let listing: CacheListing = get(&admin, "/cache?prefix=/blog/big").await;
    assert_eq!(keys(&listing), ["/blog/big", "/blog/big [rsc: 1]"]);
    let (page, variant) = (&listing.entries[0], &listing.entries[1]);
    assert!(page.key.variant.is_empty());
    assert_eq!(variant.key.variant.get("rsc").map(String::as_str), Some("1"));
    assert_eq!(variant.key.path, "/blog/big");
    let size = &page.page.size;
    assert!(size.body > 4000, "{size:?}");
    let (gzip, br) = (size.gzip.expect("a gzip form"), size.br.expect("a br form"));
    assert!(br < size.body && gzip < size.body, "{size:?}");
    assert!(
        size.weight > size.body + br + gzip,
        "weight counts every form: {size:?}"
    );
    assert_eq!(page.page.status, 200);
    eventually(2_000, "the disk tier to hold the page", async || {
        let listing: CacheListing = get(&admin, "/cache?prefix=/blog/big&limit=1").await;
        listing.entries[0].page.tiers == ["memory", "disk"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_refuses_unknown_and_malformed_parameters_with_a_reason() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    let cases = [
        (
            "/cache?prefx=/blog/",
            "unknown parameter \"prefx\"; expected prefix, tag, state, limit, cursor",
        ),
        ("/cache?limit=0", "limit \"0\" must be a number from 1 to 1000"),
        ("/cache?state=old", "state \"old\" must be fresh, stale or expired"),
        ("/cache?cursor=nonsense", "malformed cursor"),
        ("/cache?tag=a&tag=b", "parameter \"tag\" given twice"),
        ("/cache/entry", "missing parameter \"path\""),
        (
            "/cache/entry?path=/blog/a&host=example.com",
            "unknown parameter \"host\"",
        ),
        (
            "/cache/entry?path=/blog/%zz",
            "path \"/blog/%zz\": request path has a malformed percent-escape",
        ),
        (
            "/regenerations?failed=1",
            "unknown parameter \"failed\"; this endpoint takes none",
        ),
        ("/stats?verbose", "unknown parameter \"verbose\""),
    ];
    for (path, reason) in cases {
        let response = admin.client.get(path).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{path}");
        let body: ErrorBody = serde_json::from_str(&response.text).expect("an error body");
        assert!(body.error.starts_with(reason), "{path}: {}", body.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_entry_shows_why_a_page_stays_stale_and_when_it_recovers() {
    let origin = TestOrigin::new()
        .header("/blog/a", "content-type", "text/html")
        .header("/blog/a", "x-isr-tags", "blog")
        .start()
        .await;
    let proxy = spawn_proxy_with(CONFIG, &origin, |config| {
        config.revalidate.token = Token::new("t0ken");
    })
    .await;
    let admin = spawn_admin(&proxy).await;
    warm(&proxy, &["/blog/a"]).await;

    origin.set_failing("/blog/a", Some(StatusCode::INTERNAL_SERVER_ERROR));
    proxy.clock.advance(Duration::from_secs(61));
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "STALE");
    eventually(2_000, "the background regeneration to fail", async || {
        let entry: EntryDetail = get(&admin, "/cache/entry?path=/blog/a").await;
        entry.regeneration.last.is_some_and(|last| last.result == "failed")
    })
    .await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "STALE");
    assert_eq!(origin.renders("/blog/a"), 2, "no retry before cache.retry_after");

    let entry: EntryDetail = get(&admin, "/cache/entry?path=/blog/a").await;
    assert_eq!(entry.key.key, "/blog/a");
    assert_eq!(entry.route.route, "/blog/:slug");
    assert_eq!(entry.route.revalidate, "1m");
    assert_eq!(entry.route.fallback, "blocking");
    let stored = entry.entry.expect("the last good page is kept");
    assert_eq!(stored.page.state, PageState::Stale);
    assert_eq!(stored.page.tiers, ["memory"]);
    assert_eq!(stored.revalidate_seconds, Some(60));
    let header = |name: &str| stored.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("content-type"), Some("text/html"));
    assert!(header("etag").is_some_and(|etag| etag.starts_with('"')));
    assert_eq!(header("x-isr-tags"), None, "tag headers are not stored");
    let last = entry.regeneration.last.expect("a last regeneration");
    assert_eq!(last.kind, "background");
    assert_eq!(last.error.as_deref(), Some("origin answered 500 Internal Server Error"));
    assert!(
        entry.regeneration.retry_at.is_some(),
        "a failure sets the next retry time"
    );
    assert!(!entry.regeneration.in_flight);

    let regenerations: Regenerations = get(&admin, "/regenerations").await;
    assert_eq!(regenerations.failed_total, 1);
    assert_eq!(regenerations.recent_failures.len(), 1);
    assert_eq!(regenerations.recent_failures[0].key, "/blog/a");

    origin.set_failing("/blog/a", None);
    let revalidated = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a", "")
        .header("authorization", "Bearer t0ken")
        .await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.text);
    let entry: EntryDetail = get(&admin, "/cache/entry?path=/blog/a").await;
    assert_eq!(entry.entry.expect("stored").page.state, PageState::Fresh);
    let last = entry.regeneration.last.expect("the on-demand regeneration");
    assert_eq!((last.result.as_str(), last.kind.as_str()), ("stored", "on_demand"));
    assert_eq!(entry.regeneration.retry_at, None, "a success clears the backoff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_entry_explains_pages_that_are_not_cached() {
    let origin = TestOrigin::new()
        .header("/blog/cookie", "set-cookie", "session=1")
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    assert_eq!(proxy.client.get("/blog/cookie").await.cache(), "BYPASS");

    let entry: EntryDetail = get(&admin, "/cache/entry?path=/blog/cookie").await;
    assert!(entry.entry.is_none());
    let last = entry.regeneration.last.expect("the fetch that was not stored");
    assert_eq!(last.result, "not_stored");
    assert_eq!(last.error.as_deref(), Some("origin response not cacheable: set-cookie"));

    let never: EntryDetail = get(&admin, "/cache/entry?path=/blog/never-asked").await;
    assert!(never.entry.is_none() && never.regeneration.last.is_none());

    for (path, reason) in [
        ("/api/x", "route /api/*rest has cache = false"),
        ("/other", "no route matches /other"),
    ] {
        let response = admin.client.get(&format!("/cache/entry?path={path}")).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        let body: ErrorBody = serde_json::from_str(&response.text).expect("an error body");
        assert!(body.error.starts_with(reason), "{path}: {}", body.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerations_show_running_flights_and_how_they_ended() {
    let origin = TestOrigin::new()
        .latency("/blog/slow", Duration::from_millis(300))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    let client = proxy.client.clone();
    let miss = tokio::spawn(async move { client.get("/blog/slow").await.cache().to_owned() });

    eventually(1_000, "the flight to be listed", async || {
        let regenerations: Regenerations = get(&admin, "/regenerations").await;
        regenerations.in_flight_total == 1
            && regenerations.in_flight[0].key == "/blog/slow"
            && regenerations.in_flight[0].kind == "request"
    })
    .await;
    assert_eq!(within(2_000, "the miss", miss).await.expect("request task"), "MISS");

    let regenerations: Regenerations = get(&admin, "/regenerations").await;
    assert!(regenerations.in_flight.is_empty());
    let done = &regenerations.recent[0];
    assert_eq!((done.key.as_str(), done.result.as_str()), ("/blog/slow", "stored"));
    assert!(done.duration_ms >= 250, "{done:?}");
    assert!(regenerations.recent_failures.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evicted_and_purged_pages_leave_the_listing() {
    let origin = TestOrigin::new().start().await;
    let config = CONFIG.replace(
        "[cache]\n",
        "[cache]\nmax_size = \"16KiB\"\nmax_entry_size = \"8KiB\"\n",
    );
    let proxy = spawn_proxy_with(&config, &origin, |config| {
        config.revalidate.token = Token::new("t0ken");
    })
    .await;
    let admin = spawn_admin(&proxy).await;
    for i in 0..40 {
        proxy.client.get(&format!("/blog/page-{i:02}")).await;
    }
    let listing: CacheListing = get(&admin, "/cache?limit=1000").await;
    let health = admin.json("/health").await;
    assert!(listing.total < 40, "the byte bound evicted pages");
    assert_eq!(Some(listing.total as u64), health["cache"]["entries"].as_u64());
    assert_eq!(listing.entries.len(), listing.total, "every indexed page is live");

    let purged = &listing.entries[0].key.path;
    let r = proxy
        .client
        .post(&format!("/_isr/revalidate?purge=1&path={purged}"), "")
        .header("authorization", "Bearer t0ken")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after: CacheListing = get(&admin, "/cache?limit=1000").await;
    assert_eq!(after.total, listing.total - 1);
    assert!(!keys(&after).contains(&purged.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vary_variants_are_listed_after_their_page_with_their_values() {
    let origin = TestOrigin::new()
        .header("/docs/a", "cache-control", "s-maxage=60")
        .header("/docs/a", "vary", "accept-language")
        .start()
        .await;
    let config = format!("{CONFIG}\n[[route]]\npath = \"/docs/:page\"\nrevalidate = \"origin\"\n");
    let proxy = spawn_proxy(&config, &origin).await;
    let admin = spawn_admin(&proxy).await;
    for language in ["en", "de"] {
        let response = proxy.client.get("/docs/a").header("accept-language", language).await;
        assert_eq!(response.cache(), "MISS", "{language}");
    }

    let listing: CacheListing = get(&admin, "/cache?prefix=/docs/").await;
    assert_eq!(
        keys(&listing),
        [
            "/docs/a [vary accept-language: de]",
            "/docs/a [vary accept-language: en]"
        ]
    );
    let vary = &listing.entries[0].key.vary;
    assert_eq!(vary, &[("accept-language".to_owned(), Some("de".to_owned()))]);
    let entry: EntryDetail = get(&admin, "/cache/entry?path=/docs/a").await;
    assert_eq!(entry.vary_variants, 2);
    assert_eq!(entry.route.revalidate, "from origin");

    let first: CacheListing = get(&admin, "/cache?prefix=/docs/&limit=1").await;
    let cursor = first.next_cursor.expect("a second page");
    let cursor: String = form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
    let after: CacheListing = get(&admin, &format!("/cache?prefix=/docs/&limit=1&cursor={cursor}")).await;
    assert_eq!(
        keys(&after),
        ["/docs/a [vary accept-language: en]"],
        "a Vary variant's cursor resumes after it"
    );
    assert_eq!(after.next_cursor, None);
}
