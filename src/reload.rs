//! Reloading the config without a restart (SIGHUP), nginx-style.
//!
//! The server and the admin listener read the current [`Proxy`] from a [`LiveProxy`] once per request, so a
//! request finishes on the config it started with. A reload reads and validates the file; an invalid one is
//! refused (logged with the key at fault) and the running config keeps serving. A valid one becomes a new
//! `Proxy` built by [`Proxy::reconfigured`]: it shares the running cache (memory, disk, Redis and their
//! connections), metrics, single-flight state and, when `[origin]` did not change, the pooled origin
//! connections. So the cache stays warm and nothing in flight is lost.
//!
//! Some settings are fixed by what was built at startup (sockets, the cache's bound, the tiers): a change to
//! one of them is logged and shown in `/health` as needing a restart, and the running value is kept while the
//! rest of the file applies ([`restart_only_changes`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::proxy::Proxy;

/// The proxy serving now; a reload swaps it. Reading it costs one atomic reference count on the proxy, which
/// every core shares: the public listener reads it through a [`ConnectionProxy`] instead.
pub struct LiveProxy(ArcSwap<Proxy>);

impl LiveProxy {
    /// Serves `proxy` until a reload replaces it.
    pub fn new(proxy: Arc<Proxy>) -> Arc<Self> {
        Arc::new(Self(ArcSwap::new(proxy)))
    }

    /// The proxy a request that starts now runs on.
    pub fn current(&self) -> Arc<Proxy> {
        self.0.load_full()
    }

    fn replace(&self, proxy: Arc<Proxy>) {
        self.0.store(proxy);
    }
}

/// One connection's handle on the [`LiveProxy`]. A request takes a reference count on a handle only its
/// connection shares, not on the proxy every core serves from (a cache line all cores would otherwise write on
/// every request); the live proxy is only read, to see whether a reload replaced it.
pub struct ConnectionProxy {
    live: Arc<LiveProxy>,
    held: ArcSwap<Arc<Proxy>>,
}

impl ConnectionProxy {
    /// A handle for a new connection, on the proxy serving now.
    pub fn new(live: Arc<LiveProxy>) -> Self {
        let held = ArcSwap::from_pointee(live.current());
        Self { live, held }
    }

    /// The proxy a request that starts now runs on: the held one, unless a reload has replaced it since.
    pub fn current(&self) -> Arc<Arc<Proxy>> {
        let held = self.held.load_full();
        if Arc::ptr_eq(&*held, &*self.live.0.load()) {
            return held;
        }
        let fresh = Arc::new(self.live.current());
        self.held.store(fresh.clone());
        fresh
    }
}

/// Which reload built a proxy, and which changed settings it could not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigGeneration {
    /// 0 for the config read at startup, then one more per applied reload.
    pub number: u64,
    /// Settings changed in the file that only take effect after a restart (their running values are kept).
    pub restart_needed: Vec<&'static str>,
}

/// Reloads the config file into a [`LiveProxy`].
pub struct Reloader {
    path: PathBuf,
    live: Arc<LiveProxy>,
    /// The config in effect (restart-only settings as at startup).
    running: Mutex<Config>,
}

impl Reloader {
    /// A reloader for the file at `path`, whose config `running` is what `live` serves now.
    pub fn new(path: PathBuf, running: Config, live: Arc<LiveProxy>) -> Self {
        Self {
            path,
            live,
            running: Mutex::new(running),
        }
    }

