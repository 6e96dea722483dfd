//! The admin endpoints' query strings, read strictly: an unknown or repeated parameter, or a bad value, is a
//! 400 that names it, so a typo (`?prefx=/blog/`) never silently lists everything.

use http::header::{HeaderName, HeaderValue};

use super::AdminError;
use super::api::PageState;
use crate::cache::key::VARIANT_HEADERS;
use crate::cache::{CacheKey, Freshness, ListQuery};
use crate::route::normalize_path;

/// Pages per listing page unless `limit` says otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest `limit`: a page stays a few hundred KiB of JSON at most.
pub const MAX_LIST_LIMIT: usize = 1000;

/// `GET /cache/entry`'s page: a path (with the query it was requested with) and variant headers, keyed by the
/// caller as a request would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRequest {
    /// The normalised path.
    pub path: String,
    /// The query as given (the route's policy decides what of it is kept).
    pub query: Option<String>,
    /// Variant headers (`variant=rsc:1`).
    pub variant: Vec<(HeaderName, HeaderValue)>,
}

/// Reads `query`'s pairs, refusing names not in `allowed` and names given twice unless `repeatable`.
fn pairs(query: Option<&str>, allowed: &[&str], repeatable: &[&str]) -> Result<Vec<(String, String)>, AdminError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            let expected = if allowed.is_empty() {
                "this endpoint takes none".to_owned()
            } else {
                format!("expected {}", allowed.join(", "))
            };
            return Err(AdminError::BadRequest(format!(
                "unknown parameter {name:?}; {expected}"
            )));
        }
        if !repeatable.contains(&name.as_ref()) && seen.iter().any(|(n, _)| *n == name) {
            return Err(AdminError::BadRequest(format!("parameter {name:?} given twice")));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

/// An endpoint without parameters.
pub fn no_params(query: Option<&str>) -> Result<(), AdminError> {
    pairs(query, &[], &[]).map(drop)
}

/// `GET /history`: `after`, a sample number (only newer samples are sent).
pub fn history_after(query: Option<&str>) -> Result<Option<u64>, AdminError> {
    let Some((_, value)) = pairs(query, &["after"], &[])?.pop() else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| AdminError::BadRequest(format!("after must be a sample number (seq), not {value:?}")))
}

/// `GET /cache`: `prefix`, `tag`, `state`, `limit`, `cursor`.
pub fn list_query(query: Option<&str>) -> Result<ListQuery, AdminError> {
    let bad = |reason: String| Err(AdminError::BadRequest(reason));
    let mut list = ListQuery {
        prefix: None,
        tag: None,
        state: None,
        after: None,
        limit: DEFAULT_LIST_LIMIT,
    };
    for (name, value) in pairs(query, &["prefix", "tag", "state", "limit", "cursor"], &[])? {
        match name.as_str() {
            "prefix" if !value.starts_with('/') => return bad(format!("prefix {value:?} must start with '/'")),
            "prefix" => list.prefix = Some(value),
            "tag" if value.trim().is_empty() => return bad("tag must not be empty".to_owned()),
            "tag" => list.tag = Some(value),
            "state" => list.state = Some(state(&value)?),
            "limit" => match value.parse::<usize>() {
                Ok(limit @ 1..=MAX_LIST_LIMIT) => list.limit = limit,
                _ => return bad(format!("limit {value:?} must be a number from 1 to {MAX_LIST_LIMIT}")),
            },
            "cursor" => match CacheKey::from_cursor(&value) {
                Some(after) => list.after = Some(after),
                None => return bad("malformed cursor: pass next_cursor from the previous page as it is".to_owned()),
            },
            _ => {}
        }
    }
    Ok(list)
}

/// `state=`: one of [`PageState`]'s words.
fn state(value: &str) -> Result<Freshness, AdminError> {
    [
        (PageState::Fresh, Freshness::Fresh),
        (PageState::Stale, Freshness::Stale),
        (PageState::Expired, Freshness::Expired),
    ]
    .into_iter()
    .find(|(word, _)| word.as_str() == value)
    .map(|(_, state)| state)
    .ok_or_else(|| AdminError::BadRequest(format!("state {value:?} must be fresh, stale or expired")))
}

