//! The route's query policy decides which parameters make a separate page; the key alone decides what the origin
//! is asked for. RSC requests are a separate variant of the page.

mod common;

use common::{TestOrigin, spawn_proxy};

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/ignore"
revalidate = 60

[[route]]
path = "/keep"
revalidate = 60
query = "keep"

[[route]]
path = "/allow"
revalidate = 60
query = ["page"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignored_query_shares_one_entry_and_is_not_forwarded() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/ignore?a=1").await;
    assert_eq!(
        (first.cache(), first.text.as_str()),
        ("MISS", "<p>/ignore render 1</p>")
    );
    assert_eq!(
        origin.last_request("/ignore").uri,
        "/ignore",
        "an ignored query never reaches the origin"
    );
    for path in ["/ignore?a=2", "/ignore", "/ignore?utm_source=x&a=1"] {
        let r = proxy.client.get(path).await;
        assert_eq!(
            (r.cache(), r.text.as_str()),
            ("HIT", "<p>/ignore render 1</p>"),
            "{path}"
        );
    }
    assert_eq!(origin.renders("/ignore"), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_query_makes_sorted_entries_and_is_forwarded_sorted() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/keep?b=2&a=1").await;
    assert_eq!((first.cache(), first.text.as_str()), ("MISS", "<p>/keep render 1</p>"));
    assert_eq!(
        origin.last_request("/keep").uri,
        "/keep?a=1&b=2",
        "the origin gets the sorted query"
    );
    let same = proxy.client.get("/keep?a=1&b=2").await;
    assert_eq!(
        (same.cache(), same.text.as_str()),
        ("HIT", "<p>/keep render 1</p>"),
        "order does not split"
    );

    let other = proxy.client.get("/keep?a=2").await;
    assert_eq!((other.cache(), other.text.as_str()), ("MISS", "<p>/keep render 2</p>"));
    assert_eq!(origin.last_request("/keep").uri, "/keep?a=2");
    let bare = proxy.client.get("/keep").await;
    assert_eq!((bare.cache(), bare.text.as_str()), ("MISS", "<p>/keep render 3</p>"));
    assert_eq!(origin.renders("/keep"), 3);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_list_keeps_and_forwards_only_listed_parameters() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let first = proxy.client.get("/allow?page=2&utm=x").await;
    assert_eq!((first.cache(), first.text.as_str()), ("MISS", "<p>/allow render 1</p>"));
    assert_eq!(origin.last_request("/allow").uri, "/allow?page=2");
    let same = proxy.client.get("/allow?utm=y&page=2").await;
    assert_eq!((same.cache(), same.text.as_str()), ("HIT", "<p>/allow render 1</p>"));

    let page3 = proxy.client.get("/allow?page=3&utm=x").await;
    assert_eq!((page3.cache(), page3.text.as_str()), ("MISS", "<p>/allow render 2</p>"));
    assert_eq!(origin.last_request("/allow").uri, "/allow?page=3");
    let none = proxy.client.get("/allow?utm=x").await;
    assert_eq!((none.cache(), none.text.as_str()), ("MISS", "<p>/allow render 3</p>"));
    assert_eq!(origin.last_request("/allow").uri, "/allow");
    assert_eq!(origin.renders("/allow"), 3);
    proxy.shutdown().await;
}

/// Next.js answers `RSC: 1` with a React Server Components payload; serving it for an HTML request (or the other
/// way round) breaks the page, so the two must be separate entries, and the origin must see the RSC request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rsc_request_is_a_separate_entry_and_reaches_the_origin_as_rsc() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let html = proxy.client.get("/ignore").await;
    assert_eq!((html.cache(), html.text.as_str()), ("MISS", "<p>/ignore render 1</p>"));
    assert_eq!(origin.last_request("/ignore").headers.get("rsc"), None);

    let rsc = proxy.client.get("/ignore?_rsc=abc&utm=x").header("RSC", "1").await;
    assert_eq!((rsc.cache(), rsc.text.as_str()), ("MISS", "<p>/ignore render 2</p>"));
    let seen = origin.last_request("/ignore");
    assert_eq!(
        seen.uri, "/ignore?_rsc=abc",
        "_rsc is always kept, even when the query is ignored"
    );
    assert_eq!(seen.headers.get("rsc").map(|v| v.as_bytes()), Some(&b"1"[..]));

    let rsc_again = proxy.client.get("/ignore?_rsc=abc").header("rsc", "1").await;
    assert_eq!(
        (rsc_again.cache(), rsc_again.text.as_str()),
        ("HIT", "<p>/ignore render 2</p>")
    );
    let html_again = proxy.client.get("/ignore").await;
    assert_eq!(
        (html_again.cache(), html_again.text.as_str()),
        ("HIT", "<p>/ignore render 1</p>")
    );
    assert_eq!(origin.renders("/ignore"), 2);
    proxy.shutdown().await;
}
