//! On-demand revalidation: the authenticated `POST` endpoint (by path, by tag, by path prefix, purge) and the
//! per-request `x-prerender-revalidate` trigger.
//!
//! This is how a CMS webhook says "this content changed". Paths are keyed exactly as requests are
//! ([`RouteTable::cached_route`]) and regenerated through the same single-flight as requests ([`Regenerator`]),
//! so a revalidation racing a burst of stale requests still costs one origin fetch. Tags are found through the
//! cache's tag index, prefixes ([`PathPrefix`]) through its ordered key index, in time proportional to the
//! pages found. The endpoint is off unless a token is set.
//! With a shared tier (Redis) every change made here reaches every instance (see `cache`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cache::{Cache, PathPrefix, scoped_tag};
use crate::clock::Clock;
use crate::config::Token;
use crate::metrics::{Metrics, RevalidationKind};
use crate::regen::{RegenOutcome, Regenerator};
use crate::response::Body;
use crate::route::{RouteTable, normalize_host, normalize_path};

/// Largest request body the endpoint reads; a webhook payload is a list of paths and tags, never more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most paths, tags and prefixes in one call, so one request cannot queue unbounded origin work.
pub const MAX_ITEMS: usize = 1000;
/// The per-request trigger used by SvelteKit and Nuxt on Vercel.
pub const PRERENDER_REVALIDATE_HEADER: HeaderName = HeaderName::from_static("x-prerender-revalidate");

/// Why the endpoint refused a call. Each maps to one status in [`RevalidateError::status`].
#[derive(Debug, thiserror::Error)]
pub enum RevalidateError {
    /// No token configured: the endpoint does not exist.
    #[error("not found")]
    Disabled,
    /// Only POST is accepted.
    #[error("method not allowed; use POST")]
    Method,
    /// Missing or wrong token.
    #[error("invalid token")]
    Unauthorized,
    /// Body over [`MAX_BODY_BYTES`].
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The request is malformed; the text says how.
    #[error("{0}")]
    BadRequest(String),
}

impl RevalidateError {
    /// The status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Disabled => StatusCode::NOT_FOUND,
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &serde_json::json!({ "error": self.to_string() }));
        if matches!(self, Self::Method) {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// A revalidation request: the endpoint's JSON body (merged with its query form), and what
/// `isr-proxy revalidate` sends.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevalidateRequest {
    /// Paths to regenerate now (or purge).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags whose pages to mark stale (or purge).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Path prefixes whose pages to mark stale (or purge), by whole segments (see [`PathPrefix`]). Left out when
    /// empty, so that the CLI can still talk to a proxy that predates prefixes (it refuses unknown fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Remove instead of regenerating or marking stale.
    #[serde(default)]
    pub purge: bool,
    /// The site whose pages and tags are meant (host-specific routes); paths given as full URLs carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathResult {
    /// Done, one way or another.
    Done(PathDone),
    /// Not done; the text says why (the last good page is kept, unless it says otherwise).
    Error {
        /// Why.
        error: String,
    },
}

/// A path revalidated without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathDone {
    /// Rendered and stored now.
    #[serde(rename = "regenerated")]
    Regenerated,
    /// No cached route covers the path: nothing to do.
    #[serde(rename = "skipped")]
    Skipped,
    /// Removed.
    #[serde(rename = "purged")]
    Purged,
    /// Nothing to remove.
    #[serde(rename = "not cached")]
    NotCached,
}

/// The endpoint's answer (200 when every path succeeded, else 502).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevalidateReport {
    /// Every path succeeded.
    pub revalidated: bool,
    /// When (Unix milliseconds).
    pub now: u64,
    /// Per path, as given.
    pub paths: BTreeMap<String, PathResult>,
    /// Per tag: the pages found (marked stale, or purged).
    pub tags: BTreeMap<String, usize>,
    /// Per prefix, as given: the pages found (marked stale, or purged), variants included.
    #[serde(default)]
    pub prefixes: BTreeMap<String, usize>,
}

/// The endpoint and the trigger, with what they act on.
pub struct Revalidator {
    path: String,
    token: Option<Token>,
    routes: RouteTable,
    cache: Cache,
    regen: Regenerator,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl Revalidator {
    /// An endpoint served at `path`; disabled when `token` is `None`. Each path and tag acted on is counted in
    /// `metrics` by kind and result.
    pub fn new(
        path: String,
        token: Option<Token>,
        routes: RouteTable,
        cache: Cache,
        regen: Regenerator,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            path,
            token,
            routes,
            cache,
            regen,
            clock,
            metrics,
        }
    }

