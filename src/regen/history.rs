//! What regeneration has been doing, for the admin listener: how each flight ended, kept in two bounded rings —
//! every recent outcome, and recent failures on their own, so that a burst of successful renders cannot push
//! the failures an operator is looking for out of view.
//!
//! A record is written once per flight, when it ends (off the request path); reading takes the rings' lock
//! briefly and copies them. The [`Regenerator`] methods the admin listener reads are here too.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Regenerator, locked};
use crate::cache::CacheKey;
use crate::cacheability::BypassReason;
use crate::origin::OriginError;

/// Outcomes kept, newest first: enough to see what happened in the last seconds of a busy site.
pub const RECENT_OUTCOMES: usize = 256;
/// Failures kept, apart from other outcomes.
pub const RECENT_FAILURES: usize = 256;

/// Why a flight runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlightKind {
    /// A request waits for it (a miss, or an expired page).
    Request,
    /// A stale page is being refreshed behind its response, or a `fallback = true` page is being rendered.
    Background,
    /// On-demand revalidation (the endpoint, or `x-prerender-revalidate`).
    OnDemand,
    /// Startup prerendering.
    Prerender,
}

impl FlightKind {
    /// A short word for JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Background => "background",
            Self::OnDemand => "on_demand",
            Self::Prerender => "prerender",
        }
    }
}

/// How one flight ended.
#[derive(Debug, Clone)]
pub enum RegenResult {
    /// The origin's page was stored.
    Stored,
    /// A fresh page newer than the caller's was already stored; the origin was not asked.
    AlreadyFresh,
    /// Another instance rendered the page; it was taken from the shared tier.
    FromFleet,
    /// The origin answered something not to be stored (the reason says why).
    NotStored(BypassReason),
    /// The origin failed (error, timeout, 5xx); the last good page is kept.
    Failed(Arc<OriginError>),
    /// The flight ended without an outcome (shutdown).
    GaveUp,
}

impl RegenResult {
    /// The `result` label of `isr_regenerations_total` and the word in the admin JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::AlreadyFresh => "already_fresh",
            Self::FromFleet => "from_fleet",
            Self::NotStored(_) => "not_stored",
            Self::Failed(_) => "failed",
            Self::GaveUp => "gave_up",
        }
    }

    /// What went wrong, for a failure or a response not stored.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::NotStored(reason) => Some(format!("origin response not cacheable: {reason}")),
            Self::Failed(err) => Some(err.to_string()),
            Self::GaveUp => Some("ended without a result".to_owned()),
            Self::Stored | Self::AlreadyFresh | Self::FromFleet => None,
        }
    }
}

/// One finished flight.
#[derive(Debug, Clone)]
pub struct RegenRecord {
    /// The page.
    pub key: CacheKey,
    /// Why it ran.
    pub kind: FlightKind,
    /// When it started (the proxy's clock).
    pub started_at: SystemTime,
    /// How long it took (real time).
    pub duration: Duration,
    /// How it ended.
    pub result: RegenResult,
}

/// A flight running now.
#[derive(Debug, Clone)]
pub struct FlightInfo {
    /// The page.
    pub key: CacheKey,
    /// Why it runs.
    pub kind: FlightKind,
    /// When it started (the proxy's clock).
    pub started_at: SystemTime,
    /// How long it has been running (real time).
    pub running: Duration,
}

/// The two rings.
#[derive(Debug, Default)]
pub(super) struct History {
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    recent: VecDeque<RegenRecord>,
    failures: VecDeque<RegenRecord>,
}

impl History {
    /// Keeps `record`, dropping the oldest beyond the bounds.
    pub(super) fn record(&self, record: RegenRecord) {
        let mut rings = locked(&self.rings);
        if matches!(record.result, RegenResult::Failed(_) | RegenResult::GaveUp) {
            push_bounded(&mut rings.failures, record.clone(), RECENT_FAILURES);
        }
        push_bounded(&mut rings.recent, record, RECENT_OUTCOMES);
    }

    /// Recent outcomes and recent failures, newest first.
    pub(super) fn snapshot(&self) -> (Vec<RegenRecord>, Vec<RegenRecord>) {
        let rings = locked(&self.rings);
        (
            rings.recent.iter().rev().cloned().collect(),
            rings.failures.iter().rev().cloned().collect(),
        )
    }

