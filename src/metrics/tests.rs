//! Unit tests of recording and encoding.

use super::*;

#[test]
fn requests_are_counted_by_cache_status() {
    let metrics = Metrics::new();
    metrics.record_request(Some(&HeaderValue::from_static("HIT")), Duration::from_micros(300));
    metrics.record_request(Some(&HeaderValue::from_static("HIT")), Duration::from_millis(2));
    metrics.record_request(Some(&HeaderValue::from_static("MISS")), Duration::from_millis(40));
    metrics.record_request(None, Duration::from_millis(1));
    assert_eq!(metrics.requests(CacheStatus::Hit), 2);
    assert_eq!(metrics.requests(CacheStatus::Miss), 1);
    assert_eq!(metrics.requests(CacheStatus::Stale), 0);
    let text = metrics.encode(Snapshot::default()).expect("encodes");
    assert!(text.contains("isr_requests_total{cache=\"HIT\"} 2"), "{text}");
    assert!(text.contains("isr_requests_total{cache=\"NONE\"} 1"), "{text}");
    assert!(text.contains("isr_response_latency_seconds_count 4"), "{text}");
    assert!(
        text.contains("isr_response_latency_seconds_bucket{le=\"0.0005\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("isr_response_latency_seconds_bucket{le=\"+Inf\"} 4"),
        "{text}"
    );
}

#[test]
fn every_cache_status_has_a_counter() {
    for status in [
        CacheStatus::Hit,
        CacheStatus::Stale,
        CacheStatus::Miss,
        CacheStatus::Bypass,
        CacheStatus::Fallback,
        CacheStatus::Revalidated,
    ] {
        assert!(REQUEST_LABELS.contains(&status.as_str()), "{status:?}");
    }
}

#[test]
fn origin_reachability_follows_the_last_fetch() {
    let metrics = Metrics::new();
    assert_eq!(metrics.origin_reachable(), None);
    metrics.record_origin_fetch(OriginOutcome::ServerError, Duration::from_millis(5));
    assert_eq!(metrics.origin_reachable(), Some(true), "a 5xx is an answer");
    metrics.record_origin_fetch(OriginOutcome::Connect, Duration::from_millis(5));
    assert_eq!(metrics.origin_reachable(), Some(false));
    let text = metrics.encode(Snapshot::default()).expect("encodes");
    assert!(
        text.contains("isr_origin_fetches_total{outcome=\"connect_error\"} 1"),
        "{text}"
    );
}

#[test]
fn bypass_reasons_cover_every_uncacheable_response_and_pass_through() {
    use crate::cacheability::BypassReason;
    for reason in [
        BypassReason::SetCookie,
        BypassReason::Private,
        BypassReason::NoStore,
        BypassReason::NoCache,
        BypassReason::MaxAgeZero,
        BypassReason::VaryStar,
        BypassReason::VaryUnkeyed,
        BypassReason::Status(http::StatusCode::CREATED),
        BypassReason::TooLarge,
        BypassReason::NoFreshness,
    ] {
        assert!(BYPASS_REASONS.contains(&reason.as_str()), "{reason:?}");
    }
    for pass in [
        PassThrough::NoRoute,
        PassThrough::RouteNotCached,
        PassThrough::Method,
        PassThrough::Authorization,
    ] {
        assert!(BYPASS_REASONS.contains(&pass.as_str()), "{pass:?}");
    }
    let metrics = Metrics::new();
    metrics.record_bypass("set-cookie");
    metrics.record_bypass("a-reason-added-later");
    assert_eq!(metrics.bypasses("set-cookie"), 1);
    assert_eq!(metrics.bypasses("other"), 1, "unknown reasons are counted, as other");
}

#[test]
fn render_time_is_kept_per_route_and_regenerations_by_result() {
    let metrics = Metrics::with_routes(["/blog/:slug", "/"]);
    metrics.record_render("/blog/:slug", Duration::from_millis(30));
    metrics.record_render("[origin].not_found_page", Duration::from_millis(3));
    metrics.record_regeneration("stored");
    metrics.record_regeneration("failed");
    metrics.record_regeneration("failed");
    let text = metrics.encode(Snapshot::default()).expect("encodes");
    for line in [
        "isr_origin_render_seconds_count{route=\"/blog/:slug\"} 1",
        "isr_origin_render_seconds_count{route=\"/\"} 0",
        "isr_origin_render_seconds_count{route=\"other\"} 1",
        "isr_origin_render_seconds_bucket{le=\"0.05\",route=\"/blog/:slug\"} 1",
        "isr_regenerations_total{result=\"stored\"} 1",
        "isr_regenerations_total{result=\"failed\"} 2",
        "isr_client_connections 0",
        "isr_cache_max_bytes 0",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    let open = metrics.connection_opened();
    assert_eq!(metrics.client_connections(), 1);
    drop(open);
    assert_eq!(metrics.client_connections(), 0);
}