    /// Whether a token is set: without one, the endpoint (and the admin listener's actions) do not exist.
    pub fn is_enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `path` is the endpoint's path (requests to it never reach the origin).
    pub fn is_endpoint(&self, path: &str) -> bool {
        path == self.path
    }

    /// Whether a request carries `x-prerender-revalidate` with the right token. A wrong token is ignored.
    pub fn is_prerender_trigger(&self, headers: &HeaderMap) -> bool {
        match (&self.token, headers.get(&PRERENDER_REVALIDATE_HEADER)) {
            (Some(token), Some(given)) => token.matches(given.as_bytes()),
            _ => false,
        }
    }

    /// Serves one call to the endpoint.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match self.try_handle(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    async fn try_handle(&self, request: Request<Incoming>) -> Result<Response<Body>, RevalidateError> {
        let Some(token) = &self.token else {
            return Err(RevalidateError::Disabled);
        };
        if request.method() != Method::POST {
            return Err(RevalidateError::Method);
        }
        let mut order = RevalidateRequest::default();
        let mut secret = bearer(request.headers()).map(<[u8]>::to_vec);
        for (name, value) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
            match &*name {
                "secret" => secret = Some(value.as_bytes().to_vec()),
                "path" => order.paths.push(value.into_owned()),
                "tag" => order.tags.push(value.into_owned()),
                "prefix" => order.prefixes.push(value.into_owned()),
                "purge" => order.purge = matches!(&*value, "1" | "true"),
                "host" => order.host = Some(value.into_owned()),
                _ => {}
            }
        }
        if !secret.is_some_and(|s| token.matches(&s)) {
            return Err(RevalidateError::Unauthorized);
        }
        let body = read_body(request.into_body()).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let from_body: RevalidateRequest = serde_json::from_slice(&body)
                .map_err(|err| RevalidateError::BadRequest(format!("malformed JSON body: {err}")))?;
            order.paths.extend(from_body.paths);
            order.tags.extend(from_body.tags);
            order.prefixes.extend(from_body.prefixes);
            order.purge |= from_body.purge;
            order.host = from_body.host.or(order.host);
        }
        let prefixes = validate(&order)?;
        Ok(self.execute(order, prefixes).await)
    }

    async fn execute(&self, order: RevalidateRequest, prefixes: Vec<(String, PathPrefix)>) -> Response<Body> {
        let mut tasks = JoinSet::new();
        let mut paths = BTreeMap::new();
        // Validated: a host that does not normalise was refused with 400.
        let host = order.host.as_deref().and_then(normalize_host);
        for path in order.paths {
            let matched = self.routes.cached_page(host.as_deref(), &path);
            let kind = if order.purge {
                RevalidationKind::Purge
            } else {
                RevalidationKind::Path
            };
            let Some(matched) = matched else {
                self.metrics.record_revalidation(kind, "skipped");
                paths.insert(path, PathResult::Done(PathDone::Skipped));
                continue;
            };
            let (regen, cache, purge) = (self.regen.clone(), self.cache.clone(), order.purge);
            // The path's RSC payloads (client-side navigation) show the same content: they go stale or away
            // with it, and are regenerated by their next request.
            for (variant, entry) in self.cache.variants_of(&matched.key).await {
                if purge {
                    self.cache.remove(&variant).await;
                } else {
                    self.cache.mark_stale(&variant, &entry);
                }
            }
            let metrics = self.metrics.clone();
            tasks.spawn(async move {
                let (result, label) = if purge {
                    if cache.remove(&matched.key).await {
                        (PathResult::Done(PathDone::Purged), "purged")
                    } else {
                        (PathResult::Done(PathDone::NotCached), "not_cached")
                    }
                } else {
                    match regen.regenerate(matched.key.clone(), matched.rule.store_policy()).await {
                        RegenOutcome::Stored(_) => (PathResult::Done(PathDone::Regenerated), "regenerated"),
                        RegenOutcome::NotStored(reason) => {
                            // The origin's new answer may not be shared; the old page must not outlive it.
                            cache.remove(&matched.key).await;
                            let error = format!("origin response not cacheable ({reason}); page removed");
                            (PathResult::Error { error }, "not_cacheable")
                        }
                        RegenOutcome::Failed(err) => {
                            let error = format!("{err}; last good page kept");
                            (PathResult::Error { error }, "failed")
                        }
                        RegenOutcome::GaveUp => {
                            let error = "regeneration ended without a result; last good page kept".to_owned();
                            (PathResult::Error { error }, "failed")
                        }
                    }
                };
                metrics.record_revalidation(kind, label);
                (path, result)
            });
        }
        let mut tags = BTreeMap::new();
        for tag in order.tags {
            let pages = self
                .cache
                .invalidate_tag(&scoped_tag(host.as_deref(), &tag), order.purge)
                .await;
            if order.purge {
                self.metrics.record_revalidation(RevalidationKind::Purge, "purged");
            } else {
                self.metrics.record_revalidation(RevalidationKind::Tag, "marked_stale");
            }
            tracing::info!(tag = %tag, pages, purge = order.purge, "revalidated tag");
            tags.insert(tag, pages);
        }
        let mut prefix_pages = BTreeMap::new();
        for (given, prefix) in prefixes {
            let pages = self.cache.invalidate_prefix(&prefix, order.purge).await;
            if order.purge {
                self.metrics.record_revalidation(RevalidationKind::Purge, "purged");
            } else {
                self.metrics
                    .record_revalidation(RevalidationKind::Prefix, "marked_stale");
            }
            tracing::info!(prefix = %given, pages, purge = order.purge, "revalidated prefix");
            prefix_pages.insert(given, pages);
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((path, result)) => {
                    tracing::info!(path = %path, result = ?result, "revalidated path");
                    paths.insert(path, result);
                }
                Err(err) => tracing::error!(error = %err, "revalidation task failed"),
            }
        }
        let failed = paths.values().any(|r| matches!(r, PathResult::Error { .. }));
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let report = RevalidateReport {
            revalidated: !failed,
            now: u64::try_from(now).unwrap_or(u64::MAX),
            paths,
            tags,
            prefixes: prefix_pages,
        };
        let status = if failed {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        };
        json_response(status, &report)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii())
}

