//! The TOML config file: its schema, defaults and validation.
//!
//! Raw serde structs (`deny_unknown_fields`, so a typo is an error, not a silently ignored key) are turned into a
//! validated [`Config`] with real types (`Duration`, byte counts, `Uri`, a [`RouteTable`]). Every error names the
//! key and, where the file has one, the line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::header::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use subtle::ConstantTimeEq;

use crate::route::{Fallback, OriginCacheControl, QueryPolicy, Revalidate, RouteRule, RouteTable};

/// Where the proxy listens when `listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Whole-response budget for one origin fetch: long enough for a slow render, short enough that a hung origin
/// frees its single-flight slot.
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent origin fetches for cached routes; bounds the load a flood of distinct cold URLs puts on the origin.
pub const DEFAULT_ORIGIN_MAX_CONNECTIONS: usize = 64;
/// How long a cached-route fetch waits for a free origin slot before answering 503.
pub const DEFAULT_ORIGIN_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Cached bytes (bodies + headers).
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;
/// Larger responses are served but not stored, so one huge page cannot evict hundreds of small ones.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 8 * 1024 * 1024;
/// Minimum gap between two regeneration attempts of one key after a failure, so a down origin is not hammered.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long past `revalidate` a page may be served stale (Next.js's default `expireTime` is one year).
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(365 * 24 * 3600);
/// Bound on persisted bytes per namespace when `cache.dir` is set.
pub const DEFAULT_MAX_DISK_SIZE: u64 = 2 * 1024 * 1024 * 1024;
/// Namespace (deployment id) when none is configured.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Namespaces kept on disk, the current one included: enough to roll back two deployments.
pub const DEFAULT_KEEP_NAMESPACES: usize = 3;
/// How long in-flight requests get to finish after SIGINT/SIGTERM.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a whole request head once it starts one (or once it connects): short enough that a
/// slowloris client holding thousands of half-sent heads frees its connections quickly, long enough for a phone on
/// a bad network.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a keep-alive connection may sit with no request in progress. Above the 60 s idle timeout of common
/// load balancers (AWS ALB, GCP), so the balancer, not isr-proxy, closes idle connections first: the other way
/// round, a request racing the close gets a 502 from the balancer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Largest request head (request line and headers) accepted; larger ones get 431. Browsers send a few KiB; this
/// leaves room for large cookies without letting one client pin a large buffer.
pub const DEFAULT_MAX_HEADER_SIZE: u64 = 64 * 1024;
/// The smallest `server.max_header_size` hyper's HTTP/1 reader accepts.
pub const MIN_MAX_HEADER_SIZE: u64 = 8 * 1024;
/// Upper bound of `origin.max_connections` and `server.max_connections`: far above any real limit, far below
/// what a semaphore can count.
pub const MAX_CONNECTION_LIMIT: usize = 1_000_000;
/// Client connections served at once; more wait in the kernel's accept queue. Keep it under the process's
/// file-descriptor limit minus `origin.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default path of the on-demand revalidation endpoint.
pub const DEFAULT_REVALIDATE_PATH: &str = "/_isr/revalidate";
/// Default environment variable holding the revalidation secret.
pub const DEFAULT_TOKEN_ENV: &str = "ISR_REVALIDATE_TOKEN";
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
/// Default response header through which the origin tags pages.
pub const DEFAULT_TAGS_HEADER: &str = "x-isr-tags";
/// Prefix of every Redis key isr-proxy writes, so several sites (or deployments) can share one Redis.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "isr:";
/// How long a fleet-wide regeneration lock lives if its holder crashes: above the default origin timeout, so a
/// slow render keeps its lock, and short enough that a crashed instance does not hold a page back for long.
pub const DEFAULT_REDIS_LOCK_TTL: Duration = Duration::from_secs(30);
/// Budget of one Redis read, lock or probe on the request path: a healthy Redis on the same network answers in
/// well under a millisecond, and a request must never wait long because Redis is slow.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// A config file that cannot be used. Display names the key (and line where known).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so it is not also a `source`: printed once).
        error: std::io::Error,
    },
    /// Syntax, type or unknown-key error; toml's message carries the line, column and key.
    #[error("invalid config file {path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's error, with line and column.
        error: toml::de::Error,
    },
    /// A value that parsed but makes no sense.
    #[error("invalid config: `{key}`{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        /// Dotted key, e.g. `route[2].path`.
        key: String,
        /// 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// The origin app.
    pub origin: OriginConfig,
    /// The in-memory cache.
    pub cache: CacheConfig,
    /// Listener behaviour.
    pub server: ServerConfig,
    /// The on-demand revalidation endpoint.
    pub revalidate: RevalidateConfig,
    /// Startup prerendering.
    pub prerender: PrerenderConfig,
    /// Placeholder behaviour (`fallback = true`).
    pub fallback: FallbackConfig,
    /// The admin listener (`/metrics`, `/health`).
    pub admin: AdminConfig,
    /// Per-route rules.
    pub routes: RouteTable,
}

