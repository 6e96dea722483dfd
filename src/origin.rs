//! Talking to the origin: one pooled hyper-util client for cached fetches and pass-through.
//!
//! A cached fetch ([`OriginClient::fetch`]) on a time-based route is fully determined by its [`CacheKey`] (no
//! client headers leak in); on a `revalidate = "origin"` route it carries the client's end-to-end request headers
//! and, when revalidating, the stored response's validators ([`FetchRequest`]), as any HTTP cache does. Either way
//! it is buffered under a size limit and bounded by one whole-response timeout, so a hung origin can never pin a
//! key.
//! Pass-through ([`OriginClient::forward`]) streams both ways and only bounds the time to response headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use crate::cache::entry::strip_connection_listed;
use crate::cache::key::CacheKey;
use crate::config::OriginConfig;
use crate::metrics::{Metrics, OriginOutcome};

/// Connect budget, separate from the response timeout so an unreachable origin fails fast with a 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Request headers that belong to one connection only (RFC 9110 §7.6.1) and are never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

type OutgoingBody = BoxBody<Bytes, hyper::Error>;

/// Request headers a cached fetch never forwards from a client even on `revalidate = "origin"` routes: the
/// cache makes its own conditional and range decisions (it fetches the whole response, stores it, and answers the
/// client's condition or range from it), asks for identity coding (it compresses itself), and sets `Host`.
/// `Authorization` never gets here (such requests are passed through); it is listed so that it never could.
const NOT_FORWARDED_ON_FETCH: [HeaderName; 11] = [
    header::HOST,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
    header::ACCEPT_ENCODING,
    header::CONTENT_LENGTH,
    header::EXPECT,
    header::AUTHORIZATION,
];

/// What a cached fetch sends beyond its key. Empty on time-based routes (the key alone decides the request).
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// `revalidate = "origin"` routes: the request of the client that caused the fetch; its end-to-end headers
    /// reach the origin (hop-by-hop ones and [`NOT_FORWARDED_ON_FETCH`] excepted).
    pub headers: Option<Arc<HeaderMap>>,
    /// Conditional headers validating stored responses (`If-None-Match`, `If-Modified-Since`).
    pub validators: Vec<(HeaderName, HeaderValue)>,
}

/// An origin response, buffered whole.
#[derive(Debug)]
pub struct OriginPage {
    /// Status as sent by the origin.
    pub status: StatusCode,
    /// Headers as sent by the origin.
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
}

/// A response too large to store: what was read so far, and the rest still streaming.
#[derive(Debug)]
pub struct Oversized {
    /// Status and headers.
    pub parts: http::response::Parts,
    /// Body chunks already read.
    pub received: Vec<Bytes>,
    /// The remaining body.
    pub rest: Incoming,
}

/// What a cached-route fetch produced.
#[derive(Debug)]
pub enum Fetched {
    /// The whole response, within the size limit.
    Complete(OriginPage),
    /// Larger than `max_entry_size`: serve it streamed, do not store it.
    Oversized(Oversized),
}

/// Why an origin fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// TCP connect failed (origin down, wrong address).
    #[error("cannot connect to origin: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The connection broke before a response arrived.
    #[error("origin request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
    /// No complete response within the configured timeout.
    #[error("origin did not answer within {0:?}")]
    Timeout(Duration),
    /// The origin answered with an error status (5xx); the last good page is kept.
    #[error("origin answered {0}")]
    Status(StatusCode),
    /// The body was cut short or malformed; nothing of it is stored.
    #[error("origin body failed: {0}")]
    Body(#[source] hyper::Error),
    /// Every origin slot (`origin.max_connections`) stayed taken for `origin.queue_timeout`.
    #[error("origin busy: no free connection within {0:?}")]
    Busy(Duration),
    /// The path could not be turned into an origin URI.
    #[error("cannot build origin uri for {0:?}")]
    BadUri(String),
}

impl OriginError {
    /// Whether this is a timeout (504) rather than another origin fault (502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether isr-proxy gave up waiting for an origin slot (503) without asking the origin.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_))
    }
}

/// The pooled client for one origin.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, OutgoingBody>,
    scheme: Scheme,
    authority: Authority,
    prefix: Arc<str>,
    timeout: Duration,
    max_body: usize,
    fetch_permits: Arc<Semaphore>,
    queue_timeout: Duration,
    user_agent: HeaderValue,
    metrics: Arc<Metrics>,
}

impl OriginClient {
    /// A client for `config.url`; cached fetches buffer at most `max_body` bytes and are recorded in `metrics`.
    pub fn new(config: &OriginConfig, max_body: u64, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let parts = config.url.clone().into_parts();
        let prefix = parts
            .path_and_query
            .as_ref()
            .map_or("", |pq| pq.path())
            .trim_end_matches('/')
            .to_owned();
        Self {
            client,
            scheme: parts.scheme.unwrap_or(Scheme::HTTP),
            authority: parts.authority.unwrap_or(Authority::from_static("127.0.0.1")),
            prefix: prefix.into(),
            timeout: config.timeout,
            max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
            fetch_permits: Arc::new(Semaphore::new(config.max_connections)),
            queue_timeout: config.queue_timeout,
            user_agent: HeaderValue::from_static(concat!("isr-proxy/", env!("CARGO_PKG_VERSION"))),
            metrics,
        }
    }

