//! Text for people: the admin documents and the revalidation report as aligned tables and short lines.

use std::fmt::Write as _;

use bytesize::ByteSize;

use crate::admin::api::{CacheListing, EntryDetail, Health, RegenerationRecord, Regenerations, Stats};
use crate::revalidate::{PathDone, PathResult, RevalidateReport};

/// Lines of recent regenerations shown as text (`--json` has them all).
const RECENT_SHOWN: usize = 20;
/// The key and tags columns never get wider than this; longer values push their row out.
const MAX_COLUMN_WIDTH: usize = 60;

fn bytes(n: usize) -> String {
    ByteSize(n as u64).to_string()
}

/// The two largest units: `45s`, `3m 20s`, `2h 5m`, `365d`.
fn age(seconds: u64) -> String {
    let units = [
        (seconds / 86_400, "d"),
        (seconds / 3600 % 24, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
    ];
    let Some(first) = units.iter().position(|(n, _)| *n > 0) else {
        return "0s".to_owned();
    };
    units[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The listing as a table, with the cursor to go on from; `counted` names what `total` counts.
pub(super) fn listing(listing: &CacheListing, counted: &str) -> String {
    let column = |header: &str, values: &mut dyn Iterator<Item = usize>| {
        values.max().unwrap_or(0).clamp(header.len(), MAX_COLUMN_WIDTH)
    };
    let key_width = column("KEY", &mut listing.entries.iter().map(|e| e.key.key.len()));
    let tags_width = column("TAGS", &mut listing.entries.iter().map(|e| e.page.tags.join(",").len()));
    let mut text = format!(
        "{:<key_width$}  {:<6}  {:<7}  {:<7}  {:>9}  {:>9}  {:<tags_width$}  TIERS\n",
        "KEY", "STATUS", "STATE", "AGE", "BODY", "STORED", "TAGS"
    );
    for entry in &listing.entries {
        let page = &entry.page;
        let _ = writeln!(
            text,
            "{:<key_width$}  {:<6}  {:<7}  {:<7}  {:>9}  {:>9}  {:<tags_width$}  {}",
            entry.key.key,
            page.status,
            page.state.as_str(),
            age(page.age_seconds),
            bytes(page.size.body),
            bytes(page.size.weight),
            page.tags.join(","),
            page.tiers.join(","),
        );
    }
    let _ = write!(text, "{} listed ({} {counted})", listing.entries.len(), listing.total);
    match &listing.next_cursor {
        Some(cursor) => {
            let _ = writeln!(text, "; more with --cursor '{}'", cursor.replace('\'', "'\\''"));
        }
        None => text.push('\n'),
    }
    text
}

/// One page in full.
pub(super) fn entry(detail: &EntryDetail) -> String {
    let route = &detail.route;
    let mut text = format!(
        "{}\n  route         {} (revalidate {}, expire {}, fallback {}, origin_cache_control {})\n",
        detail.key.key,
        route.route,
        route.revalidate,
        age(route.expire_seconds),
        route.fallback,
        route.origin_cache_control
    );
    match &detail.entry {
        None => text.push_str("  cached        no: no tier holds it\n"),
        Some(stored) => {
            let page = &stored.page;
            let until = match (&stored.fresh_until, &stored.stale_until) {
                (Some(fresh), Some(stale)) => format!("fresh until {fresh}, served stale until {stale}"),
                _ => "fresh until revalidated on demand".to_owned(),
            };
            let marked = if page.marked_stale { ", marked stale by tag" } else { "" };
            let _ = writeln!(
                text,
                "  state         {} (age {}; {until}{marked})",
                page.state.as_str(),
                age(page.age_seconds)
            );
            let _ = writeln!(text, "  status        {}", page.status);
            let _ = writeln!(text, "  generated at  {}", page.generated_at);
            let mut size = format!("body {}", bytes(page.size.body));
            for (coding, len) in [("gzip", page.size.gzip), ("br", page.size.br)] {
                if let Some(len) = len {
                    let _ = write!(size, ", {coding} {}", bytes(len));
                }
            }
            let _ = writeln!(
                text,
                "  size          {size}; {} counted against cache.max_size",
                bytes(page.size.weight)
            );
            let _ = writeln!(text, "  tags          {}", list_or_none(&page.tags));
            let _ = writeln!(text, "  tiers         {}", list_or_none(&page.tiers));
        }
    }
    let regen = &detail.regeneration;
    let last = match &regen.last {
        Some(record) => outcome(record),
        None => "none on record".to_owned(),
    };
    let _ = writeln!(
        text,
        "  regeneration  {}last: {last}",
        if regen.in_flight { "running now; " } else { "" }
    );
    if let Some(retry_at) = &regen.retry_at {
        let _ = writeln!(text, "  next retry    not before {retry_at} (cache.retry_after)");
    }
    if let Some(stored) = &detail.entry {
        text.push_str("  headers\n");
        for (name, value) in &stored.headers {
            let _ = writeln!(text, "    {name}: {value}");
        }
    }
    text
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// `failed at <time> after 3 ms (background): origin answered 500 ...`
fn outcome(record: &RegenerationRecord) -> String {
    let mut line = format!(
        "{} at {} after {} ms ({})",
        record.result, record.started_at, record.duration_ms, record.kind
    );
    if let Some(error) = &record.error {
        let _ = write!(line, ": {error}");
    }
    line
}

/// Running, recently failed and recent regenerations.
pub(super) fn regenerations(regenerations: &Regenerations) -> String {
    let mut text = format!("running ({})\n", regenerations.in_flight_total);
    for flight in &regenerations.in_flight {
        let _ = writeln!(
            text,
            "  {}  {} since {} ({} ms)",
            flight.key, flight.kind, flight.started_at, flight.running_ms
        );
    }
    let sections = [
        ("recent failures", &regenerations.recent_failures),
        ("recent", &regenerations.recent),
    ];
    for (title, records) in sections {
        let _ = writeln!(text, "{title} ({})", records.len());
        for record in records.iter().take(RECENT_SHOWN) {
            let _ = writeln!(text, "  {}  {}", record.key, outcome(record));
        }
        if records.len() > RECENT_SHOWN {
            let _ = writeln!(text, "  ... {} more (--json shows all)", records.len() - RECENT_SHOWN);
        }
    }
    let _ = writeln!(text, "failed since start: {}", regenerations.failed_total);
    text
}

/// The headline figures.
pub(super) fn stats(stats: &Stats) -> String {
    let total: u64 = stats.requests.values().sum();
    let by_status: Vec<String> = stats
        .requests
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(status, count)| format!("{status} {count}"))
        .collect();
    let hit_ratio = match stats.hit_ratio {
        Some(ratio) => format!("{:.1} % (HIT + STALE of HIT + STALE + MISS)", ratio * 100.0),
        None => "- (no lookups yet)".to_owned(),
    };
    let cache = &stats.cache;
    let regen = &stats.regenerations;
    let mut text = String::new();
    let _ = writeln!(text, "requests       {total} ({})", list_or_none(&by_status));
    let _ = writeln!(text, "hit ratio      {hit_ratio}");
    let _ = writeln!(
        text,
        "cache          {} pages, {} of {}, {} evictions",
        cache.entries,
        ByteSize(cache.bytes),
        ByteSize(cache.max_bytes),
        cache.evictions
    );
    let _ = writeln!(
        text,
        "regenerations  {} running, {} failed since start ({} on record)",
        regen.in_flight, regen.failed_total, regen.recent_failures
    );
    let _ = writeln!(text, "origin         {}", reachable(stats.origin.reachable));
    let _ = writeln!(
        text,
        "redis          {}",
        stats.redis.as_deref().unwrap_or("not configured")
    );
    for tier in &stats.tiers {
        let _ = writeln!(text, "tier {:<9} {}", tier.name, if tier.up { "up" } else { "down" });
    }
    let _ = writeln!(text, "connections    {} open", stats.client_connections);
    text
}

fn reachable(reachable: Option<bool>) -> &'static str {
    match reachable {
        Some(true) => "reachable",
        Some(false) => "unreachable (cached pages are still served)",
        None => "not asked yet",
    }
}

/// One line: serving or not, and why.
pub(super) fn health(health: &Health) -> String {
    let state = if health.ok {
        "ok".to_owned()
    } else {
        format!(
            "not ready: prerendering {} of {} pages",
            health.prerender.done, health.prerender.total
        )
    };
    let down: Vec<&str> = health.tiers.iter().filter(|t| !t.up).map(|t| t.name.as_str()).collect();
    let tiers = if down.is_empty() {
        String::new()
    } else {
        format!("; down: {}", down.join(", "))
    };
    format!(
        "{state}: {} pages in memory, origin {}{tiers}\n",
        health.cache.entries,
        reachable(health.origin.reachable)
    )
}

/// One line per path and tag.
pub(super) fn report(report: &RevalidateReport, purge: bool) -> String {
    let mut text = String::new();
    for (path, result) in &report.paths {
        let _ = match result {
            PathResult::Done(PathDone::Regenerated) => writeln!(text, "regenerated  {path}"),
            PathResult::Done(PathDone::Purged) => writeln!(text, "purged       {path}"),
            PathResult::Done(PathDone::NotCached) => writeln!(text, "not cached   {path}"),
            PathResult::Done(PathDone::Skipped) => writeln!(text, "skipped      {path} (no cached route)"),
            PathResult::Error { error } => writeln!(text, "failed       {path}: {error}"),
        };
    }
    let done = if purge { "purged" } else { "marked stale" };
    for (tag, pages) in &report.tags {
        let _ = writeln!(text, "tag {tag}: {pages} pages {done}");
    }
    for (prefix, pages) in &report.prefixes {
        let _ = writeln!(text, "prefix {prefix}: {pages} pages {done}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_their_two_largest_units() {
        for (seconds, shown) in [
            (0, "0s"),
            (45, "45s"),
            (200, "3m 20s"),
            (3600, "1h"),
            (7_503, "2h 5m"),
            (86_400 * 365, "365d"),
            (86_400 + 5, "1d"),
        ] {
            assert_eq!(age(seconds), shown, "{seconds}");
        }
    }
}
