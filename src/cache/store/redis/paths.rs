//! The path index: every page in Redis, in path order, so that a prefix revalidation finds the pages under a
//! prefix, on every instance's behalf, in time proportional to them (Redis's page keys are hashes, in no order).
//!
//! ```text
//! paths:{index}          sorted set, all scores 0, read by lex range: "<site><path and query>\0<page hash>"
//! paths:expiry:{index}   the same members, scored by when the page expires (ms; +inf: never)
//! ```
//! `<site>` is empty for a host-less key and `<host>\x01` for a host-specific one (a path starts with `/`, which
//! no host does). Both sets share a hash tag, so one script keeps them in step on Redis Cluster. Every page write
//! adds its member and drops a few members whose pages expired; a purge drops its own; a prefix revalidation
//! drops the members it finds without a page. So the index stays near the size of what Redis holds.

use super::{Failure, Shared, scripts, writer};
use crate::cache::prefix::Run;
use crate::cache::store::Invalidation;
use crate::cache::store::codec;
use crate::cache::{CacheKey, PathPrefix};

/// Members read (and pages invalidated at once) per step of a prefix revalidation.
const CHUNK: usize = 1000;

/// The site part of a member.
fn site(host: Option<&str>) -> Vec<u8> {
    match host {
        Some(host) => [host.as_bytes(), b"\x01"].concat(),
        None => Vec::new(),
    }
}

/// `key`'s member of both sets.
pub(super) fn member(key: &CacheKey) -> Vec<u8> {
    let mut member = site(key.host());
    member.extend_from_slice(key.path_and_query().as_bytes());
    member.push(0);
    member.extend_from_slice(format!("{:032x}", codec::key_hash(key)).as_bytes());
    member
}

/// The page key a member names (`None`: not a member this version wrote).
fn page_of(shared: &Shared, member: &[u8]) -> Option<String> {
    let nul = member.iter().rposition(|b| *b == 0)?;
    let hash = std::str::from_utf8(&member[nul + 1..]).ok()?;
    (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| shared.keys.page_hash(hash))
}

/// The lex range (`ZRANGEBYLEX` bounds, exclusive of the end) holding a run's members on one site. No UTF-8 text
/// contains the byte 0xFF, so `start\xff` lies above every path that starts with `start`.
fn lex_range(site: &[u8], run: &Run) -> (Vec<u8>, Vec<u8>) {
    let mut min = [b"[", site, run.start.as_bytes()].concat();
    let mut max = [b"(", site, run.start.as_bytes()].concat();
    if run.exact {
        min.push(0);
        max.push(1);
    } else {
        max.push(0xff);
    }
    (min, max)
}

/// Adds a page just written to the index (TTL in ms, 0 for none), dropping a few members of expired pages.
pub(super) async fn index(shared: &Shared, key: &CacheKey, ttl_ms: u64) -> Result<(), Failure> {
    let mut conn = shared.conn.clone();
    let mut invoke = scripts::INDEX_PATH.prepare_invoke();
    invoke
        .key(shared.keys.paths())
        .key(shared.keys.paths_expiry())
        .arg(member(key))
        .arg(ttl_ms);
    shared
        .run(shared.write_timeout(), invoke.invoke_async::<i64>(&mut conn))
        .await
        .map(|_| ())
}

/// Drops `members` from both sets.
pub(super) async fn unindex(shared: &Shared, members: &[Vec<u8>]) -> Result<(), Failure> {
    if members.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.cmd("ZREM").arg(shared.keys.paths()).arg(members).ignore();
    pipe.cmd("ZREM").arg(shared.keys.paths_expiry()).arg(members).ignore();
    let mut conn = shared.conn.clone();
    shared
        .run(shared.write_timeout(), pipe.query_async::<()>(&mut conn))
        .await
}

