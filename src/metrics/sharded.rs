//! Metrics split into per-thread shards: what every cache hit records (its request count and latency) is added to
//! a cache line the recording thread has to itself, so cores serving hits never fight over one counter. A scrape
//! sums the shards.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Most shards a metric has: beyond this many cores, threads share shards two (or more) to one.
const MAX_SHARDS: usize = 64;

/// How many shards each metric has: the cores this process may use, rounded up to a power of two.
fn shard_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// The calling thread's shard index (below [`shard_count`]): threads take indexes in turn on first use, so the
/// runtime's worker threads (started together, and at most one per core by default) each get their own.
pub(super) fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|index| index & (shard_count() - 1))
}

/// One shard's value on a cache line of its own (128 bytes: two lines, as adjacent-line prefetching pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

/// One padded `T` per shard.
pub(super) fn shards<T: Default>() -> Box<[Padded<T>]> {
    (0..shard_count()).map(|_| Padded::default()).collect()
}

/// A Prometheus counter whose increments go to the recording thread's shard. Clones share the count.
#[derive(Debug, Clone)]
pub(super) struct ShardedCounter {
    shards: Arc<[Padded<AtomicU64>]>,
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self {
            shards: shards().into(),
        }
    }
}

impl ShardedCounter {
    /// Adds one.
    pub(super) fn inc(&self) {
        if let Some(shard) = self.shards.get(shard_index()) {
            shard.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count: the sum of the shards.
    pub(super) fn get(&self) -> u64 {
        self.shards.iter().map(|shard| shard.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_from_many_threads_all_count() {
        let counter = ShardedCounter::default();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let counter = counter.clone();
                scope.spawn(move || (0..1000).for_each(|_| counter.inc()));
            }
        });
        assert_eq!(counter.get(), 8000);
    }

    #[test]
    fn each_shard_has_a_cache_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Padded<AtomicU64>>(), 128);
        assert!(shard_index() < shard_count());
        assert!(shard_count().is_power_of_two());
    }
}
