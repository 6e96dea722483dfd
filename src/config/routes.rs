//! `[[route]]`, `[prerender]` and `[fallback]`: which paths are cached and how, and what is warmed at startup.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::values::{HumanDuration, parse_duration};
use super::{ConfigError, LineOf, invalid, spanned_path};
use crate::route::{Fallback, HostPattern, OriginCacheControl, QueryPolicy, Revalidate, RouteRule, RouteTable};

/// Pages prerendered at once at startup: enough to hide origin latency, few enough not to flood it.
pub const DEFAULT_PRERENDER_CONCURRENCY: usize = 8;
/// User-Agent substrings of crawlers that get blocking renders instead of a `fallback = true` placeholder, so
/// they never index a loading shell.
pub const DEFAULT_CRAWLERS: [&str; 9] = [
    "Googlebot",
    "Bingbot",
    "DuckDuckBot",
    "Slurp",
    "Baiduspider",
    "YandexBot",
    "facebookexternalhit",
    "Twitterbot",
    "LinkedInBot",
];

/// `[prerender]`.
#[derive(Debug, Clone)]
pub struct PrerenderConfig {
    /// Origin path answering a JSON array of paths to prerender.
    pub paths_url: Option<String>,
    /// Fetches at once.
    pub concurrency: usize,
    /// Accept connections only after prerendering (`false`: at once, warming in the background).
    pub wait: bool,
}

