//! The last hour of the headline figures, for the dashboard's charts: a ring of [`HistoryPoint`]s that a
//! background task fills by reading the counters the proxy keeps anyway, every [`DEFAULT_SAMPLE_INTERVAL`].
//!
//! Nothing here is on the request path: a request only bumps the counters it always bumped, and the sampler
//! reads them (a sum over the per-thread shards) a few times a minute. The ring lives as long as the admin
//! listener and follows the live proxy across reloads (the counters are carried over, so the lines go on).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use tokio::time::{Instant, MissedTickBehavior};

use super::api::{History, HistoryPoint};
use crate::metrics::REQUEST_LABELS;
use crate::proxy::Proxy;
use crate::reload::LiveProxy;

/// One point every 5 s: 720 points (about 100 KiB) hold an hour, and a chart of them still shows a burst.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How far back the ring reaches.
const SPAN: Duration = Duration::from_secs(3600);

/// The ring of samples, oldest first. Cheap to share; the lock is held only to push or copy points.
#[derive(Debug)]
pub struct HistoryRing {
    interval: Duration,
    capacity: usize,
    points: Mutex<VecDeque<HistoryPoint>>,
}

impl HistoryRing {
    /// A ring for one sample per `interval`, holding an hour of them (at least two).
    pub fn new(interval: Duration) -> Self {
        let per_hour = SPAN.as_millis() / interval.as_millis().max(1);
        let capacity = usize::try_from(per_hour).unwrap_or(usize::MAX).clamp(2, 100_000);
        Self {
            interval,
            capacity,
            points: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Adds `point`, dropping the oldest once an hour's worth is kept.
    pub fn push(&self, point: HistoryPoint) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        if points.len() == self.capacity {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// The points with a sequence number above `after` (all of them for `None`), oldest first.
    pub fn since(&self, after: Option<u64>) -> History {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        let points = match after {
            // Sequence numbers rise by one per point: the first newer one is found by arithmetic.
            Some(after) => {
                let first = points.front().map_or(0, |p| p.seq);
                let skip = after.saturating_add(1).saturating_sub(first);
                points
                    .iter()
                    .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                    .copied()
                    .collect()
            }
            None => points.iter().copied().collect(),
        };
        History {
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            request_labels: REQUEST_LABELS.iter().map(|label| (*label).to_owned()).collect(),
            points,
        }
    }
}

/// Samples whatever proxy `live` holds into `ring` every `ring`'s interval, the first one at once. Runs until
/// dropped (the admin listener aborts it when it stops).
pub async fn sample_forever(live: Arc<LiveProxy>, ring: Arc<HistoryRing>) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(ring.interval);
    // After a stall (a suspended VM), go on from now: a burst of catch-up points would all read the same.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for seq in 0.. {
        ticks.tick().await;
        let proxy = live.current();
        // moka counts lazily: apply pending housekeeping so entries and bytes are current.
        proxy.cache().run_pending_tasks().await;
        ring.push(sample(&proxy, seq, started.elapsed()));
    }
}

/// Reads the figures of one point from `proxy` now.
fn sample(proxy: &Proxy, seq: u64, elapsed: Duration) -> HistoryPoint {
    let metrics = proxy.metrics();
    let snapshot = proxy.snapshot();
    let mut requests = [0; REQUEST_LABELS.len()];
    for (slot, (_, count)) in requests.iter_mut().zip(metrics.request_counts()) {
        *slot = count;
    }
    let unix = proxy.clock().now().duration_since(UNIX_EPOCH).unwrap_or_default();
    HistoryPoint {
        seq,
        unix_ms: u64::try_from(unix.as_millis()).unwrap_or(u64::MAX),
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        requests,
        origin_fetches: metrics.origin_fetch_count(),
        regenerations: metrics.regeneration_count(),
        regeneration_failures: snapshot.regeneration_failures,
        regenerations_in_flight: snapshot.regenerations_in_flight,
        entries: snapshot.cache_entries,
        bytes: snapshot.cache_bytes,
        max_bytes: snapshot.cache_max_bytes,
        config_generation: proxy.config_generation().number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: u64) -> HistoryPoint {
        HistoryPoint {
            seq,
            unix_ms: 1_000 * seq,
            elapsed_ms: 1_000 * seq,
            requests: [seq; REQUEST_LABELS.len()],
            origin_fetches: seq,
            regenerations: 0,
            regeneration_failures: 0,
            regenerations_in_flight: 0,
            entries: 1,
            bytes: 10,
            max_bytes: 100,
            config_generation: 0,
        }
    }

    fn seqs(history: &History) -> Vec<u64> {
        history.points.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn ring_keeps_an_hour_of_points_and_drops_the_oldest() {
        let ring = HistoryRing::new(Duration::from_secs(600));
        assert_eq!(ring.capacity, 6, "an hour of 10-minute points");
        for seq in 0..8 {
            ring.push(point(seq));
        }
        let history = ring.since(None);
        assert_eq!(seqs(&history), [2, 3, 4, 5, 6, 7]);
        assert_eq!(history.interval_ms, 600_000);
        assert_eq!(history.request_labels, REQUEST_LABELS);
    }

    #[test]
    fn since_returns_only_the_points_after_the_given_sequence_number() {
        let ring = HistoryRing::new(Duration::from_secs(600));
        for seq in 0..8 {
            ring.push(point(seq));
        }
        assert_eq!(seqs(&ring.since(Some(5))), [6, 7]);
        assert_eq!(seqs(&ring.since(Some(7))), Vec::<u64>::new(), "nothing newer");
        assert_eq!(
            seqs(&ring.since(Some(0))),
            [2, 3, 4, 5, 6, 7],
            "older than the ring: all it has"
        );
        assert_eq!(seqs(&ring.since(Some(u64::MAX))), Vec::<u64>::new());
    }

    #[test]
    fn default_interval_gives_720_points_an_hour() {
        assert_eq!(HistoryRing::new(DEFAULT_SAMPLE_INTERVAL).capacity, 720);
    }
}