/// Marks stale (or purges) every page in Redis that `prefix` covers, drops the members of pages that are gone,
/// then announces it. Returns the number of live pages. Each run of the prefix is read in chunks, each chunk's
/// pages invalidated concurrently (in a cluster, on their own nodes).
pub(super) async fn invalidate_prefix(shared: &Shared, prefix: &PathPrefix, purge: bool) -> Result<usize, Failure> {
    let budget = shared.write_timeout();
    let mut sites = vec![site(None)];
    if prefix.host().is_some() {
        sites.push(site(prefix.host()));
    }
    let mut live = 0;
    for site in &sites {
        for run in prefix.runs() {
            let (mut min, max) = lex_range(site, &run);
            loop {
                let mut conn = shared.conn.clone();
                let mut read = redis::cmd("ZRANGEBYLEX");
                read.arg(shared.keys.paths())
                    .arg(&min)
                    .arg(&max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(CHUNK);
                let members = shared.run(budget, read.query_async::<Vec<Vec<u8>>>(&mut conn)).await?;
                let (found, gone) = invalidate_pages(shared, &members, purge).await?;
                live += found;
                unindex(shared, &gone).await?;
                match members.last() {
                    Some(last) if members.len() == CHUNK => min = [b"(", last.as_slice()].concat(),
                    _ => break,
                }
            }
        }
    }
    let prefix = prefix.clone();
    writer::announce(shared, &Invalidation::Prefix { prefix, purge }).await?;
    Ok(live)
}

/// Invalidates the pages `members` name; returns how many existed, and the members to drop (pages gone, or
/// purged now).
async fn invalidate_pages(shared: &Shared, members: &[Vec<u8>], purge: bool) -> Result<(usize, Vec<Vec<u8>>), Failure> {
    let budget = shared.write_timeout();
    let flag = if purge { "1" } else { "0" };
    let invalidations = members.iter().map(|member| {
        let mut conn = shared.conn.clone();
        async move {
            let Some(page) = page_of(shared, member) else {
                return Ok::<_, Failure>((member, false));
            };
            let mut invoke = scripts::INVALIDATE_PAGE.prepare_invoke();
            invoke.key(page).arg(flag);
            let existed = shared.run(budget, invoke.invoke_async::<i64>(&mut conn)).await?;
            Ok((member, existed == 1))
        }
    });
    let mut live = 0;
    let mut gone = Vec::new();
    for result in futures_util::future::join_all(invalidations).await {
        let (member, existed) = result?;
        live += usize::from(existed);
        if purge || !existed {
            gone.push(member.clone());
        }
    }
    Ok((live, gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `member` lies in the lex range (`[min`, `(max`), as Redis compares: bytewise.
    fn in_range(member: &[u8], (min, max): &(Vec<u8>, Vec<u8>)) -> bool {
        member >= &min[1..] && member < &max[1..]
    }

    #[test]
    fn a_prefix_reads_exactly_its_members_from_the_index() {
        let key = |host, path_and_query: &str| {
            let (path, query) = match path_and_query.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (path_and_query, None),
            };
            CacheKey::on_host(host, path, query, Vec::new())
        };
        let prefix = PathPrefix::new(Some("shop.example.com"), "/blog");
        for (key, covered) in [
            (key(None, "/blog"), true),
            (key(None, "/blog/a"), true),
            (key(None, "/blog?page=2"), true),
            (key(None, "/blog-old"), false),
            (key(None, "/blogroll"), false),
            (key(Some("shop.example.com"), "/blog/a"), true),
            (key(Some("shop.example.com"), "/blog-old"), false),
            (key(Some("news.example.com"), "/blog/a"), false),
        ] {
            let member = member(&key);
            let hosts = [None, prefix.host()];
            let found = hosts.iter().any(|host| {
                prefix
                    .runs()
                    .iter()
                    .any(|run| in_range(&member, &lex_range(&site(*host), run)))
            });
            assert_eq!(found, covered, "{key}");
            assert_eq!(prefix.covers(&key), covered, "the index agrees with memory on {key}");
        }
    }
}
