//! Route rules: which request paths are cached, for how long, and with which part of the query.
//!
//! Owns pattern syntax (`/blog/:slug`, `/api/*rest`), precedence (static segment > `:param` > `*rest`, regardless
//! of file order — delegated to `path-tree`) and the query policy; `path` normalises request paths. Routes may
//! name hosts ([`sites`]): a request's host then selects its routes before the host-less ones. Pure: no I/O, no
//! clock.

mod path;
pub mod sites;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use crate::cache::CacheKey;
pub use crate::cacheability::{OriginCacheControl, Revalidate, StorePolicy};
pub use path::{MAX_PATH_BYTES, PathError, normalize_path};
use sites::Sites;
pub use sites::{HostPattern, normalize_host};

/// Which query parameters are part of the cache key (and therefore of the origin request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryPolicy {
    /// Drop the query entirely: `/blog/a?utm=x` is `/blog/a`.
    Ignore,
    /// Keep every parameter, sorted by name so that order does not split the cache.
    Keep,
    /// Keep only these parameters, sorted by name.
    Allow(Vec<String>),
}

/// What a route does with a path it has no page for yet (Next.js's `fallback`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fallback {
    /// `"blocking"`: render it on its first request (coalesced), then cache it.
    #[default]
    Blocking,
    /// `false`: only known paths (prerendered or regenerated on demand) exist; others are 404 without asking
    /// the origin.
    NotFound,
    /// `true`: answer with the route's placeholder page at once and render the real page in the background.
    Placeholder,
}

/// One `[[route]]` from the config, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRule {
    /// The pattern as written in the config, e.g. `/blog/:slug`.
    pub pattern: String,
    /// The hosts this route serves (`host = ...`); empty for a route that serves every host. A host-specific
    /// route's pages are keyed by host.
    pub hosts: Vec<HostPattern>,
    /// `false` for `cache = false`: matching requests are streamed through and never stored.
    pub cache: bool,
    /// Freshness of pages under this route.
    pub revalidate: Revalidate,
    /// How long past `revalidate` a page may still be served stale (Next.js's `expireTime`).
    pub expire: Duration,
    /// Query parameters kept in the key.
    pub query: QueryPolicy,
    /// Freshness of 404/410 pages, when it differs from `revalidate`.
    pub not_found_revalidate: Option<Revalidate>,
    /// Whether the origin's `Cache-Control` can keep pages out of the cache.
    pub origin_cache_control: OriginCacheControl,
    /// What to do with a path that has no page yet.
    pub fallback: Fallback,
    /// Origin path rendered as the placeholder for `fallback = true`.
    pub fallback_page: Option<String>,
    /// Paths fetched at startup.
    pub prerender: Vec<String>,
}

impl RouteRule {
    /// The storing rules every fetch under this route follows.
    pub fn store_policy(&self) -> StorePolicy {
        StorePolicy {
            route: Arc::from(self.pattern.as_str()),
            revalidate: self.revalidate,
            not_found_revalidate: self.not_found_revalidate,
            expire: self.expire,
            origin_cache_control: self.origin_cache_control,
        }
    }
}

/// A request path that falls under a cached route: the rule and the page's key.
#[derive(Debug, Clone)]
pub struct MatchedRoute {
    /// The most specific matching rule.
    pub rule: Arc<RouteRule>,
    /// The page's cache key (normalised path, kept query, variant headers).
    pub key: CacheKey,
}

/// Query parameter Next.js uses to bust caches on client-side navigation; always kept so the origin never
/// answers an RSC request with a 307 to re-add it.
pub const RSC_QUERY_PARAM: &str = "_rsc";

/// A route pattern that the table cannot accept.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Patterns are absolute request paths.
    #[error("route path {pattern:?} must start with '/'")]
    NotAbsolute {
        /// The offending pattern.
        pattern: String,
    },
    /// `:` or `*` without a name, or `*rest` before the last segment.
    #[error("route path {pattern:?}: {reason}")]
    Syntax {
        /// The offending pattern.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two patterns match exactly the same paths (e.g. `/blog/:slug` and `/blog/:id`).
    #[error("route path {pattern:?} duplicates the earlier route {earlier:?}")]
    Duplicate {
        /// The later of the two patterns.
        pattern: String,
        /// The earlier pattern matching the same paths.
        earlier: String,
    },
}

/// A path router over rule indexes.
type PathRouter = path_tree::PathTree<usize>;

