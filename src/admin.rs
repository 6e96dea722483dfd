//! The admin listener (`[admin] listen`): `GET /metrics` for Prometheus and `GET /health` for load balancers
//! and people.
//!
//! It runs on its own address so that metrics and health are never on the public listener unless the operator
//! points both at one port. It only reads from the [`Proxy`]; it owns no state.

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

use crate::config::ServerConfig;
use crate::metrics::CONTENT_TYPE;
use crate::proxy::Proxy;
use crate::response::{Body, plain};

/// Connections the admin listener serves at once: scrapers and probes, a handful at a time.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Header and idle budget of admin connections: probes are quick, and a stuck one must not pile up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /health`: whether the proxy serves, and the state of what it depends on.
#[derive(Debug, Serialize)]
pub struct Health {
    /// The proxy serves requests (false only while `prerender.wait` holds the listener back). The origin's
    /// state does not count: with the origin down, cached pages are still served (keep-last-good).
    pub ok: bool,
    /// The in-memory cache.
    pub cache: CacheHealth,
    /// The origin, as the last request to it found it.
    pub origin: OriginHealth,
    /// Startup prerendering.
    pub prerender: PrerenderHealth,
    /// Lower cache tiers (disk, Redis), in lookup order.
    pub tiers: Vec<TierHealth>,
}

/// The `cache` part of [`Health`].
#[derive(Debug, Serialize)]
pub struct CacheHealth {
    /// Pages in memory.
    pub entries: u64,
    /// Bytes in memory, as weighed against `cache.max_size`.
    pub bytes: u64,
    /// Regenerations running now.
    pub regenerating: u64,
}

/// The `origin` part of [`Health`].
#[derive(Debug, Serialize)]
pub struct OriginHealth {
    /// Whether the last origin request got an answer (any status); `null` before the first one.
    pub reachable: Option<bool>,
}

/// The `prerender` part of [`Health`].
#[derive(Debug, Serialize)]
pub struct PrerenderHealth {
    /// Paths to prerender (known once the list is read).
    pub total: usize,
    /// Stored so far.
    pub done: usize,
    /// Failed so far (they render on demand later).
    pub failed: usize,
    /// Whether prerendering is over (or there was nothing to do).
    pub finished: bool,
}

/// One lower cache tier in [`Health`].
#[derive(Debug, Serialize)]
pub struct TierHealth {
    /// `disk`, `redis`.
    pub name: &'static str,
    /// Whether it works now; the proxy serves from memory and the origin without it.
    pub up: bool,
}

impl Health {
    /// Reads the proxy's state now.
    pub async fn of(proxy: &Proxy) -> Self {
        // moka counts lazily: apply pending housekeeping so the figures are current.
        proxy.cache().run_pending_tasks().await;
        let snapshot = proxy.snapshot();
        let progress = proxy.prerender_progress();
        Self {
            ok: proxy.is_ready(),
            cache: CacheHealth {
                entries: snapshot.cache_entries,
                bytes: snapshot.cache_bytes,
                regenerating: snapshot.regenerations_in_flight,
            },
            origin: OriginHealth {
                reachable: proxy.metrics().origin_reachable(),
            },
            prerender: PrerenderHealth {
                total: progress.report.total,
                done: progress.report.done,
                failed: progress.report.failed,
                finished: progress.finished,
            },
            tiers: proxy
                .cache()
                .tier_states()
                .into_iter()
                .map(|(name, up)| TierHealth { name, up })
                .collect(),
        }
    }
}

/// Serves `/metrics` and `/health` for `proxy` on `listener` until `shutdown` resolves.
pub async fn run_admin(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let limits = ServerConfig {
        shutdown_timeout: Duration::from_secs(1),
        header_read_timeout: ADMIN_TIMEOUT,
        idle_timeout: ADMIN_TIMEOUT,
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..ServerConfig::default()
    };
    let handler = move |request: Request<Incoming>, _client: SocketAddr| {
        let proxy = proxy.clone();
        async move { respond(&proxy, &request).await }
    };
    crate::server::serve(listener, handler, shutdown, &limits, || None).await;
}

async fn respond(proxy: &Proxy, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    if path != "/metrics" && path != "/health" {
        return plain(StatusCode::NOT_FOUND, "not found: try /metrics or /health");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed; use GET");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/metrics" {
        proxy.cache().run_pending_tasks().await;
        return match proxy.metrics().encode(proxy.snapshot()) {
            Ok(text) => with_type(StatusCode::OK, Bytes::from(text), CONTENT_TYPE),
            Err(err) => {
                tracing::error!(error = %err, "cannot encode metrics");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics")
            }
        };
    }
    let health = Health::of(proxy).await;
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_vec(&health).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    with_type(status, Bytes::from(body), "application/json")
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
