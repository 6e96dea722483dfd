//! On-demand revalidation: the authenticated endpoint (paths, tags, purge) and `x-prerender-revalidate`.

mod common;

use std::time::Duration;

use common::{OriginHandle, ProxyHandle, TestOrigin, eventually, spawn_proxy, spawn_proxy_with, within};
use http::StatusCode;
use isr_proxy::config::Token;
use tokio::task::JoinSet;

const TOKEN: &str = "s3cret-token";

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "300ms"

[cache]
retry_after = "5s"

[[route]]
path = "/blog/:slug"
revalidate = 60

[[route]]
path = "/list"
revalidate = 60
query = ["page"]
"#;

async fn proxy_with_token(origin: &OriginHandle) -> ProxyHandle {
    spawn_proxy_with(CONFIG, origin, |config| config.revalidate.token = Token::new(TOKEN)).await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_or_wrong_tokens_are_rejected_in_both_forms() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    proxy.client.get("/blog/a").await;

    let cases = [
        ("/_isr/revalidate?path=/blog/a", None),
        ("/_isr/revalidate?path=/blog/a", Some("Bearer wrong")),
        ("/_isr/revalidate?path=/blog/a", Some("s3cret-token")),
        ("/_isr/revalidate?path=/blog/a&secret=wrong", None),
        ("/_isr/revalidate?path=/blog/a&secret=", None),
    ];
    for (uri, auth) in cases {
        let mut request = proxy.client.post(uri, "");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
        assert_eq!(json(&response.text), serde_json::json!({"error": "invalid token"}));
    }
    assert_eq!(origin.renders("/blog/a"), 1, "a rejected call must not regenerate");

    let by_query = proxy
        .client
        .post(&format!("/_isr/revalidate?path=/blog/a&secret={TOKEN}"), "")
        .await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text);
    let by_header = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a", "")
        .header("authorization", &bearer())
        .await;
    assert_eq!(by_header.status, StatusCode::OK, "{}", by_header.text);
    assert_eq!(origin.renders("/blog/a"), 3);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoint_is_disabled_without_a_token() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy_with(CONFIG, &origin, |config| config.revalidate.token = None).await;
    let response = proxy.client.post("/_isr/revalidate?path=/blog/a&secret=", "").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let response = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a", "")
        .header("authorization", "Bearer x")
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(
        origin.requests("/_isr/revalidate").is_empty(),
        "the endpoint path never reaches the origin"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn path_revalidation_replaces_the_page_with_one_fetch_even_racing_stale_requests() {
    let origin = TestOrigin::new()
        .latency("/blog/a", Duration::from_millis(150))
        .start()
        .await;
    let proxy = proxy_with_token(&origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.text, "<p>/blog/a render 1</p>");
    proxy.clock.advance(Duration::from_secs(61));

    let mut stale = JoinSet::new();
    for _ in 0..20 {
        let client = proxy.client.clone();
        stale.spawn(async move { client.get("/blog/a").await });
    }
    let revalidation = proxy
        .client
        .post("/_isr/revalidate", r#"{"paths": ["/blog/a"]}"#)
        .header("authorization", &bearer())
        .header("content-type", "application/json");
    let response = within(2_000, "revalidation", revalidation).await;
    while let Some(joined) = stale.join_next().await {
        let stale = joined.expect("request task");
        assert_eq!(stale.status, StatusCode::OK);
        assert!(stale.text.starts_with("<p>/blog/a render"), "{}", stale.text);
    }
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let report = json(&response.text);
    assert_eq!(report["revalidated"], true);
    assert_eq!(report["paths"]["/blog/a"], "regenerated");
    assert!(report["now"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000));
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "the revalidation and 20 concurrent stale requests must share one regeneration"
    );

    let after = proxy.client.get("/blog/a").await;
    assert_eq!(after.cache(), "HIT");
    assert_eq!(after.text, "<p>/blog/a render 2</p>");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_regeneration_keeps_the_old_page_and_reports_502() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    proxy.client.get("/blog/a").await;
    origin.set_failing("/blog/a", Some(StatusCode::INTERNAL_SERVER_ERROR));

    let response = proxy
        .client
        .post("/_isr/revalidate", r#"{"paths": ["/blog/a", "/nowhere"]}"#)
        .header("authorization", &bearer())
        .await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{}", response.text);
    let report = json(&response.text);
    assert_eq!(report["revalidated"], false);
    let error = report["paths"]["/blog/a"]["error"].as_str().expect("error text");
    assert!(error.contains("500"), "{error}");
    assert_eq!(
        report["paths"]["/nowhere"], "skipped",
        "a path under no cached route is skipped"
    );

    let kept = proxy.client.get("/blog/a").await;
    assert_eq!(kept.cache(), "HIT");
    assert_eq!(
        kept.text, "<p>/blog/a render 1</p>",
        "the last good page survives a failed regeneration"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_revalidation_marks_only_tagged_pages_stale() {
    let origin = TestOrigin::new()
        .header("/blog/a", "x-isr-tags", "post-1, blog")
        .header("/blog/b", "x-next-cache-tags", "blog")
        .start()
        .await;
    let proxy = proxy_with_token(&origin).await;
    for path in ["/blog/a", "/blog/b", "/blog/c"] {
        let page = proxy.client.get(path).await;
        assert!(
            page.header("x-isr-tags").is_none() && page.header("x-next-cache-tags").is_none(),
            "tags stripped"
        );
    }

    let response = proxy
        .client
        .post("/_isr/revalidate?tag=blog", "")
        .header("authorization", &bearer())
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(json(&response.text)["tags"]["blog"], 2);

    let untagged = proxy.client.get("/blog/c").await;
    assert_eq!(untagged.cache(), "HIT", "an untagged page stays fresh");
    for path in ["/blog/a", "/blog/b"] {
        let stale = proxy.client.get(path).await;
        assert_eq!(stale.cache(), "STALE", "{path} carries the tag");
        assert_eq!(stale.text, format!("<p>{path} render 1</p>"));
        eventually(2_000, "background regeneration", async || origin.renders(path) == 2).await;
    }
    eventually(2_000, "regenerated page served", async || {
        proxy.client.get("/blog/a").await.text == "<p>/blog/a render 2</p>"
    })
    .await;
    assert_eq!(origin.renders("/blog/c"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_removes_pages_so_the_next_request_misses() {
    let origin = TestOrigin::new().header("/blog/b", "x-isr-tags", "t").start().await;
    let proxy = proxy_with_token(&origin).await;
    proxy.client.get("/blog/a").await;
    proxy.client.get("/blog/b").await;
    proxy.client.get("/list?page=2&utm=x").await;

    let response = proxy
        .client
        .post(
            "/_isr/revalidate",
            r#"{"paths": ["/blog/a", "/list?page=2&utm=y"], "tags": ["t"], "purge": true}"#,
        )
        .header("authorization", &bearer())
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let report = json(&response.text);
    assert_eq!(report["paths"]["/blog/a"], "purged");
    assert_eq!(
        report["paths"]["/list?page=2&utm=y"], "purged",
        "paths are keyed with the route's query policy"
    );
    assert_eq!(report["tags"]["t"], 1);
    for path in ["/blog/a", "/blog/b", "/list?page=2"] {
        assert_eq!(proxy.client.get(path).await.cache(), "MISS", "{path} was purged");
    }
    assert_eq!(origin.renders("/blog/a"), 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prerender_revalidate_header_regenerates_only_with_the_right_token() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    proxy.client.get("/blog/a").await;

    let wrong = proxy
        .client
        .get("/blog/a")
        .header("x-prerender-revalidate", "nope")
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::OK,
        "a wrong token is ignored, never a 401 on a public path"
    );
    assert_eq!(wrong.cache(), "HIT");
    assert_eq!(origin.renders("/blog/a"), 1);

    let right = proxy
        .client
        .get("/blog/a")
        .header("x-prerender-revalidate", TOKEN)
        .await;
    assert_eq!(right.cache(), "REVALIDATED");
    assert_eq!(right.text, "<p>/blog/a render 2</p>");
    assert!(
        origin
            .last_request("/blog/a")
            .headers
            .get("x-prerender-revalidate")
            .is_none(),
        "the secret never reaches the origin"
    );
    assert_eq!(proxy.client.get("/blog/a").await.text, "<p>/blog/a render 2</p>");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_calls_get_clear_4xx_and_lose_nothing() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    proxy.client.get("/blog/a").await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("\"/blog/{i}\"")).collect();
    let too_many = format!("{{\"paths\": [{}]}}", too_many.join(","));
    let oversized = format!(
        "{{\"paths\": [\"/blog/a\"], \"tags\": [\"{}\"]}}",
        "x".repeat(70 * 1024)
    );
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "/_isr/revalidate",
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "/_isr/revalidate",
            r#"{"pathz": ["/a"]}"#.into(),
            StatusCode::BAD_REQUEST,
            "pathz",
        ),
        (
            "/_isr/revalidate",
            r#"{"paths": ["blog/a"]}"#.into(),
            StatusCode::BAD_REQUEST,
            "must start with '/'",
        ),
        (
            "/_isr/revalidate",
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "at least one path, tag or prefix",
        ),
        ("/_isr/revalidate", too_many, StatusCode::BAD_REQUEST, "at most 1000"),
        (
            "/_isr/revalidate",
            oversized,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ];
    for (uri, body, status, needle) in cases {
        let response = proxy.client.post(uri, body).header("authorization", &bearer()).await;
        assert_eq!(response.status, status, "{needle}: {}", response.text);
        let error = json(&response.text)["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(error.contains(needle), "error {error:?} should mention {needle:?}");
    }
    let get = proxy
        .client
        .get("/_isr/revalidate")
        .header("authorization", &bearer())
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));

    let kept = proxy.client.get("/blog/a").await;
    assert_eq!(
        (kept.cache(), kept.text.as_str()),
        ("HIT", "<p>/blog/a render 1</p>"),
        "nothing cached is lost"
    );
    assert_eq!(origin.renders("/blog/a"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_token_configured_pages_still_serve() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let page = proxy.client.get("/blog/a").header("x-prerender-revalidate", "").await;
    assert_eq!(page.cache(), "MISS");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revalidating_a_path_reaches_its_rsc_payloads_too() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    let navigate = || proxy.client.get("/blog/a?_rsc=abc").header("rsc", "1");
    proxy.client.get("/blog/a").await;
    assert_eq!(navigate().await.cache(), "MISS");
    assert_eq!(navigate().await.cache(), "HIT");
    assert_eq!(
        origin.renders("/blog/a"),
        2,
        "the HTML page and its RSC payload are two entries"
    );

    let regenerate = proxy
        .client
        .post("/_isr/revalidate?path=/blog/a", "")
        .header("authorization", &bearer())
        .await;
    assert_eq!(regenerate.status, StatusCode::OK, "{}", regenerate.text);
    let stale = navigate().await;
    assert_eq!(
        stale.cache(),
        "STALE",
        "a client-side navigation must not keep the old payload as fresh"
    );
    assert_eq!(stale.text, "<p>/blog/a render 2</p>");
    eventually(2_000, "the RSC payload to be regenerated", async || {
        let page = navigate().await;
        page.cache() == "HIT" && page.text == "<p>/blog/a render 4</p>"
    })
    .await;

    let purge = proxy
        .client
        .post("/_isr/revalidate", r#"{"paths": ["/blog/a"], "purge": true}"#)
        .header("authorization", &bearer())
        .await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text);
    assert_eq!(
        navigate().await.cache(),
        "MISS",
        "a purge removes the path's payloads as well"
    );
    proxy.shutdown().await;
}
