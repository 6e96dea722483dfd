//! The only source of "now" for freshness decisions.
//!
//! ISR freshness is `now - generated_at` compared with a route's `revalidate`, and it must be testable without
//! sleeping. [`Clock::system`] reads the wall clock; [`Clock::manual`] reads the wall clock plus an offset that a
//! test moves forward with [`ClockHandle::advance`]. Time stays wall-clock based (`SystemTime`) so entries written
//! to disk or shared through Redis by other processes keep their age.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A cheap, cloneable source of the current time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the wall clock; `None` for the system clock (no atomic load on the hot path).
    offset: Option<Arc<AtomicU64>>,
}

/// Moves a manual [`Clock`] forward; held by tests.
#[derive(Clone, Debug)]
pub struct ClockHandle {
    offset: Arc<AtomicU64>,
}

impl Clock {
    /// The wall clock, for production.
    pub fn system() -> Self {
        Self { offset: None }
    }

    /// A clock that can be moved forward through the returned handle, for tests.
    pub fn manual() -> (Self, ClockHandle) {
        let offset = Arc::new(AtomicU64::new(0));
        (
            Self {
                offset: Some(offset.clone()),
            },
            ClockHandle { offset },
        )
    }

    /// The current time as this clock sees it.
    pub fn now(&self) -> SystemTime {
        let wall = SystemTime::now();
        match &self.offset {
            None => wall,
            Some(offset) => wall + Duration::from_nanos(offset.load(Ordering::Relaxed)),
        }
    }
}

impl ClockHandle {
    /// Moves the clock forward by `by`; every clone of the manual clock sees it at once.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_beyond_wall_time() {
        let (clock, handle) = Clock::manual();
        let before = clock.now();
        handle.advance(Duration::from_secs(3600));
        let after = clock.now();
        let moved = after.duration_since(before).expect("clock never goes back");
        assert!(moved >= Duration::from_secs(3600), "advance must be visible: {moved:?}");
        assert!(moved < Duration::from_secs(3700));
    }
}
