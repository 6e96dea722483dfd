//! The admin listener (`[admin] listen`): metrics and health for machines, and a look inside the cache for
//! people and the `isr-proxy` subcommands.
//!
//! | Path | Answers |
//! |---|---|
//! | `GET /` | the [`dashboard`] (with `/dashboard.js`, `/dashboard.css`) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /health` | [`api::Health`] (200, or 503 while prerendering holds the listener back) |
//! | `GET /stats` | [`api::Stats`]: hit ratio, entries, bytes, regenerations, Redis state |
//! | `GET /cache?prefix=&tag=&state=&limit=&cursor=` | [`api::CacheListing`]: one page of the pages in memory |
//! | `GET /cache/entry?path=&variant=` | [`api::EntryDetail`]: one page in full, its route and regeneration |
//! | `GET /regenerations` | [`api::Regenerations`]: running, recently failed and recent regenerations |
//! | `GET /history?after=` | [`api::History`]: the last hour of the figures, sampled ([`history`]) |
//! | `POST /revalidate` | the revalidation endpoint's answer, when a token is set ([`actions`]) |
//!
//! It runs on its own address so that none of this is ever on the public listener unless the operator points
//! both at one port. It reads from the [`Proxy`] and changes it only through `POST /revalidate`; the one
//! state it owns is the history ring. The JSON documents are the types in [`api`], which the subcommands'
//! [`client`] reads back.

mod actions;
pub mod api;
pub mod client;
mod dashboard;
mod health;
pub mod history;
mod inspect;
pub mod query;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::net::TcpListener;

pub use api::{Health, Stats};
pub use inspect::timestamp;

use self::history::HistoryRing;
use crate::config::ServerConfig;
use crate::metrics::CONTENT_TYPE;
use crate::proxy::Proxy;
use crate::reload::LiveProxy;
use crate::response::Body;

/// Connections the admin listener serves at once: scrapers and probes, a handful at a time.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Header and idle budget of admin connections: probes are quick, and a stuck one must not pile up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The paths served, for the 404's hint.
const PATHS: &str = "/ (dashboard), /metrics, /health, /stats, /cache, /cache/entry, /regenerations, /history, \
     /revalidate (POST)";

/// Why an admin request was refused. Each maps to one status in [`AdminError::status`]; the body is
/// [`api::ErrorBody`].
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A bad parameter; the text names it and says what is expected.
    #[error("{0}")]
    BadRequest(String),
    /// No such path, or no such page; the text says why.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed here (actions without a token set, a request from another site); the text says why.
    #[error("{0}")]
    Forbidden(String),
    /// The path takes other methods.
    #[error("method not allowed; use {allow}")]
    Method {
        /// The methods it takes, as the `Allow` header lists them.
        allow: &'static str,
    },
}

impl AdminError {
    /// The status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut response = json(
            self.status(),
            &api::ErrorBody {
                error: self.to_string(),
            },
        );
        if let Self::Method { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Serves the admin paths for `proxy` on `listener` until `shutdown` resolves.
pub async fn run_admin(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    run_admin_live(listener, LiveProxy::new(proxy), shutdown).await;
}

/// [`run_admin`] for whatever proxy `live` holds when each request arrives (config reloads swap it).
pub async fn run_admin_live(listener: TcpListener, live: Arc<LiveProxy>, shutdown: impl Future<Output = ()>) {
    run_admin_sampling(listener, live, history::DEFAULT_SAMPLE_INTERVAL, shutdown).await;
}

/// [`run_admin_live`] with `/history` sampled every `interval` (tests use a short one).
pub async fn run_admin_sampling(
    listener: TcpListener,
    live: Arc<LiveProxy>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let ring = Arc::new(HistoryRing::new(interval));
    let sampler = tokio::spawn(history::sample_forever(live.clone(), ring.clone()));
    let _stop_sampler = AbortOnDrop(sampler);
    let limits = ServerConfig {
        shutdown_timeout: Duration::from_secs(1),
        header_read_timeout: ADMIN_TIMEOUT,
        idle_timeout: ADMIN_TIMEOUT,
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..ServerConfig::default()
    };
    let handler = move |request: Request<Incoming>, _client: SocketAddr| {
        let proxy = live.current();
        let ring = ring.clone();
        async move {
            match respond(&proxy, &ring, request).await {
                Ok(response) => response,
                Err(err) => err.into_response(),
            }
        }
    };
    crate::server::serve(listener, || handler.clone(), shutdown, &limits, || None).await;
}

/// Stops the sampler when the admin listener stops (or its task is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn respond(proxy: &Proxy, ring: &HistoryRing, request: Request<Incoming>) -> Result<Response<Body>, AdminError> {
    let path = request.uri().path();
    if path == "/revalidate" {
        return actions::revalidate(proxy, request).await;
    }
    let known = matches!(
        path,
        "/metrics" | "/health" | "/stats" | "/cache" | "/cache/entry" | "/regenerations" | "/history"
    );
    if !known && !dashboard::PATHS.contains(&path) {
        return Err(AdminError::NotFound(format!("not found: try {PATHS}")));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(AdminError::Method { allow: "GET, HEAD" });
    }
    let params = request.uri().query();
    if dashboard::PATHS.contains(&path) {
        query::no_params(params)?;
        return Ok(dashboard::asset(path));
    }
    Ok(match path {
        "/metrics" => metrics(proxy).await,
        "/health" => {
            let health = Health::of(proxy).await;
            let status = if health.ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, &health)
        }
        "/stats" => {
            query::no_params(params)?;
            json(StatusCode::OK, &Stats::of(proxy).await)
        }
        "/cache" => {
            let list = query::list_query(params)?;
            // Evictions are applied (and leave the index) in moka's housekeeping: apply what is pending.
            proxy.cache().run_pending_tasks().await;
            json(StatusCode::OK, &inspect::listing(proxy, &list).await)
        }
        "/cache/entry" => {
            let request = query::entry_request(params)?;
            json(StatusCode::OK, &inspect::entry(proxy, request).await?)
        }
        "/history" => json(StatusCode::OK, &ring.since(query::history_after(params)?)),
        _ => {
            query::no_params(params)?;
            json(StatusCode::OK, &inspect::regenerations(proxy))
        }
    })
}

async fn metrics(proxy: &Proxy) -> Response<Body> {
    proxy.cache().run_pending_tasks().await;
    match proxy.metrics().encode(proxy.snapshot()) {
        Ok(text) => with_type(StatusCode::OK, Bytes::from(text), CONTENT_TYPE),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            crate::response::plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics")
        }
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, Bytes::from(body), "application/json"),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode an admin response");
            crate::response::plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the response")
        }
    }
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