/// `[fallback]`.
#[derive(Debug, Clone)]
pub struct FallbackConfig {
    /// User-Agent substrings (case-insensitive) that mark crawlers.
    pub crawlers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrerender {
    paths_url: Option<toml::Spanned<String>>,
    concurrency: Option<usize>,
    wait: Option<bool>,
}

impl RawPrerender {
    pub(super) fn validate(self, line_of: LineOf<'_>) -> Result<PrerenderConfig, ConfigError> {
        let concurrency = self.concurrency.unwrap_or(DEFAULT_PRERENDER_CONCURRENCY);
        if concurrency == 0 {
            return Err(invalid("prerender.concurrency", None, "must be at least 1"));
        }
        Ok(PrerenderConfig {
            paths_url: spanned_path("prerender.paths_url", self.paths_url, line_of)?,
            concurrency,
            wait: self.wait.unwrap_or(true),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallback {
    crawlers: Option<Vec<String>>,
}

impl RawFallback {
    pub(super) fn validate(self) -> FallbackConfig {
        FallbackConfig {
            crawlers: self
                .crawlers
                .unwrap_or_else(|| DEFAULT_CRAWLERS.iter().map(|c| (*c).to_owned()).collect()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    path: toml::Spanned<String>,
    host: Option<toml::Spanned<HostSetting>>,
    cache: Option<bool>,
    revalidate: Option<RevalidateSetting>,
    not_found_revalidate: Option<RevalidateSetting>,
    expire: Option<HumanDuration>,
    query: Option<QuerySetting>,
    origin_cache_control: Option<OriginCacheControlSetting>,
    fallback: Option<FallbackSetting>,
    fallback_page: Option<toml::Spanned<String>>,
    prerender: Option<Vec<toml::Spanned<String>>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OriginCacheControlSetting {
    Respect,
    Ignore,
}

/// Validates every `[[route]]` into the route table, and checks that each prerender path falls under a cached
/// route. `default_expire` is `cache.expire`.
pub(super) fn route_table(
    raw_routes: Vec<RawRoute>,
    default_expire: Duration,
    line_of: LineOf<'_>,
) -> Result<RouteTable, ConfigError> {
    let mut rules = Vec::with_capacity(raw_routes.len());
    let mut lines = Vec::with_capacity(raw_routes.len());
    let mut prerender_lines = Vec::new();
    for (i, raw) in raw_routes.into_iter().enumerate() {
        let line = line_of(raw.path.span());
        let (rule, prerender) = raw.validate(i, default_expire, line_of)?;
        lines.push(line);
        prerender_lines.extend(prerender);
        rules.push(rule);
    }
    let routes = RouteTable::new(rules).map_err(|(i, err)| {
        invalid(
            &format!("route[{i}].path"),
            lines.get(i).copied().flatten(),
            &err.to_string(),
        )
    })?;
    for (key, line, path, host) in prerender_lines {
        if routes.cached_page(host.as_deref(), &path).is_none() {
            return Err(invalid(&key, line, &format!("{path:?} is not under any cached route")));
        }
    }
    Ok(routes)
}

/// A prerender path with its key, line and (for a host-specific route) the host it is rendered for, checked
/// once the whole table is built.
type PrerenderLine = (String, Option<usize>, String, Option<String>);

impl RawRoute {
    fn validate(
        self,
        i: usize,
        default_expire: Duration,
        line_of: LineOf<'_>,
    ) -> Result<(RouteRule, Vec<PrerenderLine>), ConfigError> {
        let line = line_of(self.path.span());
        let cache = self.cache.unwrap_or(true);
        let hosts = match self.host {
            Some(host) => {
                let host_line = line_of(host.span());
                let hosts = host.into_inner().0;
                let mut parsed = Vec::with_capacity(hosts.len());
                for text in &hosts {
                    let pattern = HostPattern::parse(text).map_err(|reason| {
                        invalid(&format!("route[{i}].host"), host_line, &format!("{text:?}: {reason}"))
                    })?;
                    parsed.push(pattern);
                }
                if parsed.is_empty() {
                    return Err(invalid(
                        &format!("route[{i}].host"),
                        host_line,
                        "list at least one host",
                    ));
                }
                parsed
            }
            None => Vec::new(),
        };
        let exact_host = hosts.iter().find_map(|h| match h {
            HostPattern::Exact(host) => Some(host.clone()),
            HostPattern::Wildcard(_) => None,
        });
        if !hosts.is_empty() && exact_host.is_none() && self.prerender.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid(
                &format!("route[{i}].prerender"),
                line,
                "a route whose hosts are all wildcards names no host to prerender for; list an exact host",
            ));
        }
        let cache_keys_set = self.revalidate.is_some()
            || self.query.is_some()
            || self.not_found_revalidate.is_some()
            || self.origin_cache_control.is_some()
            || self.expire.is_some()
            || self.fallback.is_some()
            || self.fallback_page.is_some()
            || self.prerender.is_some();
        if !cache && cache_keys_set {
            return Err(invalid(
                &format!("route[{i}].cache"),
                line,
                "a `cache = false` route takes no caching keys (`revalidate`, `query`, `expire`, ...)",
            ));
        }
        if cache && self.revalidate.is_none() {
            return Err(invalid(
                &format!("route[{i}].revalidate"),
                line,
                "missing: give seconds, a duration like \"5m\", or false (on demand only); or set `cache = false`",
            ));
        }
        if self.revalidate.as_ref().is_some_and(|r| r.0 == Revalidate::Origin) {
            // The origin's headers are the rule on these routes: keys that would override them mean nothing.
            let overriding = [
                ("not_found_revalidate", self.not_found_revalidate.is_some()),
                ("origin_cache_control", self.origin_cache_control.is_some()),
            ];
            if let Some((key, _)) = overriding.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    &format!("route[{i}].{key}"),
                    line,
                    "has no effect with `revalidate = \"origin\"`: the origin's own headers decide (RFC 9111)",
                ));
            }
        }
        let fallback = self.fallback.map_or(Fallback::Blocking, |f| f.0);
        let fallback_page = match self.fallback_page {
            Some(page) if !page.get_ref().starts_with('/') => {
                return Err(invalid(
                    &format!("route[{i}].fallback_page"),
                    line_of(page.span()),
                    "must start with '/'",
                ));
            }
            Some(page) => Some(page.into_inner()),
            None => None,
        };
        if fallback == Fallback::Placeholder && fallback_page.is_none() {
            return Err(invalid(
                &format!("route[{i}].fallback_page"),
                line,
                "`fallback = true` needs a `fallback_page` (the origin path of the placeholder)",
            ));
        }
        let mut prerender = Vec::new();
        let mut prerender_lines = Vec::new();
        for (j, path) in self.prerender.into_iter().flatten().enumerate() {
            if !path.get_ref().starts_with('/') {
                return Err(invalid(
                    &format!("route[{i}].prerender[{j}]"),
                    line_of(path.span()),
                    "must start with '/'",
                ));
            }
            prerender_lines.push((
                format!("route[{i}].prerender[{j}]"),
                line_of(path.span()),
                path.get_ref().clone(),
                exact_host.clone(),
            ));
            prerender.push(path.into_inner());
        }
        let rule = RouteRule {
            pattern: self.path.into_inner(),
            hosts,
            cache,
            revalidate: self.revalidate.map_or(Revalidate::OnDemand, |r| r.0),
            expire: self.expire.map_or(default_expire, |d| d.0),
            query: self.query.map_or(QueryPolicy::Ignore, |q| q.0),
            not_found_revalidate: self.not_found_revalidate.map(|r| r.0),
            origin_cache_control: match self.origin_cache_control {
                Some(OriginCacheControlSetting::Ignore) => OriginCacheControl::Ignore,
                Some(OriginCacheControlSetting::Respect) | None => OriginCacheControl::Respect,
            },
            fallback,
            fallback_page,
            prerender,
        };
        Ok((rule, prerender_lines))
    }
}

/// `host = "shop.example.com"`, `"*.example.com"` or a list of them.
struct HostSetting(Vec<String>);

impl<'de> Deserialize<'de> for HostSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HostSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host (\"shop.example.com\", \"*.example.com\") or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HostSetting(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut hosts = Vec::new();
                while let Some(host) = seq.next_element::<String>()? {
                    hosts.push(host);
                }
                Ok(HostSetting(hosts))
            }
        }
        d.deserialize_any(V)
    }
}

/// `fallback = "blocking" | true | false`, as in Next.js.
struct FallbackSetting(Fallback);

impl<'de> Deserialize<'de> for FallbackSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FallbackSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"blocking\", true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(FallbackSetting(if v {
                    Fallback::Placeholder
                } else {
                    Fallback::NotFound
                }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "blocking" => Ok(FallbackSetting(Fallback::Blocking)),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Freshness as written in a route: seconds, a duration string, or `false` for on-demand only.