    /// The latest record for `key` still kept, if any.
    pub(super) fn last_for(&self, key: &CacheKey) -> Option<RegenRecord> {
        let rings = locked(&self.rings);
        let latest = |ring: &VecDeque<RegenRecord>| ring.iter().rev().find(|r| &r.key == key).cloned();
        match (latest(&rings.recent), latest(&rings.failures)) {
            (Some(a), Some(b)) => Some(if a.started_at >= b.started_at { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

impl Regenerator {
    /// The flights running now, longest-running first, at most `limit` of them (admin listener).
    pub fn in_flight(&self, limit: usize) -> Vec<FlightInfo> {
        let mut flights: Vec<FlightInfo> = {
            let in_flight = locked(&self.inner.flights.in_flight);
            in_flight
                .iter()
                .map(|(key, flight)| FlightInfo {
                    key: key.clone(),
                    kind: flight.kind,
                    started_at: flight.started_at,
                    running: flight.started.elapsed(),
                })
                .collect()
        };
        flights.sort_by_key(|flight| std::cmp::Reverse(flight.running));
        flights.truncate(limit);
        flights
    }

    /// How recent flights ended, and recent failures alone, newest first (bounded: [`RECENT_OUTCOMES`], [`RECENT_FAILURES`]).
    pub fn history(&self) -> (Vec<RegenRecord>, Vec<RegenRecord>) {
        self.inner.flights.history.snapshot()
    }

    /// How the latest flight of `key` still on record ended.
    pub fn last_outcome(&self, key: &CacheKey) -> Option<RegenRecord> {
        self.inner.flights.history.last_for(key)
    }

    /// When a stale `key` will next be regenerated, if its last regeneration failed less than `retry_after` ago
    /// (until then, stale hits start none).
    pub fn retry_at(&self, key: &CacheKey) -> Option<SystemTime> {
        let failures = locked(&self.inner.flights.failures);
        let retry_at = *failures.get(key)? + self.inner.settings.retry_after;
        (retry_at > self.inner.clock.now()).then_some(retry_at)
    }
}

fn push_bounded(ring: &mut VecDeque<RegenRecord>, record: RegenRecord, bound: usize) {
    if ring.len() >= bound {
        ring.pop_front();
    }
    ring.push_back(record);
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn record(path: &str, result: RegenResult, at_s: u64) -> RegenRecord {
        RegenRecord {
            key: CacheKey::new(path, None, Vec::new()),
            kind: FlightKind::Background,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_s),
            duration: Duration::from_millis(5),
            result,
        }
    }

    #[test]
    fn failures_outlive_a_burst_of_successes() {
        let history = History::default();
        let failed = RegenResult::Failed(Arc::new(OriginError::Status(StatusCode::BAD_GATEWAY)));
        history.record(record("/broken", failed, 1));
        for i in 0..RECENT_OUTCOMES as u64 + 10 {
            history.record(record(&format!("/ok/{i}"), RegenResult::Stored, 2 + i));
        }
        let (recent, failures) = history.snapshot();
        assert_eq!(recent.len(), RECENT_OUTCOMES);
        assert!(
            recent.iter().all(|r| r.key.path() != "/broken"),
            "pushed out of the recent ring"
        );
        assert_eq!(failures.len(), 1);
        let last = history.last_for(&failures[0].key).expect("still known");
        assert_eq!(last.result.as_str(), "failed");
        assert_eq!(last.result.detail().as_deref(), Some("origin answered 502 Bad Gateway"));
        assert_eq!(
            recent[0].key.path(),
            format!("/ok/{}", RECENT_OUTCOMES + 9),
            "newest first"
        );
    }

    #[test]
    fn the_latest_record_of_a_key_wins() {
        let history = History::default();
        let failed = RegenResult::Failed(Arc::new(OriginError::Status(StatusCode::BAD_GATEWAY)));
        history.record(record("/a", failed, 1));
        history.record(record("/a", RegenResult::Stored, 2));
        let key = CacheKey::new("/a", None, Vec::new());
        assert_eq!(history.last_for(&key).map(|r| r.result.as_str()), Some("stored"));
    }
}