    /// Re-reads the file and, if it is valid, serves it from now on. An invalid file changes nothing. Outcomes
    /// are logged and counted (`isr_config_reloads_total`).
    pub fn reload(&self) -> Result<ConfigGeneration, ConfigError> {
        let loaded = match Config::load(&self.path) {
            Ok(config) => config,
            Err(err) => {
                let current = self.live.current();
                current.metrics().record_config_reload(false);
                tracing::error!(error = %err, generation = current.generation(), "config reload refused; the running config keeps serving");
                return Err(err);
            }
        };
        // Reloads are serialised here, so the proxy read under the lock is the latest and numbers follow on.
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.live.current();
        let restart_needed = restart_only_changes(&running, &loaded);
        let config = keep_restart_only(&running, loaded);
        let generation = ConfigGeneration {
            number: current.generation() + 1,
            restart_needed,
        };
        let keep_origin =
            config.origin == running.origin && config.cache.max_entry_size == running.cache.max_entry_size;
        let next = current.reconfigured(&config, generation.clone(), keep_origin);
        self.live.replace(next.clone());
        *running = config;
        drop(running);
        next.metrics().record_config_reload(true);
        if generation.restart_needed.is_empty() {
            tracing::info!(
                generation = generation.number,
                routes = next.routes().rules().len(),
                "config reloaded"
            );
        } else {
            tracing::warn!(
                generation = generation.number,
                restart_needed = ?generation.restart_needed,
                "config reloaded; these changed settings keep their running values until a restart"
            );
        }
        // Prerendering a new list runs in the background (never holding requests back).
        tokio::spawn(async move { next.start().await });
        Ok(generation)
    }
}

/// The settings that differ between `running` and `loaded` but cannot change in a running process: the
/// listeners and their limits, the memory bound, and the disk and Redis tiers.
pub fn restart_only_changes(running: &Config, loaded: &Config) -> Vec<&'static str> {
    let checks = [
        ("listen", running.listen != loaded.listen),
        ("admin.listen", running.admin != loaded.admin),
        ("server", running.server != loaded.server),
        ("cache.max_size", running.cache.max_size != loaded.cache.max_size),
        (
            "cache.dir (and max_disk_size, namespace, keep_namespaces)",
            running.cache.disk != loaded.cache.disk,
        ),
        ("cache.redis", running.cache.redis != loaded.cache.redis),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// `loaded` with the restart-only settings of `running`, i.e. what the process actually runs after a reload.
fn keep_restart_only(running: &Config, mut loaded: Config) -> Config {
    loaded.listen = running.listen;
    loaded.admin = running.admin.clone();
    loaded.server = running.server.clone();
    loaded.cache.max_size = running.cache.max_size;
    loaded.cache.disk = running.cache.disk.clone();
    loaded.cache.redis = running.cache.redis.clone();
    loaded
}

/// Reloads on every SIGHUP until the process ends (`systemctl reload`, `kill -HUP`).
#[cfg(unix)]
pub async fn reload_on_sighup(reloader: Arc<Reloader>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP; config reload disabled");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // Errors are logged and counted by `reload`.
        let _ = reloader.reload();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_toml_str(&format!("{extra}\n[origin]\nurl = \"http://127.0.0.1:1\"\n")).expect("valid config")
    }

    #[test]
    fn settings_fixed_at_startup_are_reported_and_kept() {
        let running = config("listen = \"127.0.0.1:3000\"\n[cache]\nmax_size = \"64MiB\"\n");
        let loaded = config(
            "listen = \"127.0.0.1:4000\"\n[cache]\nmax_size = \"64MiB\"\nretry_after = \"1s\"\n\
             [[route]]\npath = \"/a\"\nrevalidate = 5\n",
        );
        assert_eq!(restart_only_changes(&running, &loaded), ["listen"]);
        let applied = keep_restart_only(&running, loaded);
        assert_eq!(applied.listen, running.listen, "the socket stays where it is");
        assert_eq!(applied.cache.retry_after.as_secs(), 1, "live settings apply");
        assert_eq!(applied.routes.rules().len(), 1, "routes apply");
        assert!(
            restart_only_changes(
                &running,
                &config("listen = \"127.0.0.1:3000\"\n[cache]\nmax_size = \"64MiB\"\ncompress = false\n")
            )
            .is_empty()
        );
    }
}
