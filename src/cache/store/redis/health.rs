//! Health of the shared tier: which failures mean "Redis is down", the outage log (once per interval), and the
//! task that pings Redis and brings the tier back up by itself.

use std::fmt;
use std::sync::Arc;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;

/// Gap between reconnection attempts while Redis is down: short, so sharing resumes soon after it returns.
pub(super) const RECONNECT_INTERVAL: Duration = Duration::from_millis(250);
/// Gap between health checks while Redis is up.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// At most one "redis unavailable" log line per this interval while it stays down.
const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// When the current outage began and when it was last logged.
#[derive(Default)]
pub(super) struct Outage {
    since: Option<Instant>,
    last_log: Option<Instant>,
}

/// A failed Redis operation.
#[derive(Debug)]
pub(super) enum Failure {
    Timeout(Duration),
    Redis(redis::RedisError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(budget) => write!(f, "no answer within {budget:?}"),
            Self::Redis(err) => write!(f, "{err}"),
        }
    }
}

impl Failure {
    /// Whether the failure says Redis is unreachable or too slow (rather than that it refused one command).
    pub(super) fn is_outage(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_timeout()
                    || err.is_connection_refusal()
                    // A cluster node down, a failover in progress, a slot moving: Redis is (partly) unavailable.
                    || err.is_cluster_error()
                    || matches!(
                        err.kind(),
                        redis::ErrorKind::ClusterConnectionNotFound
                            | redis::ErrorKind::Server(
                                redis::ServerErrorKind::MasterDown
                                    | redis::ServerErrorKind::BusyLoading
                                    | redis::ServerErrorKind::ReadOnly
                            )
                    )
            }
        }
    }
}

impl Shared {
    /// Runs one command within `budget`; a failure that says Redis is unusable marks the tier down.
    pub(super) async fn run<T>(
        &self,
        budget: Duration,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Failure> {
        let failure = match tokio::time::timeout(budget, op).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => Failure::Redis(err),
            Err(_) => Failure::Timeout(budget),
        };
        if failure.is_outage() {
            self.mark_down(&failure);
        } else {
            tracing::warn!(error = %failure, "redis command failed");
        }
        Err(failure)
    }

    /// Records an outage: logged when it starts and then once per [`OUTAGE_LOG_INTERVAL`].
    pub(super) fn mark_down(&self, failure: &dyn fmt::Display) {
        let was_up = self.up.send_replace(false);
        let now = Instant::now();
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        let since = *outage.since.get_or_insert(now);
        let due = outage
            .last_log
            .is_none_or(|last| now.duration_since(last) >= OUTAGE_LOG_INTERVAL);
        if was_up || due {
            outage.last_log = Some(now);
            tracing::warn!(
                error = %failure,
                down_for_s = now.duration_since(since).as_secs(),
                "redis unavailable; serving from memory, disk and the origin until it answers again"
            );
        }
    }

    pub(super) fn mark_up(&self) {
        if !self.up.send_replace(true) {
            let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
            let down_for = outage.since.take().map(|since| since.elapsed()).unwrap_or_default();
            outage.last_log = None;
            tracing::info!(down_for_ms = down_for.as_millis() as u64, "redis connected");
        }
    }
}

/// Pings Redis: immediately, then every [`HEALTH_INTERVAL`] while it answers and every
/// [`RECONNECT_INTERVAL`] while it does not. A ping that answers brings the tier up.
pub(super) async fn check_health(shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    loop {
        let mut conn = shared.conn.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut conn);
        let budget = shared.write_timeout();
        let healthy = shared.run(budget, ping).await.is_ok();
        if healthy {
            shared.mark_up();
        }
        let pause = if healthy { HEALTH_INTERVAL } else { RECONNECT_INTERVAL };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
