//! The writer task: applies writes, lock releases and invalidations to Redis one at a time, in the order they
//! were queued, so a release or an announcement never overtakes the page write it follows.
//!
//! While Redis is down, writes and invalidations wait in a bounded backlog and are replayed in order once it
//! answers again (the generation check keeps a replayed page from replacing a newer one). If the backlog
//! overflows, the writes in it are lost, and every instance is told to drop its memory cache instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::{Failure, Shared, message, paths, scripts};
use crate::cache::store::Invalidation;
use crate::cache::store::codec;
use crate::cache::{CacheKey, Entry, PathPrefix, scoped_tag};

/// Writes and invalidations kept while Redis is down.
const MAX_BACKLOG: usize = 1024;

/// One queued operation.
pub(super) enum Job {
    Save(CacheKey, Arc<Entry>),
    Delete(CacheKey),
    Release {
        lock_key: String,
        token: String,
    },
    Announce(Invalidation),
    Purge {
        key: CacheKey,
        reply: Option<oneshot::Sender<Option<u64>>>,
    },
    Tag {
        tag: String,
        purge: bool,
        reply: Option<oneshot::Sender<Option<usize>>>,
    },
    Prefix {
        prefix: PathPrefix,
        purge: bool,
        reply: Option<oneshot::Sender<Option<usize>>>,
    },
    Flush(oneshot::Sender<()>),
}

impl Job {
    /// Answers a waiting caller "unknown" (the job is kept for replay); released locks expire on their own.
    fn into_backlog(self) -> Option<Self> {
        match self {
            Self::Purge { key, reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(None);
                }
                Some(Self::Purge { key, reply: None })
            }
            Self::Tag { tag, purge, reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(None);
                }
                Some(Self::Tag {
                    tag,
                    purge,
                    reply: None,
                })
            }
            Self::Prefix { prefix, purge, reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(None);
                }
                Some(Self::Prefix {
                    prefix,
                    purge,
                    reply: None,
                })
            }
            Self::Release { .. } => None,
            Self::Flush(done) => {
                let _ = done.send(());
                None
            }
            job @ (Self::Save(..) | Self::Delete(_) | Self::Announce(_)) => Some(job),
        }
    }
}

struct Backlog {
    jobs: VecDeque<Job>,
    overflowed: bool,
}

impl Backlog {
    fn push(&mut self, shared: &Shared, job: Job) {
        let Some(job) = job.into_backlog() else { return };
        if self.jobs.len() >= MAX_BACKLOG {
            self.overflowed = true;
            shared.dropped_writes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.jobs.push_back(job);
    }

    fn is_pending(&self) -> bool {
        self.overflowed || !self.jobs.is_empty()
    }
}

/// Runs until the store (and every lock guard) is dropped and the queue is drained.
pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    let mut backlog = Backlog {
        jobs: VecDeque::new(),
        overflowed: false,
    };
    let mut up = shared.up.subscribe();
    loop {
        if shared.is_up() && backlog.is_pending() {
            replay(&shared, &mut backlog).await;
        }
        let waiting = backlog.is_pending();
        tokio::select! {
            job = queue.recv() => match job {
                Some(Job::Flush(done)) => {
                    let _ = done.send(());
                }
                Some(job) if shared.is_up() => {
                    if let Err(job) = execute(&shared, job).await {
                        backlog.push(&shared, job);
                    }
                }
                Some(job) => backlog.push(&shared, job),
                None => return,
            },
            // Redis came back: replay at the top of the loop.
            came_up = async { up.wait_for(|up| *up).await.is_ok() }, if waiting => {
                if !came_up {
                    return;
                }
            }
        }
    }
}

async fn replay(shared: &Shared, backlog: &mut Backlog) {
    let replayed = backlog.jobs.len();
    while let Some(job) = backlog.jobs.pop_front() {
        if let Err(job) = execute(shared, job).await {
            if let Some(job) = job.into_backlog() {
                backlog.jobs.push_front(job);
            }
            return;
        }
    }
    if backlog.overflowed {
        if execute(shared, Job::Announce(Invalidation::Everything)).await.is_err() {
            return;
        }
        backlog.overflowed = false;
        tracing::warn!("redis write backlog overflowed during the outage; every instance drops its memory cache");
    }
    tracing::info!(replayed, "replayed writes queued while redis was down");
}

