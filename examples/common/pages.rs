//! Pages made without an origin, for the examples that fill the memory tier or the disk tier directly.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use isr_proxy::cache::{CacheKey, Entry, Lifetime};

/// A `text/html` page at `path` with `body`, generated now and fresh for an hour: stored as a time-based route's
/// origin response would be.
pub(crate) fn fresh_page(path: &str, body: Bytes) -> (CacheKey, Entry) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    let lifetime = Lifetime {
        revalidate: Some(Duration::from_secs(3600)),
        expire: Duration::from_secs(86_400),
    };
    let entry = Entry::from_origin(
        StatusCode::OK,
        headers,
        body,
        SystemTime::now(),
        lifetime,
        &HeaderName::from_static("x-isr-tags"),
    );
    (CacheKey::new(path, None, Vec::new()), entry)
}