/// The route rules, indexed for matching.
#[derive(Clone)]
pub struct RouteTable {
    /// Routes without `host`.
    router: Arc<PathRouter>,
    /// Routes with `host`, by host; `None` when no route names one, so requests never look at their host.
    sites: Option<Arc<Sites<PathRouter>>>,
    rules: Vec<Arc<RouteRule>>,
}

impl RouteTable {
    /// Builds the table; fails on bad syntax or duplicate patterns (the same shape twice for one host).
    /// The error carries the index of the offending rule so the config can point at its line.
    pub fn new(rules: Vec<RouteRule>) -> Result<Self, (usize, RouteError)> {
        let host_less = (0..rules.len()).filter(|&i| rules[i].hosts.is_empty());
        let router = build_router(&rules, host_less)?;
        let mut patterns: Vec<&HostPattern> = rules.iter().flat_map(|rule| &rule.hosts).collect();
        patterns.sort_by_key(|p| p.to_string());
        patterns.dedup();
        let mut trees = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let serving = (0..rules.len()).filter(|&i| rules[i].hosts.contains(pattern));
            trees.push((pattern.clone(), build_router(&rules, serving)?));
        }
        let sites = (!trees.is_empty()).then(|| Arc::new(Sites::new(trees)));
        Ok(Self {
            router: Arc::new(router),
            sites,
            rules: rules.into_iter().map(Arc::new).collect(),
        })
    }

    /// The most specific host-less rule matching an already normalised path, if any.
    pub fn match_path(&self, path: &str) -> Option<&Arc<RouteRule>> {
        let (index, _) = self.router.find(path)?;
        self.rules.get(*index)
    }

    /// Whether any route names a host: only then does a request's host matter.
    pub fn has_sites(&self) -> bool {
        self.sites.is_some()
    }

    /// The rule for a normalised `host` (see [`normalize_host`]) and path: the host's own routes first (exact,
    /// then wildcards), then the host-less ones. The flag says whether the rule is host-specific.
    pub fn match_route(&self, host: Option<&str>, path: &str) -> Option<(&Arc<RouteRule>, bool)> {
        if let (Some(sites), Some(host)) = (&self.sites, host) {
            for router in sites.trees_for(host) {
                if let Some((index, _)) = router.find(path) {
                    return self.rules.get(*index).map(|rule| (rule, true));
                }
            }
        }
        self.match_path(path).map(|rule| (rule, false))
    }

    /// The cached route and key for a normalised path, or `None` when the path is not cached (no route, or
    /// `cache = false`). Requests and on-demand revalidation both key pages through here, so they agree.
    /// Host-less routes only; see [`RouteTable::cached_route_at`].
    pub fn cached_route(
        &self,
        path: &str,
        query: Option<&str>,
        variant: Vec<(HeaderName, HeaderValue)>,
    ) -> Option<MatchedRoute> {
        self.cached_route_at(None, path, query, variant)
    }

    /// [`RouteTable::cached_route`] for a request to a normalised `host`: a host-specific route's key carries
    /// the host; a host-less route's does not, so it is shared by every host as before.
    pub fn cached_route_at(
        &self,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        variant: Vec<(HeaderName, HeaderValue)>,
    ) -> Option<MatchedRoute> {
        let (rule, host_specific) = self.match_route(host, path).filter(|(rule, _)| rule.cache)?;
        let kept = rule.query.apply(query);
        let key_host = host.filter(|_| host_specific);
        Some(MatchedRoute {
            key: CacheKey::on_host(key_host, path, kept.as_deref(), variant),
            rule: rule.clone(),
        })
    }

    /// The cached route and key of a page named in a prerender list or a revalidation call: `/path?query`, or a
    /// full URL (`https://shop.example.com/path?query`) whose host then replaces `host`. Keyed exactly as a
    /// request for it would be; `None` for a malformed name or a path no cached route serves.
    pub fn cached_page(&self, host: Option<&str>, page: &str) -> Option<MatchedRoute> {
        let (url_host, path_and_query) = match page.split_once("://") {
            Some((_scheme, rest)) => {
                let slash = rest.find('/').unwrap_or(rest.len());
                (
                    Some(normalize_host(&rest[..slash])?),
                    rest.get(slash..).filter(|p| !p.is_empty()).unwrap_or("/"),
                )
            }
            None => (None, page),
        };
        let host = url_host.as_deref().or(host);
        let (path, query) = path_and_query
            .split_once('?')
            .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        let path = normalize_path(path).ok()?;
        self.cached_route_at(host, &path, query, Vec::new())
    }

    /// The pages listed in the routes' `prerender` keys: a host-specific route's paths once per exact host (a
    /// wildcard names no host to render for).
    pub fn prerender_pages(&self) -> Vec<(Option<&str>, &str)> {
        let mut pages = Vec::new();
        for rule in &self.rules {
            for path in &rule.prerender {
                if rule.hosts.is_empty() {
                    pages.push((None, path.as_str()));
                }
                for host in &rule.hosts {
                    if let HostPattern::Exact(host) = host {
                        pages.push((Some(host.as_str()), path.as_str()));
                    }
                }
            }
        }
        pages
    }

    /// All rules in config order.
    pub fn rules(&self) -> &[Arc<RouteRule>] {
        &self.rules
    }
}