struct RevalidateSetting(Revalidate);

impl<'de> Deserialize<'de> for RevalidateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RevalidateSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds (60), a duration (\"5m\"), \"origin\" or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom(
                        "`revalidate = true` has no meaning; give seconds, a duration, or false",
                    ))
                } else {
                    Ok(RevalidateSetting(Revalidate::OnDemand))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(0) | Err(_) => Err(E::custom("revalidate must be at least 1 second (or false)")),
                    Ok(s) => Ok(RevalidateSetting(Revalidate::After(Duration::from_secs(s)))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "origin" {
                    return Ok(RevalidateSetting(Revalidate::Origin));
                }
                match parse_duration(v).map_err(E::custom)? {
                    d if d.is_zero() => Err(E::custom("revalidate must be above zero (or false)")),
                    d => Ok(RevalidateSetting(Revalidate::After(d))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `"ignore"`, `"keep"` or an allow-list of parameter names.
struct QuerySetting(QueryPolicy);

impl<'de> Deserialize<'de> for QuerySetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QuerySetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"ignore\", \"keep\" or a list of parameter names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "ignore" => Ok(QuerySetting(QueryPolicy::Ignore)),
                    "keep" => Ok(QuerySetting(QueryPolicy::Keep)),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    if name.is_empty() || name.contains(['&', '=']) {
                        return Err(de::Error::custom(format!("{name:?} is not a query parameter name")));
                    }
                    names.push(name);
                }
                Ok(QuerySetting(QueryPolicy::Allow(names)))
            }
        }
        d.deserialize_any(V)
    }
}
