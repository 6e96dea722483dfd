//! Validation (RFC 9111 §4.3): the conditional request a cache sends the origin for a stale stored response,
//! and a client's own conditional request answered from the cache (RFC 9110 §13.1, §13.2.2).

use std::time::SystemTime;

use http::header::{DATE, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

/// A client's conditional headers.
#[derive(Debug, Clone, Default)]
pub struct ClientConditional {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl ClientConditional {
    /// Reads `If-None-Match` and `If-Modified-Since`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_none_match: headers.get(IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(IF_MODIFIED_SINCE).cloned(),
        }
    }

    /// Whether the client sent no condition.
    pub fn is_empty(&self) -> bool {
        self.if_none_match.is_none() && self.if_modified_since.is_none()
    }

    /// Whether the response the cache would send (`status`, its `etag`, its `headers`) is "not modified" for
    /// this client, so a `304` goes instead. Only a 2xx response is replaced (§13.2.1). `If-None-Match` takes
    /// precedence and compares weakly (§13.1.2); `If-Modified-Since` applies only without it, against
    /// `Last-Modified`, else `Date` (RFC 9111 §4.3.2).
    pub fn is_not_modified(&self, status: StatusCode, etag: Option<&HeaderValue>, headers: &HeaderMap) -> bool {
        if !status.is_success() {
            return false;
        }
        if let Some(list) = &self.if_none_match {
            return if_none_match_matches(list, etag);
        }
        let Some(since) = self.if_modified_since.as_ref().and_then(parse_date) else {
            return false;
        };
        let modified = headers
            .get(LAST_MODIFIED)
            .or_else(|| headers.get(DATE))
            .and_then(parse_date);
        modified.is_some_and(|modified| modified <= since)
    }
}

fn parse_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

/// `If-None-Match: *` or a list of entity tags, compared weakly with `etag` (`*` matches any stored response).
pub fn if_none_match_matches(list: &HeaderValue, etag: Option<&HeaderValue>) -> bool {
    let list = list.as_bytes();
    if list.trim_ascii() == b"*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    let ours = opaque_tag(etag.as_bytes());
    entity_tags(list).any(|candidate| opaque_tag(candidate) == ours)
}

/// The entity tags of a list, split at commas outside quotes.
fn entity_tags(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = list;
    std::iter::from_fn(move || {
        let trimmed = rest.trim_ascii_start();
        let trimmed = trimmed.strip_prefix(b",").unwrap_or(trimmed).trim_ascii_start();
        if trimmed.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = trimmed
            .iter()
            .position(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                b == b',' && !quoted
            })
            .unwrap_or(trimmed.len());
        rest = &trimmed[end..];
        Some(trimmed[..end].trim_ascii())
    })
}

/// An entity tag without its weakness indicator: weak comparison (RFC 9110 §8.8.3.2) compares these.
fn opaque_tag(tag: &[u8]) -> &[u8] {
    let tag = tag.trim_ascii();
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// The validators for a conditional request to the origin (§4.3.1): the entity tags of the stored responses
/// (deduplicated) in `If-None-Match`, and the selected stored response's `Last-Modified` in
/// `If-Modified-Since`.
pub fn origin_validators<'a>(
    etags: impl IntoIterator<Item = &'a HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut tags: Vec<&[u8]> = Vec::new();
    for etag in etags {
        if !tags.contains(&etag.as_bytes()) {
            tags.push(etag.as_bytes());
        }
    }
    let mut validators = Vec::with_capacity(2);
    if !tags.is_empty()
        && let Ok(value) = HeaderValue::from_bytes(&tags.join(&b", "[..]))
    {
        validators.push((IF_NONE_MATCH, value));
    }
    if let Some(last_modified) = last_modified {
        validators.push((IF_MODIFIED_SINCE, last_modified.clone()));
    }
    validators
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditional(pairs: &[(&'static str, &'static str)]) -> ClientConditional {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        ClientConditional::from_headers(&map)
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_precedence() {
        let ok = StatusCode::OK;
        let strong = HeaderValue::from_static("\"abc\"");
        let weak = HeaderValue::from_static("W/\"abc\"");
        let none = HeaderMap::new();
        let cases: &[(&str, Option<&HeaderValue>, bool)] = &[
            ("\"abc\"", Some(&strong), true),
            ("W/\"abc\"", Some(&strong), true),
            ("\"abc\"", Some(&weak), true),
            ("\"x\", \"abc\"", Some(&strong), true),
            ("\"x\",\"abc\",\"y\"", Some(&strong), true),
            ("\"a,b\", \"abc\"", Some(&strong), true),
            ("*", Some(&strong), true),
            ("*", None, true),
            ("\"abd\"", Some(&strong), false),
            ("\"abc\"", None, false),
        ];
        for (inm, etag, want) in cases {
            let c = conditional(&[("if-none-match", Box::leak(inm.to_string().into_boxed_str()))]);
            assert_eq!(c.is_not_modified(ok, *etag, &none), *want, "{inm} vs {etag:?}");
        }
        let mut stored = HeaderMap::new();
        stored.insert(LAST_MODIFIED, HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT"));
        let both = conditional(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Thu, 02 Jan 2020 00:00:00 GMT"),
        ]);
        assert!(!both.is_not_modified(ok, Some(&strong), &stored), "If-None-Match wins");
        let not_found = conditional(&[("if-none-match", "\"abc\"")]);
        assert!(!not_found.is_not_modified(StatusCode::NOT_FOUND, Some(&strong), &none));
    }

    #[test]
    fn if_modified_since_uses_last_modified_else_date() {
        let ok = StatusCode::OK;
        let mut stored = HeaderMap::new();
        stored.insert(LAST_MODIFIED, HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT"));
        let later = conditional(&[("if-modified-since", "Thu, 02 Jan 2020 00:00:00 GMT")]);
        let same = conditional(&[("if-modified-since", "Wed, 01 Jan 2020 00:00:00 GMT")]);
        let earlier = conditional(&[("if-modified-since", "Tue, 31 Dec 2019 00:00:00 GMT")]);
        let rfc850 = conditional(&[("if-modified-since", "Thursday, 02-Jan-20 00:00:00 GMT")]);
        assert!(later.is_not_modified(ok, None, &stored));
        assert!(same.is_not_modified(ok, None, &stored));
        assert!(!earlier.is_not_modified(ok, None, &stored));
        assert!(rfc850.is_not_modified(ok, None, &stored));
        let mut dated = HeaderMap::new();
        dated.insert(DATE, HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT"));
        assert!(later.is_not_modified(ok, None, &dated));
        assert!(!later.is_not_modified(ok, None, &HeaderMap::new()));
    }

    #[test]
    fn validators_for_the_origin() {
        let a = HeaderValue::from_static("\"a\"");
        let b = HeaderValue::from_static("W/\"b\"");
        let lm = HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT");
        let got = origin_validators([&a, &b, &a], Some(&lm));
        assert_eq!(got[0], (IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\"")));
        assert_eq!(got[1], (IF_MODIFIED_SINCE, lm));
        assert!(origin_validators([], None).is_empty());
    }
}
