//! Histograms of atomics: recording is a bucket search and two relaxed adds on the recording thread's shard, where
//! prometheus-client's own histogram takes a mutex on every observation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::sharded::{Padded, shard_index, shards};

/// Latency bucket bounds in seconds: from a sub-millisecond cache hit to a render near the default 10 s timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `route` label of [`RouteHistograms`] for a route it was not built with.
pub const OTHER_ROUTE: &str = "other";

/// A fixed-bucket latency histogram of atomics: `observe` is a bucket search and two relaxed adds, on the
/// recording thread's own shard (see [`super::sharded`]): the response-time histogram is written on every hit.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    shards: Arc<[Padded<HistogramShard>]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            shards: shards().into(),
        }
    }
}

#[derive(Debug, Default)]
struct HistogramShard {
    /// Non-cumulative counts; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Adds one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        let Some(Padded(shard)) = self.shards.get(shard_index()) else {
            return;
        };
        shard.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        shard.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        // prometheus-client makes the buckets cumulative itself: hand it per-bucket counts, summed over shards.
        let mut count = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for i in 0..=LATENCY_BUCKETS.len() {
            let in_bucket: u64 = self
                .shards
                .iter()
                .map(|Padded(shard)| shard.buckets[i].load(Ordering::Relaxed))
                .sum();
            count += in_bucket;
            buckets.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), in_bucket));
        }
        // Read concurrently with observations: the count printed is the one the buckets add up to.
        let sum_micros: u64 = self
            .shards
            .iter()
            .map(|Padded(shard)| shard.sum_micros.load(Ordering::Relaxed))
            .sum();
        let sum = sum_micros as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// One [`LatencyHistogram`] per route pattern, labelled `route`. The routes are fixed when it is built (the
/// config's), so recording is a map read and no lock; an unknown route counts under [`OTHER_ROUTE`].
#[derive(Debug, Clone, Default)]
pub struct RouteHistograms {
    by_route: Arc<HashMap<String, LatencyHistogram>>,
    other: LatencyHistogram,
}

impl RouteHistograms {
    /// Histograms for `routes`.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Self {
        let by_route = routes
            .into_iter()
            .map(|route| (route.to_owned(), LatencyHistogram::default()))
            .collect();
        Self {
            by_route: Arc::new(by_route),
            other: LatencyHistogram::default(),
        }
    }

    /// Adds one observation for `route`.
    pub fn observe(&self, route: &str, elapsed: Duration) {
        self.by_route.get(route).unwrap_or(&self.other).observe(elapsed);
    }
}

impl TypedMetric for RouteHistograms {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for RouteHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let mut routes: Vec<(&str, &LatencyHistogram)> =
            self.by_route.iter().map(|(route, h)| (route.as_str(), h)).collect();
        routes.sort_by_key(|(route, _)| *route);
        routes.push((OTHER_ROUTE, &self.other));
        for (route, histogram) in routes {
            let label = RouteLabel {
                route: route.to_owned(),
            };
            histogram.encode(encoder.encode_family(&label)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