/// `[admin]`.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Address of the admin listener; `None` (the default) runs none.
    pub listen: Option<SocketAddr>,
}

/// `[origin]`.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Base URL, `http://host:port` (a path prefix is allowed).
    pub url: Uri,
    /// Whole-response timeout of one cached-route fetch; time-to-headers for pass-through.
    pub timeout: Duration,
    /// Concurrent origin fetches for cached routes.
    pub max_connections: usize,
    /// How long a fetch waits for one of the `max_connections` slots before giving up (503).
    pub queue_timeout: Duration,
    /// Origin page served (as a 404) for unknown paths under `fallback = false` routes.
    pub not_found_page: Option<String>,
}

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

/// `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Bound on cached bytes.
    pub max_size: u64,
    /// Bound on one entry's bytes.
    pub max_entry_size: u64,
    /// Gap between regeneration attempts of one key after a failure.
    pub retry_after: Duration,
    /// Store gzip and brotli forms of compressible pages, computed once per generation.
    pub compress: bool,
    /// Disk persistence, when `dir` is set.
    pub disk: Option<DiskConfig>,
    /// The shared tier (`[cache.redis]`), when set: several instances share pages, invalidations and
    /// regeneration locks.
    pub redis: Option<RedisConfig>,
}

/// `[cache.redis]`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` (or `redis+unix://`).
    pub url: String,
    /// Prefix of every key and of the invalidation channel.
    pub key_prefix: String,
    /// Lifetime of a regeneration lock whose holder died.
    pub lock_ttl: Duration,
    /// Budget of one Redis operation on the request path.
    pub timeout: Duration,
}

/// `[cache] dir, max_disk_size, namespace, keep_namespaces`.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// Root directory of the persisted cache.
    pub dir: PathBuf,
    /// Bound on persisted bytes in the current namespace.
    pub max_disk_size: u64,
    /// Deployment id: pages live under `dir/<namespace>/`.
    pub namespace: String,
    /// Namespaces kept, the current one included.
    pub keep_namespaces: usize,
}

/// `[server]`: the public listener's behaviour and its limits against slow or greedy clients.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Drain budget on shutdown.
    pub shutdown_timeout: Duration,
    /// Time to receive a whole request head, from its first byte (or from the connection's start).
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
    /// Largest request head in bytes (HTTP/1: request line and headers; HTTP/2: the decoded header list).
    pub max_header_size: u64,
    /// Client connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// `[revalidate]`.
#[derive(Debug, Clone)]
pub struct RevalidateConfig {
    /// Path of the endpoint on the main listener.
    pub path: String,
    /// Environment variable holding the secret.
    pub token_env: String,
    /// Response header the origin tags pages with.
    pub tags_header: HeaderName,
    /// The secret, read from `token_env` when the config is loaded; `None` disables the endpoint.
    pub token: Option<Token>,
}

