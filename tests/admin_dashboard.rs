//! The admin listener's dashboard side: the page and its headers (only on the admin listener), `/history`
//! sampled from the counters, and `POST /revalidate`, which acts only with the revalidation token. The page in
//! a real browser is `dashboard.rs`.

mod common;

use std::time::Duration;

use common::admin::{AdminHandle, spawn_admin, spawn_admin_sampling};
use common::{BLOG_CONFIG, ProxyHandle, TestOrigin, TestResponse, eventually, spawn_proxy, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::config::Token;

const CONFIG: &str = BLOG_CONFIG;
const TOKEN: &str = "t0ken";

async fn proxy_with_token(origin: &common::OriginHandle) -> ProxyHandle {
    spawn_proxy_with(CONFIG, origin, |config| config.revalidate.token = Token::new(TOKEN)).await
}

async fn post(admin: &AdminHandle, path: &str, body: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut request = admin
        .client
        .post(path, body.to_owned())
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_served_on_the_admin_listener_with_a_strict_policy_and_never_on_the_public_one() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;

    let page = admin.client.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.text.contains("isr-proxy dashboard"), "{}", page.text);
    let policy = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "CSP lacks {directive}: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    let script = admin.client.get("/dashboard.js").await;
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert!(script.text.contains("/revalidate"));
    let style = admin.client.get("/dashboard.css").await;
    assert_eq!(style.header("content-type"), Some("text/css; charset=utf-8"));
    let json = admin.client.get("/stats").await;
    assert_eq!(json.header("x-content-type-options"), Some("nosniff"));

    let public = proxy.client.get("/").await;
    assert!(
        !public.text.contains("isr-proxy dashboard"),
        "the public listener passes / to the origin: {}",
        public.text
    );
    assert_eq!(origin.renders("/"), 1, "the public / went to the origin");
    assert_eq!(
        proxy.client.get("/dashboard.js").await.text,
        "<p>/dashboard.js render 1</p>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_samples_the_existing_counters_every_interval() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin_sampling(&proxy, Duration::from_millis(20)).await;

    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(proxy.client.get("/other").await.cache(), "BYPASS");

    let labels = admin.json("/history").await["request_labels"].clone();
    let at = |name: &str| {
        labels
            .as_array()
            .and_then(|l| l.iter().position(|label| label == name))
            .unwrap_or_else(|| panic!("no label {name} in {labels}"))
    };
    let (hit, miss, bypass) = (at("HIT"), at("MISS"), at("BYPASS"));
    let mut last = serde_json::Value::Null;
    eventually(3_000, "a sample taken after the traffic", async || {
        let history = admin.json("/history").await;
        last = history["points"]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
            .unwrap_or_default();
        last["requests"][bypass] == 1
    })
    .await;
    assert_eq!(last["requests"][hit], 2, "{last}");
    assert_eq!(last["requests"][miss], 1, "{last}");
    assert_eq!(last["origin_fetches"], 1, "{last}");
    assert_eq!(last["regenerations"], 1, "{last}");
    assert_eq!(last["entries"], 1, "{last}");
    assert!(last["bytes"].as_u64() > Some(0), "{last}");
    assert_eq!(last["max_bytes"], proxy.proxy.cache().max_bytes(), "{last}");

    let history = admin.json("/history").await;
    assert_eq!(history["interval_ms"], 20);
    let points = history["points"].as_array().cloned().unwrap_or_default();
    assert!(points.len() >= 2, "{history}");
    let seqs: Vec<u64> = points.iter().filter_map(|p| p["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one more per sample: {seqs:?}"
    );
    let elapsed: Vec<u64> = points.iter().filter_map(|p| p["elapsed_ms"].as_u64()).collect();
    assert!(elapsed.windows(2).all(|w| w[1] > w[0]), "{elapsed:?}");

    let newest = seqs.last().copied().unwrap_or_default();
    let after = admin.json(&format!("/history?after={}", newest - 1)).await;
    let after_seqs: Vec<u64> = after["points"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["seq"].as_u64()).collect())
        .unwrap_or_default();
    assert!(
        after_seqs.first() == Some(&newest),
        "after= sends only newer points: {after_seqs:?}"
    );
    let bad = admin.client.get("/history?after=soon").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_off_without_a_revalidation_token() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;
    let admin = spawn_admin(&proxy).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");

    let health = admin.json("/health").await;
    assert_eq!(health["config"]["actions_enabled"], false, "{health}");
    let refused = post(
        &admin,
        "/revalidate",
        r#"{"paths":["/blog/a"]}"#,
        &[("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("actions are off"), "{}", refused.text);
    assert_eq!(origin.renders("/blog/a"), 1, "nothing regenerated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_need_the_token_in_the_authorization_header_and_get_never_acts() {
    let origin = TestOrigin::new().start().await;
    let proxy = proxy_with_token(&origin).await;
    let admin = spawn_admin(&proxy).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(admin.json("/health").await["config"]["actions_enabled"], true);
    let order = r#"{"paths":["/blog/a"]}"#;

    let missing = post(&admin, "/revalidate", order, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{}", missing.text);
    let wrong = post(&admin, "/revalidate", order, &[("authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    let in_url = post(&admin, &format!("/revalidate?secret={TOKEN}"), order, &[]).await;
    assert_eq!(
        in_url.status,
        StatusCode::BAD_REQUEST,
        "the token is never taken from a URL: {}",
        in_url.text
    );
    let bearer = format!("Bearer {TOKEN}");
    let cross_site = post(
        &admin,
        "/revalidate",
        order,
        &[("authorization", &bearer), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN, "{}", cross_site.text);
    let other_origin = post(
        &admin,
        "/revalidate",
        order,
        &[("authorization", &bearer), ("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(other_origin.status, StatusCode::FORBIDDEN, "{}", other_origin.text);
    let get = admin.client.get("/revalidate").header("authorization", &bearer).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{}", get.text);
    assert_eq!(get.header("allow"), Some("POST"));
    for path in [
        "/",
        "/stats",
        "/cache",
        "/cache/entry?path=/blog/a",
        "/history",
        "/regenerations",
    ] {
        admin.client.get(path).header("authorization", &bearer).await;
    }
    assert_eq!(
        origin.renders("/blog/a"),
        1,
        "no refused call and no GET regenerated the page"
    );

    let host = format!("{}", admin.addr);
    let same_origin = format!("http://{host}");
    let done = post(
        &admin,
        "/revalidate",
        order,
        &[
            ("authorization", &bearer),
            ("sec-fetch-site", "same-origin"),
            ("origin", &same_origin),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains(r#""/blog/a":"regenerated""#), "{}", done.text);
    assert_eq!(origin.renders("/blog/a"), 2, "the page was regenerated once");
    assert_eq!(proxy.client.get("/blog/a").await.text, "<p>/blog/a render 2</p>");

    let purged = post(
        &admin,
        "/revalidate",
        r#"{"paths":["/blog/a"],"purge":true}"#,
        &[("authorization", &bearer)],
    )
    .await;
    assert!(purged.text.contains(r#""/blog/a":"purged""#), "{}", purged.text);
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
}
