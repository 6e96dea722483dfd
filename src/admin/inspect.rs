//! The views into the cache and regeneration: `GET /cache`, `GET /cache/entry` and `GET /regenerations`.
//!
//! Read-only, and bounded: a listing page is one range read of the cache's ordered key index (see
//! [`crate::cache::index`]) plus one tier check per listed page; an entry is one index read (or one tier read
//! when only a lower tier holds it); the regeneration records are bounded rings.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use super::AdminError;
use super::api::{
    CacheListing, EntryDetail, ListedPage, PageKey, PageSize, PageState, PageSummary, RegenerationRecord,
    RegenerationState, Regenerations, RoutePolicy, RunningRegeneration, StoredPage,
};
use super::query::EntryRequest;
use crate::cache::{CacheKey, Entry, Freshness, ListQuery};
use crate::cacheability::OriginCacheControl;
use crate::proxy::Proxy;
use crate::regen::RegenRecord;
use crate::route::{Fallback, RouteRule};

/// Most running regenerations listed: a flood of misses can have thousands in flight.
const MAX_IN_FLIGHT_LISTED: usize = 1000;

/// `GET /cache`.
pub(super) async fn listing(proxy: &Proxy, query: &ListQuery) -> CacheListing {
    let now = proxy.clock().now();
    let page = proxy.cache().list(query, now);
    let keys: Vec<CacheKey> = page.entries.iter().map(|(key, _)| key.clone()).collect();
    let tiers = proxy.cache().tiers_holding(&keys).await;
    let entries = page
        .entries
        .iter()
        .zip(tiers)
        .map(|((key, entry), tiers)| ListedPage {
            key: page_key(key),
            page: summary(entry, now, tiers),
        })
        .collect();
    CacheListing {
        entries,
        next_cursor: page.next.map(|key| key.to_cursor()),
        total: page.total,
        scanned: page.scanned,
    }
}

/// `GET /cache/entry`: 404 with the reason when no cached route covers the path.
pub(super) async fn entry(proxy: &Proxy, request: EntryRequest) -> Result<EntryDetail, AdminError> {
    let path = &request.path;
    let Some(rule) = proxy.routes().match_path(path) else {
        return Err(AdminError::NotFound(format!(
            "no route matches {path}: requests for it are passed through to the origin, never cached"
        )));
    };
    if !rule.cache {
        return Err(AdminError::NotFound(format!(
            "route {} has cache = false: requests for {path} are passed through to the origin, never cached",
            rule.pattern
        )));
    }
    let rule = rule.clone();
    let key = match proxy
        .routes()
        .cached_route(path, request.query.as_deref(), request.variant)
    {
        Some(matched) => matched.key,
        None => return Err(AdminError::NotFound(format!("{path} is not cached"))),
    };
    let (found, tiers) = proxy.cache().inspect(&key).await;
    let now = proxy.clock().now();
    let regen = proxy.regenerator();
    Ok(EntryDetail {
        key: page_key(&key),
        route: policy(&rule),
        vary_variants: proxy.cache().vary_variant_count(&key),
        entry: found.map(|entry| stored(&entry, now, tiers)),
        regeneration: RegenerationState {
            in_flight: regen.is_in_flight(&key),
            last: regen.last_outcome(&key).map(|record| regeneration_record(&record)),
            retry_at: regen.retry_at(&key).map(timestamp),
        },
    })
}

/// `GET /regenerations`.
pub(super) fn regenerations(proxy: &Proxy) -> Regenerations {
    let regen = proxy.regenerator();
    let (recent, failures) = regen.history();
    let in_flight = regen.in_flight(MAX_IN_FLIGHT_LISTED);
    Regenerations {
        in_flight_total: regen.in_flight_count().max(in_flight.len()),
        in_flight: in_flight
            .into_iter()
            .map(|flight| RunningRegeneration {
                key: flight.key.to_string(),
                kind: flight.kind.as_str().to_owned(),
                started_at: timestamp(flight.started_at),
                running_ms: millis(flight.running),
            })
            .collect(),
        recent_failures: failures.iter().map(regeneration_record).collect(),
        recent: recent.iter().map(regeneration_record).collect(),
        failed_total: regen.failure_count(),
    }
}

/// An RFC 3339 time in UTC, with milliseconds.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn page_key(key: &CacheKey) -> PageKey {
    let query = key.path_and_query().split_once('?').map(|(_, query)| query.to_owned());
    PageKey {
        key: key.to_string(),
        path: key.path().to_owned(),
        query,
        variant: key
            .variant()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), text(value)))
            .collect(),
        vary: key
            .vary()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_ref().map(text)))
            .collect(),
    }
}

/// A header value as text (lossy: non-UTF-8 bytes become U+FFFD).
fn text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn summary(entry: &Entry, now: SystemTime, tiers: Vec<&'static str>) -> PageSummary {
    let state = match entry.freshness(now) {
        Freshness::Fresh => PageState::Fresh,
        Freshness::Stale => PageState::Stale,
        Freshness::Expired => PageState::Expired,
    };
    PageSummary {
        status: entry.status.as_u16(),
        size: PageSize {
            body: entry.body.len(),
            gzip: entry.encoded.gzip.as_ref().map(|e| e.body.len()),
            br: entry.encoded.br.as_ref().map(|e| e.body.len()),
            weight: entry.weight(),
        },
        generated_at: timestamp(entry.generated_at),
        age_seconds: entry.age(now).as_secs(),
        state,
        marked_stale: entry.is_marked_stale(),
        tags: entry.tags.to_vec(),
        tiers: tiers.into_iter().map(str::to_owned).collect(),
    }
}

fn stored(entry: &Arc<Entry>, now: SystemTime, tiers: Vec<&'static str>) -> StoredPage {
    let revalidate = entry.lifetime.revalidate;
    let fresh_until = revalidate.map(|r| entry.generated_at + r);
    StoredPage {
        page: summary(entry, now, tiers),
        headers: entry
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), text(value)))
            .collect(),
        revalidate_seconds: revalidate.map(|r| r.as_secs()),
        expire_seconds: entry.lifetime.expire.as_secs(),
        fresh_until: fresh_until.map(timestamp),
        stale_until: fresh_until.map(|fresh| timestamp(fresh + entry.lifetime.expire)),
    }
}

fn policy(rule: &RouteRule) -> RoutePolicy {
    RoutePolicy {
        route: rule.pattern.clone(),
        revalidate: rule.revalidate.to_string(),
        not_found_revalidate: rule.not_found_revalidate.map(|r| r.to_string()),
        expire_seconds: rule.expire.as_secs(),
        fallback: match rule.fallback {
            Fallback::Blocking => "blocking",
            Fallback::Placeholder => "true",
            Fallback::NotFound => "false",
        }
        .to_owned(),
        origin_cache_control: match rule.origin_cache_control {
            OriginCacheControl::Respect => "respect",
            OriginCacheControl::Ignore => "ignore",
        }
        .to_owned(),
    }
}

fn regeneration_record(record: &RegenRecord) -> RegenerationRecord {
    RegenerationRecord {
        key: record.key.to_string(),
        kind: record.kind.as_str().to_owned(),
        started_at: timestamp(record.started_at),
        duration_ms: millis(record.duration),
        result: record.result.as_str().to_owned(),
        error: record.result.detail(),
    }
}
