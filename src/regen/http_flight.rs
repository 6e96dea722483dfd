//! Flights on `revalidate = "origin"` routes (RFC 9111): the origin is asked with the client's request and,
//! when a stored response is being validated, its validators; a `304 Not Modified` freshens the stored response
//! without re-downloading (or re-compressing) its body; what is stored, under which `Vary` variant key, follows
//! [`crate::http_cache::judge`].

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{ETAG, HeaderName, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::fetch::{clear_failure, failed, record_failure, store, too_large};
use super::{Fetch, Inner, RegenOutcome};
use crate::cache::entry::{HttpMeta, freshen_headers};
use crate::cache::key::VaryValues;
use crate::cache::{CacheKey, Entry};
use crate::cacheability::{BypassReason, StorePolicy};
use crate::http_cache::conditional::if_none_match_matches;
use crate::http_cache::{self, Vary, origin_validators, selecting_values};
use crate::origin::{FetchRequest, Fetched, OriginError, OriginPage};

/// `Vary` variants one URL may have stored. Past it, responses for new variants are passed through, so that a
/// `Vary` on a header with unbounded values (`User-Agent`, `Cookie`) cannot fill the cache with one URL.
pub const MAX_VARY_VARIANTS: usize = 64;

/// What a flight on a `revalidate = "origin"` route carries beyond its key.
#[derive(Debug, Clone, Default)]
pub struct HttpFetch {
    /// The request of the client that caused the flight: its end-to-end headers reach the origin, and they
    /// select the `Vary` variant the response is stored as.
    pub request: Arc<HeaderMap>,
    /// The stored response being validated (its validators are sent; a `304` freshens it), if any.
    pub stored: Option<Arc<Entry>>,
    /// `false` when the request said `Cache-Control: no-store`: the response goes to that client only.
    pub may_store: bool,
}

impl HttpFetch {
    /// A flight no client request caused (on-demand regeneration, prerendering): no request headers, nothing
    /// to validate, storable.
    pub fn unconditional() -> Self {
        Self {
            request: Arc::default(),
            stored: None,
            may_store: true,
        }
    }

    /// Whether `entry` is the variant this fetch's request selects (always, for a response without `Vary`).
    pub fn is_selected(&self, entry: &Entry) -> bool {
        let Some(http) = &entry.http else {
            return true;
        };
        if http.selecting.is_empty() {
            return true;
        }
        selecting_values(&vary_names(&http.selecting), &self.request) == http.selecting
    }

    /// The key of the variant this fetch's request selects among `entry`'s siblings (`entry` varies on request
    /// headers), if it is not `key` already.
    pub fn own_variant(&self, key: &CacheKey, entry: &Entry) -> Option<CacheKey> {
        let http = entry.http.as_ref()?;
        let own = key
            .primary()
            .with_vary(selecting_values(&vary_names(&http.selecting), &self.request));
        (own != *key).then_some(own)
    }
}

fn vary_names(selecting: &[(HeaderName, Option<http::HeaderValue>)]) -> Vec<HeaderName> {
    selecting.iter().map(|(name, _)| name.clone()).collect()
}

pub(super) async fn fetch_and_store(
    inner: &Inner,
    key: &CacheKey,
    policy: &StorePolicy,
    fetch: &HttpFetch,
) -> (RegenOutcome, Fetch) {
    // §4.3.1: the entity tags of every stored variant of the URL, the validated one first, so that a 304 can
    // also say "another stored variant is right for this request".
    let mut candidates: Vec<Arc<Entry>> = fetch.stored.iter().cloned().collect();
    if !key.vary().is_empty() || inner.cache.vary_variant_count(&key.primary()) > 0 {
        for (_, sibling) in inner.cache.url_entries(&key.primary()).await {
            if sibling.etag.is_some() && !candidates.iter().any(|c| Arc::ptr_eq(c, &sibling)) {
                candidates.push(sibling);
            }
        }
    }
    let validators = origin_validators(
        candidates.iter().filter_map(|entry| entry.etag.as_ref()),
        fetch
            .stored
            .as_ref()
            .and_then(|stored| stored.headers.get(LAST_MODIFIED)),
    );
    let not_modified = |page| not_stored(key, page, BypassReason::Status(StatusCode::NOT_MODIFIED));
    match fetch_once(inner, key, policy, fetch, validators, &candidates).await {
        Ok(outcome) => outcome,
        // A 304 that names none of the stored responses cannot be used: ask again, unconditionally.
        Err(_) if !candidates.is_empty() => {
            tracing::debug!(key = %key, "304 for no stored response; fetching in full");
            fetch_once(inner, key, policy, fetch, Vec::new(), &[])
                .await
                .unwrap_or_else(not_modified)
        }
        // A 304 to an unconditional request: nothing to freshen; the client gets it as it is.
        Err(page) => not_modified(page),
    }
}

/// The stored response a `304` is about (§4.3.4): the one whose entity tag it carries, else the one being
/// validated.
fn selected_by(
    not_modified: &HeaderMap,
    validated: Option<&Arc<Entry>>,
    candidates: &[Arc<Entry>],
) -> Option<Arc<Entry>> {
    match not_modified.get(ETAG) {
        Some(tag) => candidates
            .iter()
            .find(|entry| {
                entry
                    .etag
                    .as_ref()
                    .is_some_and(|etag| if_none_match_matches(tag, Some(etag)))
            })
            .cloned(),
        None => validated.cloned(),
    }
}

/// One request to the origin with `validators`; `Err` holds a `304` that identifies none of `candidates`.
async fn fetch_once(
    inner: &Inner,
    key: &CacheKey,
    policy: &StorePolicy,
    fetch: &HttpFetch,
    validators: Vec<(HeaderName, http::HeaderValue)>,
    candidates: &[Arc<Entry>],
) -> Result<(RegenOutcome, Fetch), OriginPage> {
    let request = FetchRequest {
        headers: Some(fetch.request.clone()),
        validators,
    };
    let requested_at = inner.clock.now();
    let fetched = super::fetch::fetch_from_origin(inner, key, policy, &request).await;
    let response_time = inner.clock.now();
    Ok(match fetched {
        Ok(Fetched::Complete(page)) if page.status == StatusCode::NOT_MODIFIED => {
            clear_failure(inner, key);
            let Some(chosen) = selected_by(&page.headers, fetch.stored.as_ref(), candidates) else {
                return Err(page);
            };
            let selecting = chosen
                .http
                .as_ref()
                .map(|http| selecting_values(&vary_names(&http.selecting), &fetch.request))
                .unwrap_or_default();
            freshen(inner, key, &chosen, selecting, page, requested_at, response_time).await
        }
        Ok(Fetched::Complete(page)) if page.status.is_server_error() => {
            record_failure(inner, key);
            let keeps_good = fetch.stored.as_ref().is_some_and(|s| !s.status.is_server_error());
            if !keeps_good && let Ok(decision) = http_cache::judge(page.status, &page.headers, response_time) {
                // An error the origin itself declared cacheable, and no good response to keep instead.
                return Ok(store_response(inner, key, policy, fetch, page, decision, requested_at).await);
            }
            tracing::warn!(key = %key, status = page.status.as_u16(), "origin answered an error");
            let err = Arc::new(OriginError::Status(page.status));
            let reason = BypassReason::Status(page.status);
            (RegenOutcome::Failed(err), Fetch::Passed(page, reason))
        }
        Ok(Fetched::Complete(page)) => {
            clear_failure(inner, key);
            match http_cache::judge(page.status, &page.headers, response_time) {
                Ok(decision) => store_response(inner, key, policy, fetch, page, decision, requested_at).await,
                Err(reason) => not_stored(key, page, reason),
            }
        }
        Ok(Fetched::Oversized(oversized)) => too_large(inner, key, oversized),
        Err(err) => failed(inner, key, err),
    })
}

/// Stores a storable response under its `Vary` variant's key (RFC 9111 §4.1), unless the request said
/// `no-store` or the URL has all the variants it may have.
async fn store_response(
    inner: &Inner,
    key: &CacheKey,
    policy: &StorePolicy,
    fetch: &HttpFetch,
    page: OriginPage,
    decision: http_cache::StoreDecision,
    requested_at: SystemTime,
) -> (RegenOutcome, Fetch) {
    if !fetch.may_store {
        return not_stored(key, page, BypassReason::RequestNoStore);
    }
    let primary = key.primary();
    let (store_key, selecting, names) = match Vary::parse(&page.headers) {
        Vary::Names(names) => {
            let selecting = selecting_values(&names, &fetch.request);
            (primary.with_vary(selecting.clone()), selecting, Some(names))
        }
        Vary::None | Vary::Star => (primary.clone(), Box::default(), None),
    };
    if names.is_some()
        && inner.cache.vary_variant_count(&primary) >= MAX_VARY_VARIANTS
        && inner.cache.get(&store_key).await.is_none()
    {
        return not_stored(key, page, BypassReason::TooManyVariants);
    }
    let meta = HttpMeta {
        freshness: decision.freshness,
        initial_age: decision.initial_age,
        selecting,
    };
    let entry = Entry::from_origin_http(
        page.status,
        page.headers,
        page.body,
        requested_at,
        meta,
        policy.expire,
        &inner.settings.tags_header,
    );
    inner.cache.set_vary_names(&primary, names);
    let entry = store(inner, &store_key, entry).await;
    (RegenOutcome::Stored(entry.clone()), Fetch::Stored(entry))
}

/// A `304` for the stored response: its headers updated from the `304` (§3.2), its freshness recomputed, its
/// body (and compressed forms) kept.
async fn freshen(
    inner: &Inner,
    key: &CacheKey,
    stored: &Entry,
    selecting: VaryValues,
    not_modified: OriginPage,
    requested_at: SystemTime,
    response_time: SystemTime,
) -> (RegenOutcome, Fetch) {
    let headers = freshen_headers(&stored.headers, &not_modified.headers);
    let decision =
        http_cache::judge(stored.status, &headers, response_time).map(|decision| http_cache::StoreDecision {
            // The age the 304 reports, not the stored response's.
            initial_age: http_cache::freshness::age_value(&not_modified.headers),
            ..decision
        });
    let decision = match decision {
        Ok(decision) => decision,
        Err(reason) => {
            // Updated headers that forbid storing: this client gets the stored body with them, once.
            let page = OriginPage {
                status: stored.status,
                headers,
                body: stored.body.clone(),
            };
            return not_stored(key, page, reason);
        }
    };
    let meta = HttpMeta {
        freshness: decision.freshness,
        initial_age: decision.initial_age,
        selecting,
    };
    let entry = Arc::new(stored.revalidated(headers, requested_at, meta, &inner.settings.tags_header));
    let entry = if inner.cache.insert(key.clone(), entry.clone()).await {
        tracing::debug!(key = %key, "validated (304); stored response freshened");
        entry
    } else {
        inner.cache.get(key).await.unwrap_or(entry)
    };
    (RegenOutcome::Stored(entry.clone()), Fetch::Stored(entry))
}

fn not_stored(key: &CacheKey, page: OriginPage, reason: BypassReason) -> (RegenOutcome, Fetch) {
    tracing::debug!(key = %key, reason = %reason, "origin response not stored");
    (RegenOutcome::NotStored(reason), Fetch::Passed(page, reason))
}