    /// Fetches the page for `key`: GET with only the key's variant headers, buffered up to the size limit, all
    /// within the timeout. At most `origin.max_connections` of these run at once; the rest queue, for at most
    /// `origin.queue_timeout` (then [`OriginError::Busy`]) and within the same overall timeout.
    pub async fn fetch(&self, key: &CacheKey, request: &FetchRequest) -> Result<Fetched, OriginError> {
        let started = Instant::now();
        let result = self.fetch_unrecorded(key, request).await;
        self.metrics.record_origin_fetch(outcome_of(&result), started.elapsed());
        result
    }

    async fn fetch_unrecorded(&self, key: &CacheKey, fetch: &FetchRequest) -> Result<Fetched, OriginError> {
        let uri = self.uri_for(key.path_and_query())?;
        let mut request = Request::get(uri)
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .map_err(|_| OriginError::BadUri(key.path_and_query().to_owned()))?;
        let headers = request.headers_mut();
        if let Some(client) = &fetch.headers {
            forward_end_to_end(client, headers);
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, self.user_agent.clone());
        }
        for (name, value) in &fetch.validators {
            headers.insert(name.clone(), value.clone());
        }
        // Stored bodies are identity-encoded; compression for clients is isr-proxy's job.
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        for (name, value) in key.variant() {
            headers.insert(name.clone(), value.clone());
        }
        let fetch = async {
            let _permit = tokio::time::timeout(self.queue_timeout, self.fetch_permits.acquire())
                .await
                .map_err(|_| OriginError::Busy(self.queue_timeout))?;
            let response = self.client.request(request).await.map_err(classify)?;
            self.read_limited(response).await
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| OriginError::Timeout(self.timeout))?
    }

    async fn read_limited(&self, response: Response<Incoming>) -> Result<Fetched, OriginError> {
        let (parts, mut body) = response.into_parts();
        let mut received = Vec::new();
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(OriginError::Body)?;
            let Ok(data) = frame.into_data() else { continue };
            len += data.len();
            received.push(data);
            if len > self.max_body {
                return Ok(Fetched::Oversized(Oversized {
                    parts,
                    received,
                    rest: body,
                }));
            }
        }
        // Always one exact-size copy, even for a single chunk: hyper's chunks are slices of the connection's read
        // buffer, and a stored page holding one would keep that whole buffer alive.
        let mut joined = Vec::with_capacity(len);
        for chunk in &received {
            joined.extend_from_slice(chunk);
        }
        let body = Bytes::from(joined);
        Ok(Fetched::Complete(OriginPage {
            status: parts.status,
            headers: parts.headers,
            body,
        }))
    }

    /// Forwards a request (streamed body), minus hop-by-hop headers, plus `X-Forwarded-*`, to `path`: the
    /// normalised path the proxy routed on, so that the origin never sees a different path than the one the
    /// proxy decided on (`/blog/../admin` is routed, and forwarded, as `/admin`). The query goes as sent. Only the
    /// time to response headers is bounded; the body streams for as long as it takes.
    pub async fn forward(
        &self,
        request: Request<Incoming>,
        path: &str,
        client: SocketAddr,
    ) -> Result<Response<Incoming>, OriginError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = match parts.uri.query() {
            Some(query) => self.uri_for(&format!("{path}?{query}"))?,
            None => self.uri_for(path)?,
        };
        let original_host = parts.headers.remove(header::HOST);
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, client, original_host);
        let request = Request::from_parts(parts, body.boxed());
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| OriginError::Timeout(self.timeout))?
            .map_err(classify);
        self.metrics.record_origin_reachable(response.is_ok());
        let response = response?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }

    fn uri_for(&self, path_and_query: &str) -> Result<Uri, OriginError> {
        let full = format!("{}{}", self.prefix, path_and_query);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(full)
            .build()
            .map_err(|_| OriginError::BadUri(path_and_query.to_owned()))
    }
}

fn outcome_of(result: &Result<Fetched, OriginError>) -> OriginOutcome {
    match result {
        Ok(Fetched::Complete(page)) if page.status.is_server_error() => OriginOutcome::ServerError,
        Ok(Fetched::Complete(_)) => OriginOutcome::Complete,
        Ok(Fetched::Oversized(_)) => OriginOutcome::Oversized,
        Err(OriginError::Timeout(_)) => OriginOutcome::Timeout,
        Err(OriginError::Connect(_)) => OriginOutcome::Connect,
        Err(OriginError::Request(_) | OriginError::Body(_) | OriginError::BadUri(_) | OriginError::Status(_)) => {
            OriginOutcome::Broken
        }
        Err(OriginError::Busy(_)) => OriginOutcome::Busy,
    }
}

fn classify(err: hyper_util::client::legacy::Error) -> OriginError {
    if err.is_connect() {
        OriginError::Connect(err)
    } else {
        OriginError::Request(err)
    }
}

/// Copies a client's end-to-end request headers onto a cached fetch (see [`FetchRequest::headers`]).
fn forward_end_to_end(client: &HeaderMap, onto: &mut HeaderMap) {
    let mut copied = client.clone();
    strip_hop_by_hop(&mut copied);
    for name in &NOT_FORWARDED_ON_FETCH {
        copied.remove(name);
    }
    for (name, value) in copied.iter() {
        onto.append(name.clone(), value.clone());
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_connection_listed(headers);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr, original_host: Option<HeaderValue>) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    let ip = client.ip().to_string();
    let forwarded_for = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::try_from(forwarded_for) {
        headers.insert(XFF, value);
    }
    if let Some(host) = original_host {
        headers.entry(XFH).or_insert(host);
    }
    headers.entry(XFP).or_insert(HeaderValue::from_static("http"));
}
