//! The TOML config file: its schema, defaults and validation.
//!
//! Raw serde structs (`deny_unknown_fields`, so a typo is an error, not a silently ignored key) are turned into a
//! validated [`Config`] with real types (`Duration`, byte counts, `Uri`, a [`RouteTable`]). Every error names the
//! key and, where the file has one, the line. One file per section: [`origin`], [`cache`], [`server`] (with
//! `[admin]`), [`revalidate`], [`routes`] (with `[prerender]` and `[fallback]`); [`values`] holds the value forms
//! they share (durations, sizes). This file only puts the sections together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::route::RouteTable;

mod cache;
mod origin;
mod revalidate;
mod routes;
mod server;
mod tls;
mod values;

pub use cache::{
    CacheConfig, DEFAULT_EXPIRE, DEFAULT_KEEP_NAMESPACES, DEFAULT_MAX_DISK_SIZE, DEFAULT_MAX_ENTRY_SIZE,
    DEFAULT_MAX_SIZE, DEFAULT_NAMESPACE, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_LOCK_TTL, DEFAULT_REDIS_TIMEOUT,
    DEFAULT_RETRY_AFTER, DiskConfig, RedisConfig,
};
pub use origin::{
    DEFAULT_ORIGIN_MAX_CONNECTIONS, DEFAULT_ORIGIN_QUEUE_TIMEOUT, DEFAULT_ORIGIN_TIMEOUT, HostHeader, OriginConfig,
};
pub use revalidate::{DEFAULT_REVALIDATE_PATH, DEFAULT_TAGS_HEADER, DEFAULT_TOKEN_ENV, RevalidateConfig, Token};
pub use routes::{DEFAULT_CRAWLERS, DEFAULT_PRERENDER_CONCURRENCY, FallbackConfig, PrerenderConfig};
pub use server::{
    AdminConfig, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_SHUTDOWN_TIMEOUT, MAX_WORKERS, MIN_MAX_HEADER_SIZE, ServerConfig, available_cores,
};
pub use tls::PemFile;

/// Where the proxy listens when `listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Upper bound of `origin.max_connections` and `server.max_connections`: far above any real limit, far below
/// what a semaphore can count.
pub const MAX_CONNECTION_LIMIT: usize = 1_000_000;

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
    origin: origin::RawOrigin,
    #[serde(default)]
    cache: cache::RawCache,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    revalidate: revalidate::RawRevalidate,
    #[serde(default)]
    prerender: routes::RawPrerender,
    #[serde(default)]
    fallback: routes::RawFallback,
    #[serde(default)]
    admin: server::RawAdmin,
    #[serde(default, rename = "route")]
    routes: Vec<routes::RawRoute>,
}

/// Turns a byte span of the config text into its 1-based line, for error messages.
type LineOf<'a> = &'a dyn Fn(std::ops::Range<usize>) -> Option<usize>;

impl RawConfig {
    fn validate(self, text: &str) -> Result<Config, ConfigError> {
        let line_of = |span: std::ops::Range<usize>| Some(text[..span.start.min(text.len())].lines().count().max(1));
        let origin = self.origin.validate(&line_of)?;
        let routes = routes::route_table(self.routes, self.cache.default_expire(), &line_of)?;
        Ok(Config {
            listen: self.listen.unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000)))
            }),
            cache: self.cache.validate(origin.timeout, &line_of)?,
            origin,
            server: self.server.validate()?,
            revalidate: self.revalidate.validate(&line_of)?,
            prerender: self.prerender.validate(&line_of)?,
            fallback: self.fallback.validate(),
            admin: self.admin.validate(),
            routes,
        })
    }
}

/// An optional path setting, which must be absolute.
fn spanned_path(
    key: &str,
    value: Option<toml::Spanned<String>>,
    line_of: LineOf<'_>,
) -> Result<Option<String>, ConfigError> {
    match value {
        Some(p) if !p.get_ref().starts_with('/') => Err(invalid(key, line_of(p.span()), "must start with '/'")),
        Some(p) => Ok(Some(p.into_inner())),
        None => Ok(None),
    }
}

fn invalid(key: &str, line: Option<usize>, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        line,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests;