/// The revalidation secret. Debug and Display never show it.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token from its text; `None` when empty (an empty secret would let anyone in).
    pub fn new(secret: &str) -> Option<Self> {
        (!secret.is_empty()).then(|| Self(Arc::from(secret.as_bytes())))
    }

    /// Reads the token from the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().as_deref().and_then(Self::new)
    }

    /// Constant-time comparison with what a client sent.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_ref().ct_eq(given).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_toml_str(&text).map_err(|err| match err {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                path: path.to_owned(),
                error,
            },
            other => other,
        })
    }

    /// Parses and validates config text (the file name in errors is `<string>`).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            error,
        })?;
        raw.validate(text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<SocketAddr>,
    origin: RawOrigin,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    revalidate: RawRevalidate,
    #[serde(default)]
    prerender: RawPrerender,
    #[serde(default)]
    fallback: RawFallback,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    url: OriginUrl,
    timeout: Option<HumanDuration>,
    max_connections: Option<usize>,
    queue_timeout: Option<HumanDuration>,
    not_found_page: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrerender {
    paths_url: Option<toml::Spanned<String>>,
    concurrency: Option<usize>,
    wait: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    crawlers: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_size: Option<ByteCount>,
    max_entry_size: Option<ByteCount>,
    retry_after: Option<HumanDuration>,
    compress: Option<bool>,
    expire: Option<HumanDuration>,
    dir: Option<PathBuf>,
    max_disk_size: Option<ByteCount>,
    namespace: Option<toml::Spanned<String>>,
    keep_namespaces: Option<usize>,
    redis: Option<RawRedis>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: toml::Spanned<String>,
    key_prefix: Option<toml::Spanned<String>>,
    lock_ttl: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    shutdown_timeout: Option<HumanDuration>,
    header_read_timeout: Option<HumanDuration>,
    idle_timeout: Option<HumanDuration>,
    max_header_size: Option<ByteCount>,
    max_connections: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRevalidate {
    path: Option<toml::Spanned<String>>,
    token_env: Option<String>,
    tags_header: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: toml::Spanned<String>,
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

impl RawConfig {
    fn validate(self, text: &str) -> Result<Config, ConfigError> {
        let line_of = |span: std::ops::Range<usize>| Some(text[..span.start.min(text.len())].lines().count().max(1));
        let default_expire = self.cache.expire.map_or(DEFAULT_EXPIRE, |d| d.0);
        let max_connections = self.origin.max_connections.unwrap_or(DEFAULT_ORIGIN_MAX_CONNECTIONS);
        if !(1..=MAX_CONNECTION_LIMIT).contains(&max_connections) {
            return Err(invalid("origin.max_connections", None, "must be between 1 and 1000000"));
        }
        let max_size = self.cache.max_size.map_or(DEFAULT_MAX_SIZE, |b| b.0);
        let max_entry_size = self.cache.max_entry_size.map_or(DEFAULT_MAX_ENTRY_SIZE, |b| b.0);
        if max_entry_size > max_size {
            return Err(invalid("cache.max_entry_size", None, "must not exceed cache.max_size"));
        }

        let mut rules = Vec::with_capacity(self.routes.len());
        let mut lines = Vec::with_capacity(self.routes.len());
        let mut prerender_lines = Vec::new();
        for (i, raw) in self.routes.into_iter().enumerate() {
            let line = line_of(raw.path.span());
            let cache = raw.cache.unwrap_or(true);
            let cache_keys_set = raw.revalidate.is_some()
                || raw.query.is_some()
                || raw.not_found_revalidate.is_some()
                || raw.origin_cache_control.is_some()
                || raw.expire.is_some()
                || raw.fallback.is_some()
                || raw.fallback_page.is_some()
                || raw.prerender.is_some();
            if !cache && cache_keys_set {
                return Err(invalid(
                    &format!("route[{i}].cache"),
                    line,
                    "a `cache = false` route takes no caching keys (`revalidate`, `query`, `expire`, ...)",
                ));
            }
            if cache && raw.revalidate.is_none() {
                return Err(invalid(
                    &format!("route[{i}].revalidate"),
                    line,
                    "missing: give seconds, a duration like \"5m\", or false (on demand only); or set `cache = false`",
                ));
            }
            let fallback = raw.fallback.map_or(Fallback::Blocking, |f| f.0);
            let fallback_page = match raw.fallback_page {
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
            for (j, path) in raw.prerender.into_iter().flatten().enumerate() {
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
                ));
                prerender.push(path.into_inner());
            }
            lines.push(line);
            rules.push(RouteRule {
                pattern: raw.path.into_inner(),
                cache,
                revalidate: raw.revalidate.map_or(Revalidate::OnDemand, |r| r.0),
                expire: raw.expire.map_or(default_expire, |d| d.0),
                query: raw.query.map_or(QueryPolicy::Ignore, |q| q.0),
                not_found_revalidate: raw.not_found_revalidate.map(|r| r.0),
                origin_cache_control: match raw.origin_cache_control {
                    Some(OriginCacheControlSetting::Ignore) => OriginCacheControl::Ignore,
                    Some(OriginCacheControlSetting::Respect) | None => OriginCacheControl::Respect,
                },
                fallback,
                fallback_page,
                prerender,
            });
        }
        let routes = RouteTable::new(rules).map_err(|(i, err)| {
            invalid(
                &format!("route[{i}].path"),
                lines.get(i).copied().flatten(),
                &err.to_string(),
            )
        })?;

        for (key, line, path) in prerender_lines {
            let (raw_path, query) = path
                .split_once('?')
                .map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
            let under_cached_route = crate::route::normalize_path(raw_path)
                .ok()
                .and_then(|normal| routes.cached_route(&normal, query, Vec::new()))
                .is_some();
            if !under_cached_route {
                return Err(invalid(&key, line, &format!("{path:?} is not under any cached route")));
            }
        }
        let concurrency = self.prerender.concurrency.unwrap_or(DEFAULT_PRERENDER_CONCURRENCY);
        if concurrency == 0 {
            return Err(invalid("prerender.concurrency", None, "must be at least 1"));
        }
        let spanned_path = |key: &str, value: Option<toml::Spanned<String>>| match value {
            Some(p) if !p.get_ref().starts_with('/') => Err(invalid(key, line_of(p.span()), "must start with '/'")),
            Some(p) => Ok(Some(p.into_inner())),
            None => Ok(None),
        };
        let paths_url = spanned_path("prerender.paths_url", self.prerender.paths_url)?;
        let not_found_page = spanned_path("origin.not_found_page", self.origin.not_found_page)?;
        let namespace = match self.cache.namespace {
            Some(ns) if !is_namespace(ns.get_ref()) => {
                return Err(invalid(
                    "cache.namespace",
                    line_of(ns.span()),
                    "use letters, digits, '.', '_' and '-' only (it names a directory)",
                ));
            }
            Some(ns) => ns.into_inner(),
            None => DEFAULT_NAMESPACE.to_owned(),
        };
        let keep_namespaces = self.cache.keep_namespaces.unwrap_or(DEFAULT_KEEP_NAMESPACES);
        if keep_namespaces == 0 {
            return Err(invalid(
                "cache.keep_namespaces",
                None,
                "must be at least 1 (the current namespace)",
            ));
        }
        let disk = self.cache.dir.map(|dir| DiskConfig {
            dir,
            max_disk_size: self.cache.max_disk_size.map_or(DEFAULT_MAX_DISK_SIZE, |b| b.0),
            namespace,
            keep_namespaces,
        });
        let origin_timeout = self.origin.timeout.map_or(DEFAULT_ORIGIN_TIMEOUT, |d| d.0);
        let redis = match self.cache.redis {
            Some(raw) => Some(raw.validate(origin_timeout, &line_of)?),
            None => None,
        };
        let revalidate_path = match self.revalidate.path {
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(invalid("revalidate.path", line_of(p.span()), "must start with '/'"));
            }
            Some(p) => p.into_inner(),
            None => DEFAULT_REVALIDATE_PATH.to_owned(),
        };
        let token_env = self
            .revalidate
            .token_env
            .unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned());
        let server = self.server.validate()?;
        let tags_header = match self.revalidate.tags_header {
            Some(h) => HeaderName::from_bytes(h.get_ref().as_bytes())
                .map_err(|_| invalid("revalidate.tags_header", line_of(h.span()), "not a valid header name"))?,
            None => HeaderName::from_static(DEFAULT_TAGS_HEADER),
        };

        Ok(Config {
            listen: self.listen.unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000)))
            }),
            origin: OriginConfig {
                url: self.origin.url.0,
                timeout: origin_timeout,
                max_connections,
                queue_timeout: self.origin.queue_timeout.map_or(DEFAULT_ORIGIN_QUEUE_TIMEOUT, |d| d.0),
                not_found_page,
            },
            cache: CacheConfig {
                max_size,
                max_entry_size,
                retry_after: self.cache.retry_after.map_or(DEFAULT_RETRY_AFTER, |d| d.0),
                compress: self.cache.compress.unwrap_or(true),
                disk,
                redis,
            },
            server,
            revalidate: RevalidateConfig {
                path: revalidate_path,
                token: Token::from_env(&token_env),
                token_env,
                tags_header,
            },
            prerender: PrerenderConfig {
                paths_url,
                concurrency,
                wait: self.prerender.wait.unwrap_or(true),
            },
            fallback: FallbackConfig {
                crawlers: self
                    .fallback
                    .crawlers
                    .unwrap_or_else(|| DEFAULT_CRAWLERS.iter().map(|c| (*c).to_owned()).collect()),
            },
            admin: AdminConfig {
                listen: self.admin.listen,
            },
            routes,
        })
    }
}

