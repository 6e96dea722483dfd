//! Building client responses: from a cached [`Entry`], from an uncached origin response, and from an error.
//!
//! Owns every header isr-proxy adds (`x-isr-cache`, RFC 9211 `Cache-Status`, `Age`), conditional requests
//! (`If-None-Match` → 304), the choice of a stored content coding (`Accept-Encoding` → `Content-Encoding`, one
//! ETag per coding), and the one mapping from errors to status codes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::cache::Entry;
use crate::cache::entry::{NEXT_TAGS_HEADER, Representation};
pub use crate::cache_status::{CACHE_STATUS, CacheStatus, X_ISR_CACHE};
use crate::cacheability::{BypassReason, ISR_REVALIDATE_HEADER};
use crate::compression::AcceptEncoding;
use crate::http_cache::ByteRange;
use crate::http_cache::ClientConditional;
use crate::http_cache::conditional::if_none_match_matches;
use crate::origin::{OriginError, OriginPage, Oversized, strip_hop_by_hop};
use crate::route::PathError;

/// What the response depends on from the request.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `If-None-Match`, if sent.
    pub if_none_match: Option<HeaderValue>,
    /// `Accept-Encoding`, parsed: which stored form of a page to send.
    pub accept_encoding: AcceptEncoding,
    /// On `revalidate = "origin"` routes: the rest of what an HTTP cache answers from (see
    /// [`RequestFacts::from_headers_http`]).
    pub http: Option<HttpRequestFacts>,
}

/// What a response from a `revalidate = "origin"` route depends on beyond [`RequestFacts`].
#[derive(Debug, Clone, Default)]
pub struct HttpRequestFacts {
    /// `If-None-Match` (weak comparison, precedence) and `If-Modified-Since`.
    pub conditional: ClientConditional,
    /// `Range`, unless an `If-Range` came with it (then the whole response is sent).
    pub range: Option<HeaderValue>,
}

impl RequestFacts {
    /// Reads the facts from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            accept_encoding: AcceptEncoding::from_headers(headers),
            http: None,
        }
    }

    /// The facts a `revalidate = "origin"` route answers from: conditional headers evaluated as RFC 9110 §13.2.2
    /// says, and byte ranges.
    pub fn from_headers_http(headers: &HeaderMap) -> Self {
        let range = (!headers.contains_key(header::IF_RANGE))
            .then(|| headers.get(header::RANGE).cloned())
            .flatten();
        Self {
            http: Some(HttpRequestFacts {
                conditional: ClientConditional::from_headers(headers),
                range,
            }),
            ..Self::from_headers(headers)
        }
    }
}

/// A response from a cached entry, in the stored form the request accepts best (precompressed: no encoding
/// work here). `If-None-Match` is compared with that form's ETag. HEAD needs nothing special: hyper sends the
/// headers (with `Content-Length` from the body) and drops the body.
///
/// On `revalidate = "origin"` routes ([`RequestFacts::http`]), `If-Modified-Since` is honoured too, and a single
/// byte range of a stored `200` is answered with `206 Partial Content` from the identity body.
pub fn entry_response(entry: &Entry, status: CacheStatus, age: Duration, request: &RequestFacts) -> Response<Body> {
    let Some(mut chosen) = entry.representation(&request.accept_encoding) else {
        return not_acceptable(entry, status);
    };
    let not_modified = match &request.http {
        Some(http) => http
            .conditional
            .is_not_modified(entry.status, chosen.etag, &entry.headers),
        None => request
            .if_none_match
            .as_ref()
            .is_some_and(|inm| if_none_match_matches(inm, chosen.etag)),
    };
    let range = request
        .http
        .as_ref()
        .and_then(|http| http.range.as_ref())
        .filter(|_| !not_modified && entry.status == StatusCode::OK)
        .and_then(|range| ByteRange::parse(range.as_bytes(), entry.body.len()));
    if range.is_some() {
        // Ranges are served from the body as stored, never from a compressed form.
        chosen = Representation {
            body: &entry.body,
            etag: entry.etag.as_ref(),
            content_encoding: None,
        };
    }
    let (code, body) = match &range {
        _ if not_modified => (StatusCode::NOT_MODIFIED, Body::empty()),
        Some(range) => (
            StatusCode::PARTIAL_CONTENT,
            Body::full(chosen.body.slice(range.bytes.clone())),
        ),
        None => (entry.status, Body::full(chosen.body.clone())),
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    // One clone of the stored map (no per-header hashing), then the few per-response headers.
    *response.headers_mut() = entry.headers.clone();
    let headers = response.headers_mut();
    if let Some(coding) = chosen.content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
        match chosen.etag {
            Some(etag) => headers.insert(header::ETAG, etag.clone()),
            None => headers.remove(header::ETAG),
        };
    }
    if let Some(range) = &range
        && let Ok(value) = HeaderValue::try_from(range.content_range())
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    headers.insert(header::AGE, age_value(age));
    headers.insert(X_ISR_CACHE, status.header());
    headers.insert(CACHE_STATUS, status.cache_status());
    if status == CacheStatus::Fallback {
        // A placeholder must never be kept by a browser or CDN in place of the real page.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        headers.remove(header::ETAG);
    }
    response
}

