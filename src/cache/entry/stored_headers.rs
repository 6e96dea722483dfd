//! Which origin response headers a stored entry keeps, and how a `304` updates them (RFC 9111 §3.1, §3.2).

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Response headers a time-based route's entry replaces with isr-proxy's own (besides
/// [`UNSTORED_HTTP_HEADERS`], which no entry stores).
pub(super) const REPLACED_ON_TIME_BASED: [HeaderName; 2] = [header::ETAG, header::CACHE_CONTROL];

/// Response headers never stored (RFC 9111 §3.1): hop-by-hop and proxy fields, those a cache recomputes per
/// response (`Age`, `Content-Length`), personal ones (`Set-Cookie`: such responses are not stored at all) and
/// isr-proxy's own control header. On a `revalidate = "origin"` route everything else is kept as the origin sent
/// it, `Cache-Control` and `ETag` included.
pub(super) const UNSTORED_HTTP_HEADERS: [HeaderName; 14] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::CONTENT_LENGTH,
    header::AGE,
    header::SET_COOKIE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("proxy-authentication-info"),
    HeaderName::from_static("x-isr-revalidate"),
];

/// Headers a `304` never changes in a stored response (§3.2): the framing of the stored body, and how it is
/// coded (the stored bytes do not change with it).
const KEPT_ON_304: [HeaderName; 2] = [header::CONTENT_LENGTH, header::CONTENT_ENCODING];

/// Gives every header value its own allocation (see [`super::Entry::from_origin`]).
pub(super) fn detach_values(headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
}

/// Removes the tag headers and returns the tags they listed (deduplicated, in order).
pub(super) fn take_tags(headers: &mut HeaderMap, names: &[&HeaderName]) -> Box<[String]> {
    let mut tags: Vec<String> = Vec::new();
    for name in names {
        for value in headers.get_all(*name) {
            let Ok(value) = value.to_str() else { continue };
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
        headers.remove(*name);
    }
    tags.into_boxed_slice()
}

/// Removes headers named in `Connection` (they are hop-by-hop for this connection only).
pub fn strip_connection_listed(headers: &mut HeaderMap) {
    let listed = connection_listed(headers);
    for name in listed {
        headers.remove(name);
    }
}

fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The stored headers updated by a `304 Not Modified` (RFC 9111 §3.2): every field the `304` carries replaces
/// the stored field of that name, except fields never stored, the ones its `Connection` names, and
/// [`KEPT_ON_304`]; tag headers are handled by the caller.
pub fn freshen_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(not_modified);
    let mut merged = stored.clone();
    for name in not_modified.keys() {
        let skipped = UNSTORED_HTTP_HEADERS.contains(name) || KEPT_ON_304.contains(name) || listed.contains(name);
        if skipped {
            continue;
        }
        merged.remove(name);
        for value in not_modified.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    detach_values(&mut merged);
    merged
}
