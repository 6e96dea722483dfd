//! The invalidation listener: applies other instances' invalidations to this one's memory, and drops it when
//! some may have been missed while disconnected (the epoch check).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::health::RECONNECT_INTERVAL;
use super::{Failure, Shared, message};
use crate::cache::store::{ApplyInvalidation, Invalidation};

/// Subscribes to the invalidation channel, resubscribing after every disconnection, until the store drops.
pub(super) async fn listen(shared: Arc<Shared>, apply: ApplyInvalidation, mut stop: watch::Receiver<()>) {
    let mut last_epoch: Option<u64> = None;
    // Counts failed subscriptions, so that in a cluster the next attempt tries another node.
    let mut attempt = 0;
    loop {
        let result = subscribe_once(&shared, &apply, &mut last_epoch, &mut stop, attempt).await;
        attempt = attempt.wrapping_add(1);
        if let Err(err) = result
            && shared.subscribed.swap(false, Ordering::AcqRel)
        {
            shared.mark_down(&err);
        }
        shared.subscribed.store(false, Ordering::Release);
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if stop.has_changed().is_err() {
            return;
        }
    }
}

/// One subscription: subscribe, compare epochs (dropping memory if invalidations were missed), then apply
/// messages until the connection ends or the tier goes down. Returns `Ok` only when told to stop.
async fn subscribe_once(
    shared: &Shared,
    apply: &ApplyInvalidation,
    last_epoch: &mut Option<u64>,
    stop: &mut watch::Receiver<()>,
    attempt: usize,
) -> Result<(), Failure> {
    let budget = shared.write_timeout();
    let mut pubsub = shared
        .run(budget, shared.subscriptions.pubsub(&shared.conn, attempt))
        .await?;
    shared.run(budget, pubsub.subscribe(shared.keys.channel())).await?;
    // Read after subscribing: anything published from here on arrives as a message.
    let mut conn = shared.conn.clone();
    let mut read = redis::cmd("GET");
    let read = read.arg(shared.keys.epoch()).query_async::<Option<u64>>(&mut conn);
    let epoch = shared.run(budget, read).await?.unwrap_or(0);
    // Commands evidently work: reads go to Redis again before memory is dropped below.
    shared.mark_up();
    if let Some(last) = *last_epoch
        && last != epoch
    {
        tracing::warn!(
            last_seen = last,
            current = epoch,
            "invalidations may have been missed while disconnected from redis; dropping the memory cache"
        );
        apply(Invalidation::Everything).await;
    }
    *last_epoch = Some(epoch);
    shared.subscribed.store(true, Ordering::Release);
    tracing::debug!(epoch, "subscribed to redis invalidations");
    let mut up = shared.up.subscribe();
    let mut messages = pubsub.into_on_message();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(Failure::Redis(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "invalidation subscription closed",
                    ))));
                };
                match message::decode(message.get_payload_bytes()) {
                    Ok((epoch, from, invalidation)) => {
                        *last_epoch = Some(last_epoch.map_or(epoch, |last| last.max(epoch)));
                        if from != shared.instance {
                            tracing::debug!(invalidation = ?invalidation, "invalidation from another instance");
                            apply(invalidation).await;
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "ignoring a message on the invalidation channel"),
                }
            }
            // Commands fail (a partition, say, that never closed this socket): resubscribe once it answers.
            _ = async { up.wait_for(|up| !*up).await.is_ok() } => {
                return Err(Failure::Redis(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "redis unavailable",
                ))));
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}
