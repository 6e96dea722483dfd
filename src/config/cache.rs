//! `[cache]` and `[cache.redis]`: memory bounds, persistence to disk and the shared Redis tier.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::tls::PemFile;
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
    /// `redis://[user:password@]host[:port][/db]`, `rediss://` (TLS) or `redis+unix://`.
    pub url: String,
    /// Redis Cluster seed nodes (`url` first); `None` for a single Redis (or a primary with replicas).
    pub cluster: Option<Vec<String>>,
    /// CA certificates trusted for `rediss://` instead of the system's.
    pub ca_file: Option<PemFile>,
    /// Client certificate and key, for a Redis that requires them (`tls-auth-clients yes`).
    pub client_identity: Option<(PemFile, PemFile)>,
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
    url: Option<toml::Spanned<String>>,
    cluster: Option<ClusterSetting>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
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
        let (url, url_line, cluster) = match (self.url, self.cluster) {
            (Some(url), cluster) => {
                let line = line_of(url.span());
                let url = url.into_inner();
                let cluster = match cluster {
                    None | Some(ClusterSetting::Enabled(false)) => None,
                    Some(ClusterSetting::Enabled(true)) => Some(vec![url.clone()]),
                    Some(ClusterSetting::Seeds(seeds)) => Some(std::iter::once(url.clone()).chain(seeds).collect()),
                };
                (url, line, cluster)
            }
            (None, Some(ClusterSetting::Seeds(seeds))) if !seeds.is_empty() => (seeds[0].clone(), None, Some(seeds)),
            (None, _) => {
                return Err(invalid(
                    "cache.redis.url",
                    None,
                    "missing: give the Redis URL (or, for a cluster, `cluster = [\"redis://node:port\", ...]`)",
                ));
            }
        };
        for node in cluster.iter().flatten().chain(std::iter::once(&url)) {
            check_redis_url(node, cluster.is_some(), url_line)?;
        }
        let tls = url.starts_with("rediss://");
        if cluster
            .iter()
            .flatten()
            .any(|node| node.starts_with("rediss://") != tls)
        {
            return Err(invalid(
                "cache.redis.cluster",
                url_line,
                "all nodes use rediss:// or none does",
            ));
        }
        let ca_file = match &self.ca_file {
            Some(path) => Some(PemFile::certificates("cache.redis.ca_file", path)?),
            None => None,
        };
        let client_identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((
                PemFile::certificates("cache.redis.client_cert", cert)?,
                PemFile::private_key("cache.redis.client_key", key)?,
            )),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("cache.redis.client_key", None, "client_cert needs client_key")),
            (None, Some(_)) => return Err(invalid("cache.redis.client_cert", None, "client_key needs client_cert")),
        };
        if !tls && (ca_file.is_some() || client_identity.is_some()) {
            let key = if ca_file.is_some() {
                "cache.redis.ca_file"
            } else {
                "cache.redis.client_cert"
            };
            return Err(invalid(key, None, "only applies to a rediss:// (TLS) url"));
        }
        let key_prefix = match self.key_prefix {
            Some(prefix) if prefix.get_ref().chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(invalid(
                    "cache.redis.key_prefix",
                    line_of(prefix.span()),
                    "must not contain spaces or control characters",
                ));
            }
            Some(prefix) if cluster.is_some() && prefix.get_ref().contains(['{', '}']) => {
                return Err(invalid(
                    "cache.redis.key_prefix",
                    line_of(prefix.span()),
                    "must not contain '{' or '}' with a cluster: isr-proxy places its keys with hash tags",
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
            cluster,
            ca_file,
            client_identity,
            key_prefix,
            lock_ttl,
            timeout,
        })
    }
}

/// `cluster = true` (the `url` is a seed node) or a list of seed node URLs.
#[derive(Deserialize)]
#[serde(untagged)]
enum ClusterSetting {
    Enabled(bool),
    Seeds(Vec<String>),
}

/// A Redis node URL: `redis://`, `rediss://` (TLS), or, for a single Redis, `redis+unix://`.
fn check_redis_url(url: &str, cluster: bool, line: Option<usize>) -> Result<(), ConfigError> {
    let key = if cluster {
        "cache.redis.cluster"
    } else {
        "cache.redis.url"
    };
    let schemes: &[&str] = if cluster {
        &["redis://", "rediss://"]
    } else {
        &["redis://", "rediss://", "redis+unix://", "unix://"]
    };
    if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
        let expected = if cluster {
            "cluster nodes are redis:// or rediss:// URLs"
        } else {
            "must start with redis://, rediss:// or redis+unix://"
        };
        return Err(invalid(key, line, expected));
    }
    if let Err(err) = redis::Client::open(url) {
        return Err(invalid(key, line, &format!("not a Redis URL: {err}")));
    }
    Ok(())
}

fn is_namespace(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
