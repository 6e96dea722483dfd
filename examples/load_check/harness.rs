//! The pieces every load check shares: a counting origin, isr-proxy in front of it on loopback, and clients
//! that request many pages at a fixed concurrency.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use isr_proxy::{Clock, Config, Proxy};
use tokio::net::TcpListener;

use crate::Error;

/// The tag the origin puts on its tagged pages (see [`OriginPages::tagged_below`]).
pub(crate) const BULK_TAG: &str = "bulk";

/// What the origin saw.
#[derive(Default)]
pub(crate) struct OriginStats {
    pub(crate) fetches: AtomicU64,
    in_flight: AtomicUsize,
    pub(crate) peak: AtomicUsize,
}

/// What the origin answers for every `/page/<id>`.
pub(crate) struct OriginPages {
    pub(crate) body: Bytes,
    pub(crate) content_type: &'static str,
    /// Render time per page.
    pub(crate) delay: Duration,
    /// Pages whose id is below this carry `x-isr-tags: bulk`.
    pub(crate) tagged_below: usize,
}

impl OriginPages {
    /// `bytes` of one repeated byte, not compressible by type, rendered at once, untagged.
    pub(crate) fn plain(bytes: usize) -> Self {
        Self {
            body: Bytes::from(vec![b'x'; bytes]),
            content_type: "application/octet-stream",
            delay: Duration::ZERO,
            tagged_below: 0,
        }
    }
}

/// How the proxy in front of the origin is configured.
pub(crate) struct ProxySettings {
    pub(crate) max_size_mib: usize,
    /// `cache.compress`.
    pub(crate) compress: bool,
    /// More TOML appended to the config (a `[revalidate]` section).
    pub(crate) extra: String,
}

impl ProxySettings {
    /// A cache of `max_size_mib` that stores identity bodies only.
    pub(crate) fn uncompressed(max_size_mib: usize) -> Self {
        Self {
            max_size_mib,
            compress: false,
            extra: String::new(),
        }
    }
}

/// Starts the counting origin serving `pages` and the proxy in front of it; returns the origin's counters, the
/// proxy (to read its cache) and its base URL.
pub(crate) async fn start(
    pages: OriginPages,
    settings: &ProxySettings,
) -> Result<(Arc<OriginStats>, Arc<Proxy>, String), Error> {
    let (stats, origin_addr) = start_origin(pages).await?;
    let config = Config::from_toml_str(&format!(
        r#"
[origin]
url = "http://{origin_addr}"
timeout = "60s"
queue_timeout = "60s"

[cache]
max_size = "{}MiB"
compress = {}

[[route]]
path = "/page/:id"
revalidate = 3600
{}
"#,
        settings.max_size_mib, settings.compress, settings.extra
    ))?;
    let proxy = Proxy::new(&config, Clock::system());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(isr_proxy::run(
        listener,
        proxy.clone(),
        std::future::pending(),
        Duration::ZERO,
    ));
    Ok((stats, proxy, base))
}

async fn start_origin(pages: OriginPages) -> Result<(Arc<OriginStats>, SocketAddr), Error> {
    let stats = Arc::new(OriginStats::default());
    let pages = Arc::new(pages);
    let origin = TcpListener::bind("127.0.0.1:0").await?;
    let origin_addr = origin.local_addr()?;
    let origin_stats = stats.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = origin.accept().await {
            let (stats, pages) = (origin_stats.clone(), pages.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (stats, pages) = (stats.clone(), pages.clone());
                    async move {
                        stats.fetches.fetch_add(1, Ordering::Relaxed);
                        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                        stats.peak.fetch_max(now, Ordering::Relaxed);
                        if !pages.delay.is_zero() {
                            tokio::time::sleep(pages.delay).await;
                        }
                        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                        let id = request
                            .uri()
                            .path()
                            .strip_prefix("/page/")
                            .and_then(|id| id.parse::<usize>().ok());
                        let mut response = Response::builder().header("content-type", pages.content_type);
                        if id.is_some_and(|id| id < pages.tagged_below) {
                            response = response.header("x-isr-tags", BULK_TAG);
                        }
                        Ok::<_, Infallible>(response.body(Full::new(pages.body.clone())).unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((stats, origin_addr))
}

/// An HTTP/1.1 client keeping up to `connections` idle connections.
pub(crate) fn client(connections: usize) -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http::<Empty<Bytes>>()
}

/// GETs `url` and reads the whole body; whether it answered 2xx.
pub(crate) async fn get_ok(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> bool {
    let Ok(uri) = url.parse() else { return false };
    match client.get(uri).await {
        Ok(response) => response.status().is_success() && response.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

/// GETs `/page/<i>` for every i, `concurrency` at a time; returns the number of failed or non-2xx requests.
pub(crate) async fn fetch_all(base: &str, ids: std::ops::Range<usize>, concurrency: usize) -> usize {
    let client = client(concurrency);
    let next = Arc::new(AtomicUsize::new(ids.start));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, errors, base, end) =
            (client.clone(), next.clone(), errors.clone(), base.to_owned(), ids.end);
        workers.spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= end {
                    break;
                }
                if !get_ok(&client, &format!("{base}/page/{id}")).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    errors.load(Ordering::Relaxed)
}
