//! Measurements shared by the load examples: this process's resident memory (now and at its peak, from /proc),
//! clients that time cache hits, and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Resident set size of this process now, from `/proc/self/statm` (Linux); 0 elsewhere.
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The most this process has held resident since it started (`VmHWM` in `/proc/self/status`); 0 elsewhere.
pub(crate) fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Bytes as MiB, for printing.
pub(crate) fn mib(bytes: impl Into<f64>) -> f64 {
    bytes.into() / 1_048_576.0
}

/// p50, p99 and the maximum of a set of request latencies.
pub(crate) struct Percentiles {
    /// How many latencies were summarised.
    pub(crate) count: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Percentiles {
    /// Summarises `latencies` (in any order); all zero when empty.
    pub(crate) fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| {
            let last = latencies.len().saturating_sub(1);
            latencies
                .get(((last as f64) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Self {
            count: latencies.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} requests",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.count
        )
    }
}

/// One request: when it was sent and how long its whole answer took.
pub(crate) type Sample = (Instant, Duration);

/// `clients` HTTP clients, each sending one GET at a time to `url_of(client, n)` for its n-th request, until
/// `stop`. They return every request's [`Sample`] and how many answers were not a 2xx `x-isr-cache: HIT`.
pub(crate) fn spawn_hitters<F>(
    clients: usize,
    stop: &Arc<AtomicBool>,
    url_of: F,
) -> tokio::task::JoinHandle<(Vec<Sample>, usize)>
where
    F: Fn(usize, u64) -> String + Clone + Send + 'static,
{
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build_http::<Empty<Bytes>>();
    let mut workers = tokio::task::JoinSet::new();
    for me in 0..clients {
        let (client, stop, url_of) = (client.clone(), stop.clone(), url_of.clone());
        workers.spawn(async move {
            let (mut samples, mut not_hits) = (Vec::new(), 0usize);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Ok(uri) = url_of(me, n).parse::<hyper::Uri>() else {
                    not_hits += 1;
                    continue;
                };
                let sent = Instant::now();
                let hit = match client.get(uri).await {
                    Ok(response) => {
                        let is_hit = response.status().is_success()
                            && response.headers().get("x-isr-cache").is_some_and(|v| v == "HIT");
                        response.into_body().collect().await.is_ok() && is_hit
                    }
                    Err(_) => false,
                };
                samples.push((sent, sent.elapsed()));
                not_hits += usize::from(!hit);
            }
            (samples, not_hits)
        });
    }
    tokio::spawn(async move {
        let (mut samples, mut not_hits) = (Vec::new(), 0);
        while let Some(Ok((more, missed))) = workers.join_next().await {
            samples.extend(more);
            not_hits += missed;
        }
        (samples, not_hits)
    })
}