impl RawRedis {
    fn validate(
        self,
        origin_timeout: Duration,
        line_of: &dyn Fn(std::ops::Range<usize>) -> Option<usize>,
    ) -> Result<RedisConfig, ConfigError> {
        let url_line = line_of(self.url.span());
        let url = self.url.into_inner();
        if url.starts_with("rediss://") {
            return Err(invalid(
                "cache.redis.url",
                url_line,
                "TLS (rediss://) is not supported yet: reach Redis over a private network or a local TLS tunnel",
            ));
        }
        let scheme_ok = ["redis://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if !scheme_ok {
            return Err(invalid(
                "cache.redis.url",
                url_line,
                "must start with redis:// or redis+unix://",
            ));
        }
        if let Err(err) = redis::Client::open(url.as_str()) {
            return Err(invalid("cache.redis.url", url_line, &format!("not a Redis URL: {err}")));
        }
        let key_prefix = match self.key_prefix {
            Some(prefix) if prefix.get_ref().chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(invalid(
                    "cache.redis.key_prefix",
                    line_of(prefix.span()),
                    "must not contain spaces or control characters",
                ));
            }
            Some(prefix) => prefix.into_inner(),
            None => DEFAULT_REDIS_KEY_PREFIX.to_owned(),
        };
        let lock_ttl = self.lock_ttl.map_or(DEFAULT_REDIS_LOCK_TTL, |d| d.0);
        if lock_ttl < origin_timeout {
            return Err(invalid(
                "cache.redis.lock_ttl",
                None,
                &format!(
                    "must be at least origin.timeout ({}): a lock must outlive the render it guards",
                    humantime::format_duration(origin_timeout)
                ),
            ));
        }
        let timeout = self.timeout.map_or(DEFAULT_REDIS_TIMEOUT, |d| d.0);
        if timeout.is_zero() {
            return Err(invalid("cache.redis.timeout", None, "must be above zero"));
        }
        if timeout >= lock_ttl {
            return Err(invalid(
                "cache.redis.timeout",
                None,
                "must be shorter than cache.redis.lock_ttl",
            ));
        }
        Ok(RedisConfig {
            url,
            key_prefix,
            lock_ttl,
            timeout,
        })
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerConfig, ConfigError> {
        let nonzero = |key: &str, value: Option<HumanDuration>, default: Duration| match value {
            Some(d) if d.0.is_zero() => Err(invalid(key, None, "must be above zero")),
            Some(d) => Ok(d.0),
            None => Ok(default),
        };
        let max_header_size = self.max_header_size.map_or(DEFAULT_MAX_HEADER_SIZE, |b| b.0);
        if !(MIN_MAX_HEADER_SIZE..=u64::from(u32::MAX)).contains(&max_header_size) {
            return Err(invalid(
                "server.max_header_size",
                None,
                "must be between 8KiB (hyper's smallest read buffer) and 4GiB",
            ));
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=MAX_CONNECTION_LIMIT).contains(&max_connections) {
            return Err(invalid("server.max_connections", None, "must be between 1 and 1000000"));
        }
        Ok(ServerConfig {
            shutdown_timeout: self.shutdown_timeout.map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0),
            header_read_timeout: nonzero(
                "server.header_read_timeout",
                self.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            idle_timeout: nonzero("server.idle_timeout", self.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
            max_header_size,
            max_connections,
        })
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

fn is_namespace(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn invalid(key: &str, line: Option<usize>, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        line,
        reason: reason.to_owned(),
    }
}

/// A duration written as `"10s"`, `"5m"`, `"1h 30m"` (humantime) or as whole seconds.
#[derive(Clone, Copy)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10s\", \"5m\" or \"1h\", or whole seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(|s| HumanDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|err| format!("bad duration {v:?} ({err}); use e.g. \"10s\", \"5m\", \"1h\""))
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

/// A byte size written as `"256MiB"`, `"8 MB"` or a plain number of bytes.
#[derive(Clone, Copy)]
struct ByteCount(u64);

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"256MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ByteCount)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse::<bytesize::ByteSize>()
                    .map(|b| ByteCount(b.as_u64()))
                    .map_err(|err| E::custom(format!("bad size {v:?} ({err}); use e.g. \"256MiB\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The origin base URL: `http://host:port[/prefix]`.
struct OriginUrl(Uri);

impl<'de> Deserialize<'de> for OriginUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let uri: Uri = text
            .parse()
            .map_err(|err| de::Error::custom(format!("bad origin url {text:?}: {err}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(de::Error::custom(
                    "https origins are not supported yet: run isr-proxy next to the origin and use http://",
                ));
            }
            _ => {
                return Err(de::Error::custom(format!(
                    "origin url {text:?} must start with http://"
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(de::Error::custom(format!("origin url {text:?} has no host")));
        }
        if uri.query().is_some() {
            return Err(de::Error::custom(format!("origin url {text:?} must not have a query")));
        }
        Ok(OriginUrl(uri))
    }
}

#[cfg(test)]
mod tests;
