use super::*;

const MINUTE: Duration = Duration::from_secs(60);

fn entry(revalidate: Option<Duration>) -> Entry {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    headers.insert("x-isr-tags", HeaderValue::from_static("post-1, blog"));
    headers.insert("x-next-cache-tags", HeaderValue::from_static("blog,_N_T_/layout"));
    headers.insert("set-cookie", HeaderValue::from_static("a=b"));
    headers.insert("connection", HeaderValue::from_static("x-private-hop"));
    headers.insert("x-private-hop", HeaderValue::from_static("1"));
    Entry::from_origin(
        StatusCode::OK,
        headers,
        Bytes::from_static(b"<p>hi</p>"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        Lifetime {
            revalidate,
            expire: 10 * MINUTE,
        },
        &HeaderName::from_static("x-isr-tags"),
    )
}

#[test]
fn freshness_follows_generated_at_revalidate_and_expire() {
    let e = entry(Some(MINUTE));
    let at = |secs| e.generated_at + Duration::from_secs(secs);
    assert_eq!(e.freshness(at(0)), Freshness::Fresh);
    assert_eq!(e.freshness(at(60)), Freshness::Fresh);
    assert_eq!(e.freshness(at(61)), Freshness::Stale);
    assert_eq!(e.freshness(at(660)), Freshness::Stale);
    assert_eq!(e.freshness(at(661)), Freshness::Expired);
    assert_eq!(
        e.freshness(e.generated_at - MINUTE),
        Freshness::Fresh,
        "clock skew is not staleness"
    );
}

#[test]
fn on_demand_pages_stay_fresh_until_marked() {
    let e = entry(None);
    let later = e.generated_at + Duration::from_secs(10 * 365 * 24 * 3600);
    assert_eq!(e.freshness(later), Freshness::Fresh);
    e.mark_stale();
    assert_eq!(e.freshness(e.generated_at + MINUTE), Freshness::Stale);
}

#[test]
fn marked_stale_entries_are_stale_at_once() {
    let e = entry(Some(MINUTE));
    e.mark_stale();
    assert_eq!(e.freshness(e.generated_at), Freshness::Stale);
}

#[test]
fn origin_headers_are_filtered_and_tags_read() {
    let e = entry(Some(MINUTE));
    assert_eq!(&*e.tags, ["post-1", "blog", "_N_T_/layout"]);
    for gone in [
        "x-isr-tags",
        "x-next-cache-tags",
        "set-cookie",
        "connection",
        "x-private-hop",
    ] {
        assert!(!e.headers.contains_key(gone), "{gone} must not be stored");
    }
    assert_eq!(e.headers["cache-control"], "s-maxage=60, stale-while-revalidate=600");
    assert_eq!(Some(&e.headers["etag"]), e.etag.as_ref());
    assert!(e.has_tag("blog") && !e.has_tag("post-2"));
    assert_eq!(
        entry(None).headers["cache-control"],
        "s-maxage=31536000, stale-while-revalidate=600"
    );
}
