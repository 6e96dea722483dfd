//! `[server]` and `[admin]`: the listeners and their limits against slow or greedy clients.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::values::{ByteCount, HumanDuration};
use super::{ConfigError, MAX_CONNECTION_LIMIT, invalid};

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
/// Client connections served at once; more wait in the kernel's accept queue. Keep it under the process's
/// file-descriptor limit minus `origin.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Upper bound of `server.workers`: far above any machine's cores, low enough to catch a typo.
pub const MAX_WORKERS: usize = 1024;

/// The cores this process may run on (its CPU affinity and cgroup quota, as the standard library reads them):
/// the default number of worker threads, one per core, so no core idles and none is oversubscribed.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `[server]`: the public listener's behaviour and its limits against slow or greedy clients.
#[derive(Debug, Clone, PartialEq)]
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
    /// Set `SO_REUSEPORT` on the public listener, so a new process can bind the same port during an upgrade.
    pub reuse_port: bool,
    /// Tokio worker threads serving requests (`server.workers`; default: [`available_cores`]).
    pub workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reuse_port: false,
            workers: available_cores(),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminConfig {
    /// Address of the admin listener; `None` (the default) runs none.
    pub listen: Option<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    shutdown_timeout: Option<HumanDuration>,
    header_read_timeout: Option<HumanDuration>,
    idle_timeout: Option<HumanDuration>,
    max_header_size: Option<ByteCount>,
    max_connections: Option<usize>,
    reuse_port: Option<bool>,
    workers: Option<usize>,
}

impl RawServer {
    pub(super) fn validate(self) -> Result<ServerConfig, ConfigError> {
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
        let workers = self.workers.unwrap_or_else(available_cores);
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(invalid("server.workers", None, "must be between 1 and 1024"));
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
            reuse_port: self.reuse_port.unwrap_or(false),
            workers,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<SocketAddr>,
}

impl RawAdmin {
    pub(super) fn validate(self) -> AdminConfig {
        AdminConfig { listen: self.listen }
    }
}