/// Ages below this are served from a table built once, so a hit allocates nothing for its `Age` header.
const TABULATED_AGES: u64 = 4096;

/// The `Age` header value for `age` (whole seconds).
fn age_value(age: Duration) -> HeaderValue {
    static TABLE: std::sync::OnceLock<Box<[HeaderValue]>> = std::sync::OnceLock::new();
    let seconds = age.as_secs();
    match usize::try_from(seconds).ok().filter(|_| seconds < TABULATED_AGES) {
        Some(index) => {
            let table = TABLE.get_or_init(age_table);
            table.get(index).cloned().unwrap_or_else(|| HeaderValue::from(seconds))
        }
        None => HeaderValue::from(seconds),
    }
}

/// `Age` values 0 to [`TABULATED_AGES`] − 1 over one leaked string (built once per process), so that cloning
/// one copies a pointer: no reference count that every core's hits would contend on.
fn age_table() -> Box<[HeaderValue]> {
    let mut digits = String::new();
    let mut bounds = Vec::with_capacity(TABULATED_AGES as usize);
    for age in 0..TABULATED_AGES {
        let start = digits.len();
        digits.push_str(&age.to_string());
        bounds.push(start..digits.len());
    }
    let digits: &'static str = Box::leak(digits.into_boxed_str());
    bounds
        .into_iter()
        .map(|range| HeaderValue::from_static(&digits[range]))
        .collect()
}

/// `406 Not Acceptable`: the page is stored only as the origin encoded it, and the request refuses that coding
/// (see [`crate::cache::entry::BodyCoding`]). Carries the entry's `Vary`, so a downstream cache keeps it apart.
fn not_acceptable(entry: &Entry, status: CacheStatus) -> Response<Body> {
    let mut response = plain(
        StatusCode::NOT_ACCEPTABLE,
        "not acceptable: the origin sent this page in a content coding your accept-encoding refuses",
    );
    let headers = response.headers_mut();
    if let Some(vary) = entry.headers.get(header::VARY) {
        headers.insert(header::VARY, vary.clone());
    }
    headers.insert(X_ISR_CACHE, status.header());
    headers.insert(CACHE_STATUS, status.cache_status());
    response
}

/// A buffered origin response that was not stored, for the one client that asked for it.
pub fn passed_response(page: OriginPage, reason: BypassReason, tags_header: &HeaderName) -> Response<Body> {
    let mut response = Response::new(Body::full(page.body));
    *response.status_mut() = page.status;
    *response.headers_mut() = page.headers;
    finish_uncached(response.headers_mut(), tags_header, Some(reason));
    response
}

/// An oversized origin response, streamed on after the part already read.
pub fn oversized_response(oversized: Oversized, tags_header: &HeaderName) -> Response<Body> {
    let Oversized {
        mut parts,
        received,
        rest,
    } = oversized;
    finish_uncached(&mut parts.headers, tags_header, Some(BypassReason::TooLarge));
    Response::from_parts(parts, Body::stream(received, rest))
}