/// `GET /cache/entry`: `path` (required, may carry `?query`) and `variant=name:value` (repeatable).
pub fn entry_request(query: Option<&str>) -> Result<EntryRequest, AdminError> {
    let bad = |reason: String| Err(AdminError::BadRequest(reason));
    let mut path = None;
    let mut variant = Vec::new();
    for (name, value) in pairs(query, &["path", "variant"], &["variant"])? {
        if name == "path" {
            path = Some(value);
            continue;
        }
        let Some((header, header_value)) = value.split_once(':') else {
            return bad(format!("variant {value:?} must be name:value, e.g. rsc:1"));
        };
        let header = header.trim().to_ascii_lowercase();
        if !VARIANT_HEADERS.contains(&header.as_str()) {
            return bad(format!(
                "variant header {header:?} is not one of {}",
                VARIANT_HEADERS.join(", ")
            ));
        }
        match (HeaderName::try_from(header), HeaderValue::from_str(header_value.trim())) {
            (Ok(header), Ok(header_value)) => variant.push((header, header_value)),
            _ => return bad(format!("variant {value:?} is not a valid header")),
        }
    }
    let Some(path) = path else {
        return bad("missing parameter \"path\", e.g. ?path=/blog/hello".to_owned());
    };
    let (raw_path, query) = match path.split_once('?') {
        Some((raw, query)) => (raw, Some(query.to_owned())),
        None => (path.as_str(), None),
    };
    let normal = normalize_path(raw_path).map_err(|err| AdminError::BadRequest(format!("path {raw_path:?}: {err}")))?;
    // In VARIANT_HEADERS order, as a request's variant is read, so the key is the same.
    variant.sort_by_key(|(name, _)| VARIANT_HEADERS.iter().position(|known| name == *known));
    Ok(EntryRequest {
        path: normal.into_owned(),
        query,
        variant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<impl std::fmt::Debug, AdminError>) -> String {
        match result {
            Err(AdminError::BadRequest(reason)) => reason,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn listing_parameters_are_read_with_defaults() {
        let list = list_query(None).expect("no parameters");
        assert_eq!(list.limit, DEFAULT_LIST_LIMIT);
        let cursor = CacheKey::new("/blog/b", None, Vec::new()).to_cursor();
        let query = format!(
            "prefix=/blog/&tag=post-1&state=stale&limit=5&cursor={}",
            form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
        );
        let list = list_query(Some(&query)).expect("valid");
        assert_eq!(list.prefix.as_deref(), Some("/blog/"));
        assert_eq!(list.tag.as_deref(), Some("post-1"));
        assert_eq!(list.state, Some(Freshness::Stale));
        assert_eq!(list.limit, 5);
        assert_eq!(list.after.map(|k| k.to_string()).as_deref(), Some("/blog/b"));
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        let cases = [
            (
                "prefx=/blog/",
                "unknown parameter \"prefx\"; expected prefix, tag, state, limit, cursor",
            ),
            ("limit=0", "limit \"0\" must be a number from 1 to 1000"),
            ("limit=1001", "limit \"1001\" must be a number from 1 to 1000"),
            ("state=old", "state \"old\" must be fresh, stale or expired"),
            ("prefix=blog", "prefix \"blog\" must start with '/'"),
            ("tag=", "tag must not be empty"),
            ("tag=a&tag=b", "parameter \"tag\" given twice"),
            ("cursor=nope", "malformed cursor"),
        ];
        for (query, expected) in cases {
            let got = reason(list_query(Some(query)));
            assert!(got.starts_with(expected), "{query}: {got}");
        }
        assert_eq!(
            reason(no_params(Some("verbose=1"))),
            "unknown parameter \"verbose\"; this endpoint takes none"
        );
    }

    #[test]
    fn entry_requests_are_keyed_like_requests() {
        let request = entry_request(Some("path=/blog/%61?page=2&variant=next-url:/blog&variant=RSC:1")).expect("ok");
        assert_eq!(request.path, "/blog/a", "normalised");
        assert_eq!(request.query.as_deref(), Some("page=2"));
        let names: Vec<&str> = request.variant.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rsc", "next-url"], "in VARIANT_HEADERS order");
        for (query, expected) in [
            ("", "missing parameter \"path\""),
            ("path=/a&path=/b", "parameter \"path\" given twice"),
            ("path=/../x", "path \"/../x\": request path escapes the root"),
            ("path=/a&variant=cookie:x", "variant header \"cookie\" is not one of"),
            ("path=/a&variant=rsc", "variant \"rsc\" must be name:value"),
            ("path=/a&host=x", "unknown parameter \"host\""),
        ] {
            let got = reason(entry_request(Some(query)));
            assert!(got.starts_with(expected), "{query}: {got}");
        }
    }
}