async fn read_body(body: Incoming) -> Result<Bytes, RevalidateError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(RevalidateError::TooLarge),
        Err(err) => Err(RevalidateError::BadRequest(format!("cannot read body: {err}"))),
    }
}

/// Checks a call; returns its prefixes, read (each with the text it was given as).
fn validate(order: &RevalidateRequest) -> Result<Vec<(String, PathPrefix)>, RevalidateError> {
    let bad = |reason: String| Err(RevalidateError::BadRequest(reason));
    if order.paths.is_empty() && order.tags.is_empty() && order.prefixes.is_empty() {
        return bad("give at least one path, tag or prefix".to_owned());
    }
    if order.paths.len() + order.tags.len() + order.prefixes.len() > MAX_ITEMS {
        return bad(format!("at most {MAX_ITEMS} paths, tags and prefixes per call"));
    }
    if let Some(path) = order
        .paths
        .iter()
        .find(|p| !p.starts_with('/') && !p.starts_with("http://") && !p.starts_with("https://"))
    {
        return bad(format!("path {path:?} must start with '/' (or be a full http(s) URL)"));
    }
    if let Some(host) = order.host.as_deref().filter(|h| normalize_host(h).is_none()) {
        return bad(format!("host {host:?} is not a host name"));
    }
    if order.tags.iter().any(|t| t.trim().is_empty()) {
        return bad("tags must not be empty".to_owned());
    }
    let host = order.host.as_deref().and_then(normalize_host);
    let mut prefixes = Vec::with_capacity(order.prefixes.len());
    for given in &order.prefixes {
        match read_prefix(host.as_deref(), given) {
            Ok(prefix) => prefixes.push((given.clone(), prefix)),
            Err(reason) => return bad(reason),
        }
    }
    Ok(prefixes)
}

