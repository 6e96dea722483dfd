//! Prerendering at startup (Next.js's build-time generation): every path listed on a route or returned by
//! `prerender.paths_url` is fetched once, with bounded concurrency and visible progress.
//!
//! A failed path is reported and left to be rendered on demand later; it never stops startup. Pages already
//! cached fresh (from disk or another instance) are not fetched again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::cache::CacheKey;
use crate::config::PrerenderConfig;
use crate::origin::{FetchRequest, Fetched, OriginClient};
use crate::regen::{RegenOutcome, Regenerator};
use crate::route::{RouteTable, normalize_path};

/// How often progress is logged while prerendering.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What a prerender run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrerenderReport {
    /// Paths attempted.
    pub total: usize,
    /// Paths stored (or already fresh).
    pub done: usize,
    /// Paths that failed or were not cacheable.
    pub failed: usize,
}

/// Where a prerender run is, for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrerenderProgress {
    /// Counts so far (`total` is known once the path list is read).
    pub report: PrerenderReport,
    /// Whether the run is over (or there was nothing to prerender).
    pub finished: bool,
}

#[derive(Debug, Default)]
struct Progress {
    total: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
    finished: AtomicBool,
}

/// Everything prerendering needs.
pub struct Prerenderer {
    config: PrerenderConfig,
    routes: RouteTable,
    regen: Regenerator,
    origin: OriginClient,
    progress: Progress,
}

impl Prerenderer {
    /// A prerenderer over `routes`' `prerender` lists and `config.paths_url`.
    pub fn new(config: PrerenderConfig, routes: RouteTable, regen: Regenerator, origin: OriginClient) -> Self {
        let prerenderer = Self {
            config,
            routes,
            regen,
            origin,
            progress: Progress::default(),
        };
        if !prerenderer.has_work() {
            prerenderer.progress.finished.store(true, Ordering::Relaxed);
        }
        prerenderer
    }

    /// How far prerendering has got (read by `/health` while it runs).
    pub fn progress(&self) -> PrerenderProgress {
        let progress = &self.progress;
        PrerenderProgress {
            report: PrerenderReport {
                total: progress.total.load(Ordering::Relaxed),
                done: progress.done.load(Ordering::Relaxed),
                failed: progress.failed.load(Ordering::Relaxed),
            },
            finished: progress.finished.load(Ordering::Relaxed),
        }
    }

    /// Whether the server should prerender before accepting connections.
    pub fn waits(&self) -> bool {
        self.config.wait
    }

    /// Whether there is anything to prerender.
    pub fn has_work(&self) -> bool {
        self.config.paths_url.is_some() || self.routes.rules().iter().any(|r| !r.prerender.is_empty())
    }

    /// Fetches every listed path once; logs progress every few seconds and a summary at the end.
    pub async fn run(self: Arc<Self>) -> PrerenderReport {
        let started = Instant::now();
        let mut paths: Vec<String> = self
            .routes
            .rules()
            .iter()
            .flat_map(|r| r.prerender.iter().cloned())
            .collect();
        paths.extend(self.listed_by_origin().await);
        let mut keyed = Vec::with_capacity(paths.len());
        for path in paths {
            let (raw_path, query) = path
                .split_once('?')
                .map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
            let matched = normalize_path(raw_path)
                .ok()
                .and_then(|normal| self.routes.cached_route(&normal, query, Vec::new()));
            match matched {
                Some(matched) => keyed.push(matched),
                None => tracing::warn!(path = %path, "prerender path is not under a cached route; skipped"),
            }
        }
        keyed.sort_by(|a, b| a.key.path_and_query().cmp(b.key.path_and_query()));
        keyed.dedup_by(|a, b| a.key == b.key);

        let mut report = PrerenderReport {
            total: keyed.len(),
            ..PrerenderReport::default()
        };
        self.progress.total.store(report.total, Ordering::Relaxed);
        tracing::info!(
            total = report.total,
            concurrency = self.config.concurrency,
            "prerendering"
        );
        let mut pending = keyed.into_iter();
        let mut running = JoinSet::new();
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.tick().await;
        loop {
            while running.len() < self.config.concurrency {
                let Some(matched) = pending.next() else { break };
                let regen = self.regen.clone();
                regen.mark_known(matched.key.clone());
                running.spawn(async move {
                    let outcome = regen.warm(matched.key.clone(), matched.rule.store_policy()).await;
                    (matched.key, outcome)
                });
            }
            let joined = tokio::select! {
                joined = running.join_next() => joined,
                _ = progress.tick() => {
                    tracing::info!(done = report.done, failed = report.failed, total = report.total, "prerendering");
                    continue;
                }
            };
            let Some(joined) = joined else { break };
            match joined {
                Ok((_, RegenOutcome::Stored(_))) => report.done += 1,
                Ok((key, outcome)) => {
                    report.failed += 1;
                    tracing::warn!(key = %key, outcome = ?outcome, "prerender failed; the page will render on demand");
                }
                Err(err) => {
                    report.failed += 1;
                    tracing::error!(error = %err, "prerender task failed");
                }
            }
            self.progress.done.store(report.done, Ordering::Relaxed);
            self.progress.failed.store(report.failed, Ordering::Relaxed);
        }
        self.progress.finished.store(true, Ordering::Relaxed);
        tracing::info!(
            done = report.done,
            failed = report.failed,
            total = report.total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prerendering finished"
        );
        report
    }

    /// Paths from `paths_url` (a JSON array of strings); a bad answer is logged and yields none.
    async fn listed_by_origin(&self) -> Vec<String> {
        let Some(url) = &self.config.paths_url else {
            return Vec::new();
        };
        let key = CacheKey::new(url, None, Vec::new());
        let page = match self.origin.fetch(&key, &FetchRequest::default()).await {
            Ok(Fetched::Complete(page)) if page.status.is_success() => page,
            Ok(Fetched::Complete(page)) => {
                tracing::error!(paths_url = %url, status = page.status.as_u16(), "prerender paths_url failed");
                return Vec::new();
            }
            Ok(Fetched::Oversized(_)) => {
                tracing::error!(paths_url = %url, "prerender paths_url answer larger than max_entry_size");
                return Vec::new();
            }
            Err(err) => {
                tracing::error!(paths_url = %url, error = %err, "prerender paths_url failed");
                return Vec::new();
            }
        };
        match serde_json::from_slice::<Vec<String>>(&page.body) {
            Ok(paths) => paths,
            Err(err) => {
                tracing::error!(paths_url = %url, error = %err, "prerender paths_url must answer a JSON array of paths");
                Vec::new()
            }
        }
    }
}