/// A pass-through response (uncached route or method), streamed.
pub fn forwarded_response(response: Response<Incoming>, tags_header: &HeaderName) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    finish_uncached(&mut parts.headers, tags_header, None);
    Response::from_parts(parts, Body::stream(Vec::new(), body))
}

fn finish_uncached(headers: &mut HeaderMap, tags_header: &HeaderName, reason: Option<BypassReason>) {
    strip_hop_by_hop(headers);
    headers.remove(tags_header);
    headers.remove(NEXT_TAGS_HEADER);
    headers.remove(ISR_REVALIDATE_HEADER);
    headers.insert(X_ISR_CACHE, CacheStatus::Bypass.header());
    let cache_status = match reason {
        Some(reason) => format!("isr-proxy; fwd=miss; detail={}", reason.as_str()),
        None => "isr-proxy; fwd=bypass".to_owned(),
    };
    if let Ok(value) = HeaderValue::try_from(cache_status) {
        headers.insert(CACHE_STATUS, value);
    }
}

/// Every way a request can fail, classified by fault.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The origin failed (502, or 504 on timeout).
    #[error(transparent)]
    Origin(Arc<OriginError>),
    /// A shared fetch vanished without an outcome (our bug or shutdown).
    #[error("regeneration ended without a result")]
    GaveUp,
    /// The request path cannot be cached or forwarded safely.
    #[error(transparent)]
    BadPath(PathError),
    /// `Cache-Control: only-if-cached` and nothing suitable is stored (RFC 9111 §5.2.1.7).
    #[error("not cached (only-if-cached)")]
    OnlyIfCached,
}

impl ProxyError {
    /// The one place errors become status codes.
    pub fn into_response(self) -> Response<Body> {
        let status = match &self {
            Self::Origin(err) if err.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            // Every origin slot stayed taken for `origin.queue_timeout`: isr-proxy shed the request itself.
            Self::Origin(err) if err.is_busy() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Origin(_) => StatusCode::BAD_GATEWAY,
            Self::OnlyIfCached => StatusCode::GATEWAY_TIMEOUT,
            Self::GaveUp => {
                tracing::error!("single-flight ended without an outcome");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::BadPath(PathError::TooLong) => StatusCode::URI_TOO_LONG,
            Self::BadPath(
                PathError::NotAbsolute | PathError::EscapesRoot | PathError::BadEscape | PathError::InvalidUtf8,
            ) => StatusCode::BAD_REQUEST,
        };
        let mut response = plain(status, &self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A short `text/plain` response.
pub fn plain(status: StatusCode, reason: &str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(format!("{reason}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The response body: a whole buffer (cache hits, zero-copy) or an origin stream (pass-through, oversized).
#[derive(Debug)]
pub struct Body {
    kind: BodyKind,
}

#[derive(Debug)]
enum BodyKind {
    Full(Option<Bytes>),
    Stream { received: VecDeque<Bytes>, rest: Incoming },
}

impl Body {
    /// A body of one buffer.
    pub fn full(bytes: Bytes) -> Self {
        Self {
            kind: BodyKind::Full(Some(bytes).filter(|b| !b.is_empty())),
        }
    }

    /// No body.
    pub fn empty() -> Self {
        Self {
            kind: BodyKind::Full(None),
        }
    }

    /// Chunks already read, then the rest of an origin body.
    pub fn stream(received: Vec<Bytes>, rest: Incoming) -> Self {
        Self {
            kind: BodyKind::Stream {
                received: received.into(),
                rest,
            },
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Stream { received, rest } => match received.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full(bytes) => bytes.is_none(),
            BodyKind::Stream { received, rest } => received.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            BodyKind::Stream { received, rest } => {
                let already: u64 = received.iter().map(|b| b.len() as u64).sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + already);
                }
                hint.set_lower(rest.lower() + already);
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_comparison() {
        let ours = HeaderValue::from_static("\"abc\"");
        for (inm, want) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ] {
            assert_eq!(
                if_none_match_matches(&HeaderValue::from_static(inm), Some(&ours)),
                want,
                "{inm}"
            );
        }
    }
}
