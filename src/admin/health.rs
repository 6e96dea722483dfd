//! `GET /health` (for load balancers and probes) and `GET /stats` (the headline figures, for people and
//! `isr-proxy stats`), read from the proxy's state now.

use super::api::{
    CacheHealth, CacheStats, ConfigHealth, Health, OriginHealth, PrerenderHealth, RegenerationStats, Stats, TierHealth,
};
use crate::proxy::Proxy;

impl Health {
    /// Reads the proxy's health now.
    pub async fn of(proxy: &Proxy) -> Self {
        // moka counts lazily: apply pending housekeeping so the figures are current.
        proxy.cache().run_pending_tasks().await;
        let snapshot = proxy.snapshot();
        let progress = proxy.prerender_progress();
        Health {
            ok: proxy.is_ready(),
            cache: CacheHealth {
                entries: snapshot.cache_entries,
                bytes: snapshot.cache_bytes,
                regenerating: snapshot.regenerations_in_flight,
            },
            origin: OriginHealth {
                reachable: proxy.metrics().origin_reachable(),
            },
            prerender: PrerenderHealth {
                total: progress.report.total,
                done: progress.report.done,
                failed: progress.report.failed,
                finished: progress.finished,
            },
            tiers: tiers(proxy),
            config: ConfigHealth {
                generation: proxy.config_generation().number,
                restart_needed: proxy
                    .config_generation()
                    .restart_needed
                    .iter()
                    .map(|key| (*key).to_owned())
                    .collect(),
                actions_enabled: proxy.revalidator().is_enabled(),
            },
        }
    }
}

impl Stats {
    /// Reads the headline figures now.
    pub async fn of(proxy: &Proxy) -> Self {
        proxy.cache().run_pending_tasks().await;
        let snapshot = proxy.snapshot();
        let requests: std::collections::BTreeMap<String, u64> = proxy
            .metrics()
            .request_counts()
            .into_iter()
            .map(|(label, count)| (label.to_owned(), count))
            .collect();
        let count = |label: &str| requests.get(label).copied().unwrap_or(0);
        let hits = count("HIT") + count("STALE");
        let lookups = hits + count("MISS");
        let (_, failures) = proxy.regenerator().history();
        Stats {
            hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
            requests,
            cache: CacheStats {
                entries: snapshot.cache_entries,
                bytes: snapshot.cache_bytes,
                max_bytes: snapshot.cache_max_bytes,
                evictions: snapshot.cache_evictions,
            },
            regenerations: RegenerationStats {
                total: proxy.metrics().regeneration_count(),
                in_flight: snapshot.regenerations_in_flight,
                failed_total: snapshot.regeneration_failures,
                recent_failures: failures.len(),
            },
            origin: OriginHealth {
                reachable: proxy.metrics().origin_reachable(),
            },
            origin_fetches: proxy.metrics().origin_fetch_count(),
            redis: proxy.redis_state().map(|state| state.as_str().to_owned()),
            tiers: tiers(proxy),
            client_connections: proxy.metrics().client_connections(),
        }
    }
}

fn tiers(proxy: &Proxy) -> Vec<TierHealth> {
    let states = proxy.cache().tier_states().into_iter();
    states
        .map(|(name, up)| TierHealth {
            name: name.to_owned(),
            up,
        })
        .collect()
}
