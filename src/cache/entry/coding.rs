//! The content codings of a stored body: how the origin sent it ([`BodyCoding`]), the compressed forms stored
//! beside an identity body ([`Encodings`]), and the form one response sends ([`Representation`]).

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use crate::compression::Coding;

/// How an entry's `body` is coded. isr-proxy asks the origin for identity, but an origin can send an encoded
/// body anyway; it is then stored as sent, with its `Content-Encoding`, and never decoded or re-encoded.
///
/// On a time-based route, an origin-encoded entry has no identity form, so a client whose `Accept-Encoding`
/// refuses the coding gets `406 Not Acceptable` (RFC 9110 §12.5.3, §15.5.7) instead of bytes it cannot decode.
/// Fetching the page from the origin for that client would not help: the origin already ignored
/// `Accept-Encoding: identity`. On a `revalidate = "origin"` route the response goes as stored, as any HTTP cache
/// sends it: content negotiation is the origin's, through `Vary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCoding {
    /// Not encoded (the normal case); compressed forms may sit beside it in [`super::Entry::encoded`].
    Identity,
    /// Encoded by the origin in a coding isr-proxy knows; served to clients accepting it.
    Origin(Coding),
    /// Encoded by the origin in a coding isr-proxy does not know (deflate, zstd, several codings); served only
    /// to clients that send no `Accept-Encoding` (which RFC 9110 §12.5.3 reads as accepting any coding).
    OriginUnknown,
}

impl BodyCoding {
    /// The coding stated by stored headers' `Content-Encoding`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut codings = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            // A value that is not visible ASCII names no coding isr-proxy knows.
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        match (codings.next(), codings.next()) {
            (None, _) => Self::Identity,
            (Some(one), None) => Coding::from_token(one).map_or(Self::OriginUnknown, Self::Origin),
            (Some(_), Some(_)) => Self::OriginUnknown,
        }
    }
}

/// The body in one content coding, with its own validator (RFC 9110 §8.8.3: representations that differ in
/// coding must not share an ETag).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The encoded bytes, shared without copying.
    pub body: Bytes,
    /// The identity ETag with the coding as a suffix inside the quotes: `"<hash>-br"`; `None` when the identity
    /// form has no ETag (an origin that sent none).
    pub etag: Option<HeaderValue>,
}

/// The compressed forms stored beside an identity body; each is present only if smaller than the body.
#[derive(Debug, Clone, Default)]
pub struct Encodings {
    /// gzip.
    pub gzip: Option<Encoded>,
    /// Brotli.
    pub br: Option<Encoded>,
}

impl Encodings {
    /// Whether any compressed form is stored.
    pub fn is_empty(&self) -> bool {
        self.gzip.is_none() && self.br.is_none()
    }

    /// The same bodies with ETags derived from a new identity ETag (after a `304` changed it).
    pub(super) fn with_etag(&self, etag: Option<&HeaderValue>) -> Self {
        let retag = |encoded: &Option<Encoded>, coding: Coding| {
            encoded.as_ref().map(|e| Encoded {
                body: e.body.clone(),
                etag: etag.map(|etag| etag_with_suffix(etag, coding.as_str())),
            })
        };
        Self {
            gzip: retag(&self.gzip, Coding::Gzip),
            br: retag(&self.br, Coding::Br),
        }
    }
}

/// What one response sends: a stored body, its ETag, and the `Content-Encoding` to add (none when the body is
/// identity, or when the origin's own `Content-Encoding` is already among the stored headers).
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    /// The body to send.
    pub body: &'a Bytes,
    /// Its validator, for `ETag` and `If-None-Match`; `None` when the origin sent none.
    pub etag: Option<&'a HeaderValue>,
    /// `Content-Encoding` to set.
    pub content_encoding: Option<Coding>,
}

/// `"<hash>"` → `"<hash>-<suffix>"` (and `W/"x"` → `W/"x-<suffix>"`).
pub(super) fn etag_with_suffix(etag: &HeaderValue, suffix: &str) -> HeaderValue {
    let quoted = etag.as_bytes();
    let inner = quoted.strip_suffix(b"\"").unwrap_or(quoted);
    let mut value = Vec::with_capacity(quoted.len() + suffix.len() + 2);
    value.extend_from_slice(inner);
    value.push(b'-');
    value.extend_from_slice(suffix.as_bytes());
    value.push(b'"');
    HeaderValue::from_bytes(&value).unwrap_or_else(|_| etag.clone())
}

/// Adds `Accept-Encoding` to `Vary` unless listed already (or `*`), folding the origin's `Vary` lines into one.
pub(super) fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let listed: Vec<&str> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if listed
        .iter()
        .any(|name| *name == "*" || name.eq_ignore_ascii_case("accept-encoding"))
    {
        return;
    }
    let mut merged = listed.join(", ");
    if !merged.is_empty() {
        merged.push_str(", ");
    }
    merged.push_str("Accept-Encoding");
    if let Ok(value) = HeaderValue::try_from(merged) {
        headers.insert(header::VARY, value);
    }
}