/// Runs one job; gives it back if Redis could not take it, so it can wait for replay. A job of several steps
/// (in a cluster, keys on several nodes) is replayed whole: each step is idempotent.
async fn execute(shared: &Shared, job: Job) -> Result<(), Job> {
    let budget = shared.write_timeout();
    let mut conn = shared.conn.clone();
    match job {
        Job::Save(key, entry) => match save(shared, &key, &entry).await {
            Ok(()) => Ok(()),
            Err(err) => retry_later(err, Job::Save(key, entry)),
        },
        Job::Delete(key) => {
            let mut delete = redis::cmd("DEL");
            let delete = delete.arg(shared.keys.page(&key)).query_async::<i64>(&mut conn);
            let deleted = match shared.run(budget, delete).await {
                Ok(_) => paths::unindex(shared, &[paths::member(&key)]).await,
                Err(err) => Err(err),
            };
            match deleted {
                Ok(()) => Ok(()),
                Err(err) => retry_later(err, Job::Delete(key)),
            }
        }
        Job::Release { lock_key, token } => {
            let mut release = scripts::RELEASE.prepare_invoke();
            let release = release.key(&lock_key).arg(&token).invoke_async::<i64>(&mut conn);
            // A failed release is left to expire; it is not worth a replay.
            let _ = shared.run(budget, release).await;
            Ok(())
        }
        Job::Announce(invalidation) => match announce(shared, &invalidation).await {
            Ok(()) => Ok(()),
            Err(err) => retry_later(err, Job::Announce(invalidation)),
        },
        Job::Purge { key, reply } => {
            let mut delete = redis::cmd("DEL");
            let delete = delete.arg(shared.keys.page(&key)).query_async::<u64>(&mut conn);
            let purged = match shared.run(budget, delete).await {
                Ok(deleted) => match paths::unindex(shared, &[paths::member(&key)]).await {
                    Ok(()) => announce(shared, &Invalidation::Purged { key: key.clone() })
                        .await
                        .map(|()| deleted),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            };
            match purged {
                Ok(deleted) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Some(deleted));
                    }
                    Ok(())
                }
                Err(err) => retry_later(err, Job::Purge { key, reply }),
            }
        }
        Job::Tag { tag, purge, reply } => match invalidate_tag(shared, &tag, purge).await {
            Ok(pages) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Some(pages));
                }
                Ok(())
            }
            Err(err) => retry_later(err, Job::Tag { tag, purge, reply }),
        },
        Job::Prefix { prefix, purge, reply } => match paths::invalidate_prefix(shared, &prefix, purge).await {
            Ok(pages) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Some(pages));
                }
                Ok(())
            }
            Err(err) => retry_later(err, Job::Prefix { prefix, purge, reply }),
        },
        Job::Flush(done) => {
            let _ = done.send(());
            Ok(())
        }
    }
}

/// Writes a page (unless Redis holds a newer one), then adds it to the path index and its tag sets.
async fn save(shared: &Shared, key: &CacheKey, entry: &Entry) -> Result<(), Failure> {
    let budget = shared.write_timeout();
    let mut conn = shared.conn.clone();
    let page = shared.keys.page(key);
    let ttl_ms = entry
        .lifetime
        .revalidate
        .map(|revalidate| revalidate.saturating_add(entry.lifetime.expire))
        .map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
    let mut invoke = scripts::SAVE.prepare_invoke();
    invoke
        .key(&page)
        .arg(codec::generated_at_ms(entry.generated_at))
        .arg(if entry.is_marked_stale() { "1" } else { "0" })
        .arg(codec::encode(key, entry))
        .arg(ttl_ms);
    if shared.run(budget, invoke.invoke_async::<i64>(&mut conn)).await? == 0 {
        tracing::debug!(key = %key, "redis holds a newer page; keeping it");
        return Ok(());
    }
    paths::index(shared, key, ttl_ms).await?;
    for tag in entry.tags.iter() {
        let mut add = scripts::TAG_PAGE.prepare_invoke();
        add.key(shared.keys.tag(&scoped_tag(key.host(), tag)))
            .arg(&page)
            .arg(ttl_ms);
        shared.run(budget, add.invoke_async::<i64>(&mut conn)).await?;
    }
    Ok(())
}

/// Marks stale (or purges) every live page of a tag, drops dead members, then announces it. Returns the number
/// of live pages. The pages are invalidated concurrently (in a cluster, on their own nodes).
async fn invalidate_tag(shared: &Shared, tag: &str, purge: bool) -> Result<usize, Failure> {
    let budget = shared.write_timeout();
    let mut conn = shared.conn.clone();
    let set = shared.keys.tag(tag);
    let mut members = redis::cmd("SMEMBERS");
    let members = members.arg(&set).query_async::<Vec<String>>(&mut conn);
    let pages = shared.run(budget, members).await?;
    let flag = if purge { "1" } else { "0" };
    let invalidations = pages.iter().map(|page| {
        let mut conn = shared.conn.clone();
        async move {
            let mut invoke = scripts::INVALIDATE_PAGE.prepare_invoke();
            invoke.key(page).arg(flag);
            let existed = shared.run(budget, invoke.invoke_async::<i64>(&mut conn)).await?;
            Ok::<_, Failure>((page, existed == 1))
        }
    });
    let results = futures_util::future::join_all(invalidations).await;
    let mut live = 0;
    let mut dead = Vec::new();
    for result in results {
        match result? {
            (_, true) => live += 1,
            (page, false) => dead.push(page),
        }
    }
    if purge {
        let mut delete = redis::cmd("DEL");
        shared
            .run(budget, delete.arg(&set).query_async::<i64>(&mut conn))
            .await?;
    } else if !dead.is_empty() {
        let mut remove = redis::cmd("SREM");
        shared
            .run(budget, remove.arg(&set).arg(dead).query_async::<i64>(&mut conn))
            .await?;
    }
    announce(
        shared,
        &Invalidation::Tag {
            tag: tag.to_owned(),
            purge,
        },
    )
    .await?;
    Ok(live)
}

/// Bumps the epoch and publishes `invalidation` in one script (the epoch is one key).
pub(super) async fn announce(shared: &Shared, invalidation: &Invalidation) -> Result<(), Failure> {
    let mut conn = shared.conn.clone();
    let message = message::encode(shared.instance, invalidation);
    let mut announce = scripts::ANNOUNCE.prepare_invoke();
    let announce = announce
        .key(shared.keys.epoch())
        .arg(shared.keys.channel())
        .arg(message)
        .invoke_async::<u64>(&mut conn);
    shared.run(shared.write_timeout(), announce).await.map(|_| ())
}

/// A job whose command failed is kept for replay only when Redis was unreachable; a command Redis refused
/// (a script error, a foreign key of the wrong type) would fail again.
fn retry_later(failure: Failure, job: Job) -> Result<(), Job> {
    if failure.is_outage() { Err(job) } else { Ok(()) }
}