/// A router over the rules at `indexes`; two of them with the same shape are a duplicate.
fn build_router(rules: &[RouteRule], indexes: impl Iterator<Item = usize>) -> Result<PathRouter, (usize, RouteError)> {
    let mut router = path_tree::PathTree::new();
    let mut shapes = std::collections::HashMap::new();
    for index in indexes {
        let rule = &rules[index];
        let (translated, shape) = translate(&rule.pattern).map_err(|err| (index, err))?;
        if let Some(earlier) = shapes.insert(shape, index) {
            return Err((
                index,
                RouteError::Duplicate {
                    pattern: rule.pattern.clone(),
                    earlier: rules[earlier].pattern.clone(),
                },
            ));
        }
        let _route_id = router.insert(&translated, index);
    }
    Ok(router)
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rules.iter().map(|r| &r.pattern)).finish()
    }
}

/// Translates `/blog/:slug` and `/files/*rest` into path-tree syntax (`:slug`, `:rest+`), and returns the
/// pattern's shape (names erased: `/blog/:`) so that two patterns matching the same paths are caught.
fn translate(pattern: &str) -> Result<(String, String), RouteError> {
    let syntax = |reason| RouteError::Syntax {
        pattern: pattern.to_owned(),
        reason,
    };
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(RouteError::NotAbsolute {
            pattern: pattern.to_owned(),
        });
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut shape = String::with_capacity(pattern.len());
    for (i, segment) in segments.iter().enumerate() {
        out.push('/');
        shape.push('/');
        if let Some(name) = segment.strip_prefix(':') {
            if !is_param_name(name) {
                return Err(syntax("':' must be followed by a parameter name"));
            }
            out.push_str(segment);
            shape.push(':');
        } else if let Some(name) = segment.strip_prefix('*') {
            if !is_param_name(name) {
                return Err(syntax("'*' must be followed by a parameter name"));
            }
            if i + 1 != segments.len() {
                return Err(syntax("'*rest' must be the last segment"));
            }
            out.push(':');
            out.push_str(name);
            out.push('+');
            shape.push('*');
        } else {
            if segment.contains([':', '*', '+', '?', '\\']) {
                return Err(syntax(
                    "':param' and '*rest' must fill a whole segment; '+', '?' and '\\' are not allowed",
                ));
            }
            out.push_str(segment);
            shape.push_str(segment);
        }
    }
    Ok((out, shape))
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl QueryPolicy {
    /// The query kept in the key and sent to the origin, canonically ordered; `None` when nothing is kept.
    /// `_rsc` is always kept (see [`RSC_QUERY_PARAM`]).
    pub fn apply(&self, query: Option<&str>) -> Option<String> {
        let query = query.filter(|q| !q.is_empty())?;
        let mut pairs: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                name == RSC_QUERY_PARAM
                    || match self {
                        Self::Ignore => false,
                        Self::Keep => true,
                        Self::Allow(allowed) => allowed.iter().any(|a| a == name),
                    }
            })
            .collect();
        if pairs.is_empty() {
            return None;
        }
        // Stable sort by name keeps repeated parameters (`tag=a&tag=b`) in their original order.
        pairs.sort_by_key(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name));
        Some(pairs.join("&"))
    }
}

impl fmt::Display for Revalidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::After(d) => write!(f, "{}", humantime::format_duration(*d)),
            Self::OnDemand => f.write_str("on demand"),
            Self::Origin => f.write_str("from origin"),
        }
    }
}

#[cfg(test)]
mod tests;
