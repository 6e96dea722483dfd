//! `[cache]` and `[cache.redis]`: memory bounds, persistence to disk and the shared Redis tier.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{ByteCount, HumanDuration};
use super::{ConfigError, LineOf, invalid};

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
/// Prefix of every Redis key isr-proxy writes, so several sites (or deployments) can share one Redis.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "isr:";
/// How long a fleet-wide regeneration lock lives if its holder crashes: above the default origin timeout, so a
/// slow render keeps its lock, and short enough that a crashed instance does not hold a page back for long.
pub const DEFAULT_REDIS_LOCK_TTL: Duration = Duration::from_secs(30);
/// Budget of one Redis read, lock or probe on the request path: a healthy Redis on the same network answers in
/// well under a millisecond, and a request must never wait long because Redis is slow.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// `[cache]`.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
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

impl RawCache {
    /// The default `expire` of routes (`cache.expire`), which the route section needs before the rest.
    pub(super) fn default_expire(&self) -> Duration {
        self.expire.map_or(DEFAULT_EXPIRE, |d| d.0)
    }

    pub(super) fn validate(self, origin_timeout: Duration, line_of: LineOf<'_>) -> Result<CacheConfig, ConfigError> {
        let max_size = self.max_size.map_or(DEFAULT_MAX_SIZE, |b| b.0);
        let max_entry_size = self.max_entry_size.map_or(DEFAULT_MAX_ENTRY_SIZE, |b| b.0);
        if max_entry_size > max_size {
            return Err(invalid("cache.max_entry_size", None, "must not exceed cache.max_size"));
        }
        let namespace = match self.namespace {
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
        let keep_namespaces = self.keep_namespaces.unwrap_or(DEFAULT_KEEP_NAMESPACES);
        if keep_namespaces == 0 {
            return Err(invalid(
                "cache.keep_namespaces",
                None,
                "must be at least 1 (the current namespace)",
            ));
        }
        let disk = self.dir.map(|dir| DiskConfig {
            dir,
            max_disk_size: self.max_disk_size.map_or(DEFAULT_MAX_DISK_SIZE, |b| b.0),
            namespace,
            keep_namespaces,
        });
        let redis = match self.redis {
            Some(raw) => Some(raw.validate(origin_timeout, line_of)?),
            None => None,
        };
        Ok(CacheConfig {
            max_size,
            max_entry_size,
            retry_after: self.retry_after.map_or(DEFAULT_RETRY_AFTER, |d| d.0),
            compress: self.compress.unwrap_or(true),
            disk,
            redis,
        })
    }
}

impl RawRedis {
    fn validate(self, origin_timeout: Duration, line_of: LineOf<'_>) -> Result<RedisConfig, ConfigError> {
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

fn is_namespace(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