/// A prefix as a call gives it: a path (`/blog`), on `host` if the call names one, or a full URL
/// (`https://shop.example.com/blog`), whose host then replaces it. Normalised as request paths are, so it meets
/// the keys they make; a query is refused (a prefix names paths).
fn read_prefix(host: Option<&str>, given: &str) -> Result<PathPrefix, String> {
    let (url_host, path) = match given.split_once("://") {
        Some(("http" | "https", rest)) => {
            let slash = rest.find('/').unwrap_or(rest.len());
            let url_host =
                normalize_host(&rest[..slash]).ok_or_else(|| format!("prefix {given:?} has no valid host"))?;
            (
                Some(url_host),
                rest.get(slash..).filter(|p| !p.is_empty()).unwrap_or("/"),
            )
        }
        _ => (None, given),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "prefix {given:?} must start with '/' (or be a full http(s) URL)"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(format!("prefix {given:?} must be a path, without a query"));
    }
    let path = normalize_path(path).map_err(|err| format!("prefix {given:?}: {err}"))?;
    Ok(PathPrefix::new(url_host.as_deref().or(host), &path))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_parsed_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&headers), Some(&b"abc"[..]));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn reports_keep_their_wire_form_and_read_back() {
        let text = r#"{"revalidated":false,"now":1795430400000,"paths":{"/a":"regenerated","/b":"not cached","/c":{"error":"origin answered 500 Internal Server Error; last good page kept"}},"tags":{"blog":3},"prefixes":{"/docs":2}}"#;
        let report: RevalidateReport = serde_json::from_str(text).expect("reads");
        assert_eq!(report.paths["/a"], PathResult::Done(PathDone::Regenerated));
        assert_eq!(report.paths["/b"], PathResult::Done(PathDone::NotCached));
        assert!(matches!(&report.paths["/c"], PathResult::Error { error } if error.starts_with("origin answered 500")));
        assert_eq!(report.prefixes["/docs"], 2);
        assert_eq!(serde_json::to_string(&report).expect("writes"), text);
        let before_prefixes: RevalidateReport =
            serde_json::from_str(r#"{"revalidated":true,"now":1,"paths":{},"tags":{}}"#).expect("reads");
        assert!(
            before_prefixes.prefixes.is_empty(),
            "a report from a proxy without prefixes still reads"
        );
    }

    #[test]
    fn prefixes_are_read_as_paths_on_a_site() {
        let read = |host, given| read_prefix(host, given);
        assert_eq!(read(None, "/blog"), Ok(PathPrefix::new(None, "/blog")));
        assert_eq!(read(None, "/blog/"), Ok(PathPrefix::new(None, "/blog/")));
        assert_eq!(
            read(None, "/a//b/../c"),
            Ok(PathPrefix::new(None, "/a/c")),
            "normalised as request paths are"
        );
        assert_eq!(
            read(Some("shop.example.com"), "/blog"),
            Ok(PathPrefix::new(Some("shop.example.com"), "/blog"))
        );
        assert_eq!(
            read(Some("other.example.com"), "https://Shop.Example.com/blog"),
            Ok(PathPrefix::new(Some("shop.example.com"), "/blog")),
            "a full URL names its own site"
        );
        assert_eq!(
            read(None, "https://shop.example.com"),
            Ok(PathPrefix::new(Some("shop.example.com"), "/"))
        );
        for bad in ["blog", "", "/blog?page=2", "/blog#top", "/../x", "ftp://x/y"] {
            assert!(read(None, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn orders_are_validated() {
        let order = |paths: &[&str], tags: &[&str]| RevalidateRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..RevalidateRequest::default()
        };
        assert!(validate(&order(&["/a"], &[])).is_ok());
        assert!(validate(&order(&[], &["t"])).is_ok());
        assert!(validate(&order(&[], &[])).is_err());
        assert!(validate(&order(&["a"], &[])).is_err());
        assert!(validate(&order(&["https://shop.example.com/a"], &[])).is_ok());
        let bad_host = RevalidateRequest {
            host: Some("not a host".into()),
            ..order(&["/a"], &[])
        };
        assert!(validate(&bad_host).is_err());
        assert!(validate(&order(&[], &[" "])).is_err());
        let prefixes = |prefixes: &[&str]| RevalidateRequest {
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            ..RevalidateRequest::default()
        };
        assert_eq!(validate(&prefixes(&["/blog"])).map(|p| p.len()).ok(), Some(1));
        assert!(validate(&prefixes(&["blog"])).is_err());
        let many: Vec<String> = (0..=MAX_ITEMS).map(|i| format!("/p/{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(validate(&order(&many, &[])).is_err());
    }
}
