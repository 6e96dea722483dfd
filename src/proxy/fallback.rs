//! What a route's `fallback` mode serves for a page that is not cached yet: a 404 for a path nobody listed
//! (`fallback = false`), a placeholder while the page renders (`fallback = true`), or nothing, so that the request
//! waits for the page (`"blocking"`, a known path, a crawler, or a placeholder that cannot be had). Shared by
//! time-based and `revalidate = "origin"` routes, which differ only in how they wait.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};

use super::Proxy;
use crate::cache::{CacheKey, Entry};
use crate::cacheability::{OriginCacheControl, Revalidate, StorePolicy};
use crate::regen::Fetch;
use crate::response::{Body, CacheStatus, RequestFacts, entry_response, plain};
use crate::route::{Fallback, RouteRule};

impl Proxy {
    /// The fallback answer to a miss on `key` (the URL's primary key), or `None`: the request waits for the page.
    pub(super) async fn fallback(
        &self,
        key: &CacheKey,
        rule: &RouteRule,
        headers: &HeaderMap,
        facts: &RequestFacts,
    ) -> Option<Response<Body>> {
        match rule.fallback {
            Fallback::NotFound if !self.regen.is_known(key) => Some(self.not_found(facts).await),
            Fallback::Placeholder if !self.is_crawler(headers) => self.placeholder(key, rule, facts).await,
            Fallback::Blocking | Fallback::NotFound | Fallback::Placeholder => None,
        }
    }

    /// `fallback = false` and a path nobody listed: 404 without asking the origin for it. The body is the
    /// origin's `not_found_page`, fetched once and cached, or a short plain text.
    async fn not_found(&self, facts: &RequestFacts) -> Response<Body> {
        let page = match &self.not_found_page {
            Some(key) => self.stored_or_fetched(key.clone(), not_found_policy()).await,
            None => None,
        };
        let Some(page) = page else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let mut response = entry_response(&page, CacheStatus::Hit, page.age(self.clock.now()), facts);
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    }

    /// `fallback = true`: the placeholder now, the real page rendering in the background; `None` (wait for the
    /// real page, whose render has started) if the route names no placeholder or it cannot be had.
    async fn placeholder(&self, key: &CacheKey, rule: &RouteRule, facts: &RequestFacts) -> Option<Response<Body>> {
        let placeholder_path = rule.fallback_page.as_ref()?;
        let policy = rule.store_policy();
        self.regen.warm_in_background(key.clone(), policy.clone());
        let placeholder_key = CacheKey::on_host(key.host(), placeholder_path, None, Vec::new());
        let entry = self.stored_or_fetched(placeholder_key, policy).await?;
        Some(entry_response(&entry, CacheStatus::Fallback, Duration::ZERO, facts))
    }

    /// The page under `key` from the cache, or fetched (single-flight) and stored if it is not there.
    async fn stored_or_fetched(&self, key: CacheKey, policy: StorePolicy) -> Option<Arc<Entry>> {
        if let Some(entry) = self.cache.get(&key).await {
            return Some(entry);
        }
        match self.regen.fetch(key, policy, None).await {
            Fetch::Stored(entry) => Some(entry),
            _ => None,
        }
    }

    /// Whether the `User-Agent` names one of `fallback.crawlers`: a crawler waits for the real page rather than
    /// indexing a placeholder.
    fn is_crawler(&self, headers: &HeaderMap) -> bool {
        let Some(agent) = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let agent = agent.to_ascii_lowercase();
        self.crawlers.iter().any(|crawler| agent.contains(crawler.as_str()))
    }
}

/// The not-found page is kept until regenerated on demand, whatever the origin says about it.
fn not_found_policy() -> StorePolicy {
    StorePolicy {
        route: Arc::from("[origin].not_found_page"),
        revalidate: Revalidate::OnDemand,
        not_found_revalidate: None,
        expire: Duration::ZERO,
        origin_cache_control: OriginCacheControl::Ignore,
    }
}
