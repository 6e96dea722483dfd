//! The integration-test harness, written once: a scripted origin ([`TestOrigin`]) on a real socket, the proxy on
//! loopback with a manual clock ([`spawn_proxy`]), a small client ([`TestClient`]) and bounded waits
//! ([`within`], [`eventually`]). Each test file uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use isr_proxy::{Clock, ClockHandle, Config, Proxy};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub(crate) mod admin;
pub(crate) mod binary;
pub(crate) mod fleet;
pub(crate) mod raw;
pub(crate) mod redis_server;
pub(crate) mod tls;

/// The origin answers a request to this path with the request body.
pub(crate) const ECHO_PATH: &str = "/echo";

type RenderFn = Arc<dyn Fn(usize) -> String + Send + Sync>;
type RequestRenderFn = Arc<dyn Fn(&HeaderMap, usize) -> String + Send + Sync>;

/// How the origin answers one path.
#[derive(Clone, Default)]
struct PageSpec {
    render: Option<RenderFn>,
    render_request: Option<RequestRenderFn>,
    status: Option<StatusCode>,
    latency: Duration,
    headers: Vec<(String, String)>,
    failing: Option<StatusCode>,
    /// Answer conditional requests (`If-None-Match` or `If-Modified-Since`) with `304 Not Modified`.
    not_modified: bool,
}

#[derive(Default)]
struct OriginState {
    pages: HashMap<String, PageSpec>,
    renders: HashMap<String, usize>,
    seen: HashMap<String, Vec<SeenRequest>>,
    /// Requests being answered now, and the most there ever were at once.
    active: usize,
    max_active: usize,
    /// Connections accepted (TLS: handshakes completed), to see pooled reuse.
    connections: usize,
}

type SharedState = Arc<Mutex<OriginState>>;

/// A request as the origin received it.
#[derive(Clone, Debug)]
pub(crate) struct SeenRequest {
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) version: http::Version,
}

/// Builds a scripted origin. Unscripted paths answer 200 `<p>{path} render {n}</p>`, `n` counting from 1 per path.
#[derive(Default)]
pub(crate) struct TestOrigin {
    state: OriginState,
}

impl TestOrigin {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn spec(&mut self, path: &str) -> &mut PageSpec {
        self.state.pages.entry(path.to_owned()).or_default()
    }

    /// Renders `path`'s body from its render number `n` (1, 2, ...).
    pub(crate) fn page(mut self, path: &str, render: impl Fn(usize) -> String + Send + Sync + 'static) -> Self {
        self.spec(path).render = Some(Arc::new(render));
        self
    }

    /// Renders `path`'s body from the request's headers and its render number (an origin that varies).
    pub(crate) fn page_for(
        mut self,
        path: &str,
        render: impl Fn(&HeaderMap, usize) -> String + Send + Sync + 'static,
    ) -> Self {
        self.spec(path).render_request = Some(Arc::new(render));
        self
    }

    pub(crate) fn status(mut self, path: &str, status: StatusCode) -> Self {
        self.spec(path).status = Some(status);
        self
    }

    pub(crate) fn latency(mut self, path: &str, latency: Duration) -> Self {
        self.spec(path).latency = latency;
        self
    }

    /// Adds a response header; `{n}` in the value is replaced by the render number.
    pub(crate) fn header(mut self, path: &str, name: &str, value: &str) -> Self {
        self.spec(path).headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) async fn start(self) -> OriginHandle {
        self.start_with(None).await
    }

    /// Starts the origin behind TLS (HTTP/2 and HTTP/1.1 as `acceptor`'s ALPN offers); its URL is
    /// `https://127.0.0.1:<port>`.
    pub(crate) async fn start_tls(self, acceptor: tokio_rustls::TlsAcceptor) -> OriginHandle {
        self.start_with(Some(acceptor)).await
    }

    async fn start_with(self, tls: Option<tokio_rustls::TlsAcceptor>) -> OriginHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(Mutex::new(self.state));
        let server = tokio::spawn(serve_origin(listener, state.clone(), tls.clone()));
        OriginHandle {
            addr,
            state,
            tls,
            server: Mutex::new(Some(server)),
        }
    }
}

/// A running origin. Dropping it stops it.
pub(crate) struct OriginHandle {
    pub(crate) addr: SocketAddr,
    state: SharedState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl OriginHandle {
    pub(crate) fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Connections the origin accepted (for TLS: handshakes that succeeded).
    pub(crate) fn connections(&self) -> usize {
        self.with_state(|s| s.connections)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut OriginState) -> T) -> T {
        f(&mut self.state.lock().expect("origin state lock"))
    }

    /// Requests the origin received for `path` (query ignored): every one counts, failed or timed out.
    pub(crate) fn renders(&self, path: &str) -> usize {
        self.with_state(|s| s.renders.get(path).copied().unwrap_or(0))
    }

    /// Every request the origin received for `path` (query ignored), oldest first.
    pub(crate) fn requests(&self, path: &str) -> Vec<SeenRequest> {
        self.with_state(|s| s.seen.get(path).cloned().unwrap_or_default())
    }

    /// The most requests the origin was ever answering at once (any path).
    pub(crate) fn max_concurrent(&self) -> usize {
        self.with_state(|s| s.max_active)
    }

    pub(crate) fn last_request(&self, path: &str) -> SeenRequest {
        self.requests(path)
            .pop()
            .unwrap_or_else(|| panic!("origin never saw {path}"))
    }

    /// Makes `path` answer `status` (`None`: answer normally again).
    pub(crate) fn set_failing(&self, path: &str, status: Option<StatusCode>) {
        self.with_state(|s| s.pages.entry(path.to_owned()).or_default().failing = status);
    }

    /// Replaces `path`'s response headers (`{n}` is the render number, as in [`TestOrigin::header`]).
    pub(crate) fn set_headers(&self, path: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        self.with_state(|s| s.pages.entry(path.to_owned()).or_default().headers = headers);
    }

    /// Makes `path` answer conditional requests with `304 Not Modified` (and its headers), or stop doing so.
    pub(crate) fn set_not_modified(&self, path: &str, not_modified: bool) {
        self.with_state(|s| s.pages.entry(path.to_owned()).or_default().not_modified = not_modified);
    }

    pub(crate) fn set_latency(&self, path: &str, latency: Duration) {
        self.with_state(|s| s.pages.entry(path.to_owned()).or_default().latency = latency);
    }

    /// Closes the listener and every open connection: the origin is down (connection refused).
    pub(crate) async fn stop(&self) {
        let server = self.server.lock().expect("origin server lock").take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same address, with the same pages and counters.
    pub(crate) async fn resume(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind origin");
        let server = tokio::spawn(serve_origin(listener, self.state.clone(), self.tls.clone()));
        *self.server.lock().expect("origin server lock") = Some(server);
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        if let Some(server) = self.server.get_mut().ok().and_then(Option::take) {
            server.abort();
        }
    }
}

/// Accept loop; connections live in a `JoinSet` so aborting this task closes them all. Plain connections speak
/// HTTP/1.1; TLS ones whatever ALPN chose.
async fn serve_origin(listener: TcpListener, state: SharedState, tls: Option<tokio_rustls::TlsAcceptor>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let state = state.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let count_connection = || state.lock().expect("origin state lock").connections += 1;
            let Some(acceptor) = tls else {
                count_connection();
                let service = service_fn(move |request| respond(state.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                return;
            };
            // A failed handshake (the client does not trust us) is not a connection.
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            count_connection();
            let service = service_fn(move |request| respond(state.clone(), request));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(state: SharedState, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let seen = SeenRequest {
        method: request.method().clone(),
        uri: request
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: request.headers().clone(),
        version: request.version(),
    };
    let (n, spec) = {
        let mut state = state.lock().expect("origin state lock");
        let count = state.renders.entry(path.clone()).or_default();
        *count += 1;
        let n = *count;
        state.seen.entry(path.clone()).or_default().push(seen);
        state.active += 1;
        state.max_active = state.max_active.max(state.active);
        (n, state.pages.get(&path).cloned().unwrap_or_default())
    };
    let _active = ActiveGuard(state.clone());
    if !spec.latency.is_zero() {
        tokio::time::sleep(spec.latency).await;
    }
    let conditional = request.headers().contains_key(http::header::IF_NONE_MATCH)
        || request.headers().contains_key(http::header::IF_MODIFIED_SINCE);
    let (status, body) = if let Some(status) = spec.failing {
        (status, Bytes::from(format!("origin failing: {path} render {n}")))
    } else if spec.not_modified && conditional {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if let Some(render) = &spec.render_request {
        let text = render(request.headers(), n);
        (spec.status.unwrap_or(StatusCode::OK), Bytes::from(text))
    } else if path == ECHO_PATH {
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        (StatusCode::OK, body.unwrap_or_default())
    } else {
        let text = spec
            .render
            .map_or_else(|| format!("<p>{path} render {n}</p>"), |render| render(n));
        (spec.status.unwrap_or(StatusCode::OK), Bytes::from(text))
    };
    let mut response = Response::builder().status(status);
    if spec.failing.is_none() {
        for (name, value) in &spec.headers {
            response = response.header(name, value.replace("{n}", &n.to_string()));
        }
    }
    Ok(response.body(Full::new(body)).expect("valid origin response"))
}

/// Counts a request as answered when dropped (also when the proxy hangs up first).
struct ActiveGuard(SharedState);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.active -= 1;
        }
    }
}

/// A standards-mode (RFC 9111) setup: every path below `/std/` is cached as its origin's headers say, with
/// every query parameter in the key, as cache-tests.fyi runs HTTP caches.
pub(crate) const STANDARD_CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/std/*rest"
revalidate = "origin"
query = "keep"
"#;

/// The simplest cached setup: `/blog/:slug` fresh for 60 s in front of `{origin}`, everything else passed through.
pub(crate) const BLOG_CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

/// A proxy serving on loopback, with its manual clock and a client pointed at it.
pub(crate) struct ProxyHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) clock: ClockHandle,
    pub(crate) client: TestClient,
    pub(crate) proxy: Arc<Proxy>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Starts the proxy for `toml`, in which `{origin}` stands for the origin's URL.
pub(crate) async fn spawn_proxy(toml: &str, origin: &OriginHandle) -> ProxyHandle {
    spawn_proxy_with(toml, origin, |_| {}).await
}

/// Like [`spawn_proxy`], with a chance to adjust the parsed config (e.g. set the revalidation token, which
/// production reads from the environment).
pub(crate) async fn spawn_proxy_with(
    toml: &str,
    origin: &OriginHandle,
    configure: impl FnOnce(&mut Config),
) -> ProxyHandle {
    spawn_proxy_for_url(toml, &origin.url(), configure).await
}

/// Like [`spawn_proxy_with`], in front of any origin URL (e.g. a real Next.js server) instead of a
/// [`TestOrigin`]; `{origin}` in `toml` stands for `origin_url`.
pub(crate) async fn spawn_proxy_for_url(
    toml: &str,
    origin_url: &str,
    configure: impl FnOnce(&mut Config),
) -> ProxyHandle {
    let mut config = Config::from_toml_str(&toml.replace("{origin}", origin_url)).expect("test config is valid");
    configure(&mut config);
    let (clock, handle) = Clock::manual();
    let proxy = Proxy::new(&config, clock);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = rx.await;
    };
    let limits = isr_proxy::config::ServerConfig {
        shutdown_timeout: Duration::from_secs(2),
        ..config.server.clone()
    };
    let server = tokio::spawn(isr_proxy::run_with_limits(listener, proxy.clone(), shutdown, limits));
    ProxyHandle {
        addr,
        clock: handle,
        client: TestClient::new(addr),
        proxy,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl ProxyHandle {
    /// Stops the server and waits for it; a panic in the server task is re-raised here.
    pub(crate) async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            match within(5_000, "proxy shutdown", server).await {
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                _ => {}
            }
        }
    }
}

type RequestBody = BoxBody<Bytes, Infallible>;

/// A pooled HTTP/1 client for one proxy.
#[derive(Clone)]
pub(crate) struct TestClient {
    addr: SocketAddr,
    http: Client<HttpConnector, RequestBody>,
}

impl TestClient {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        let http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self { addr, http }
    }

    fn request(&self, method: Method, path: &str, body: RequestBody) -> TestRequest {
        TestRequest {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body,
        }
    }

    pub(crate) fn get(&self, path: &str) -> TestRequest {
        self.request(Method::GET, path, Full::default().boxed())
    }

    /// A request with any method (`PUT`, `DELETE`, extension methods) and no body.
    pub(crate) fn method(&self, method: &str, path: &str) -> TestRequest {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid method");
        self.request(method, path, Full::default().boxed())
    }

    pub(crate) fn head(&self, path: &str) -> TestRequest {
        self.request(Method::HEAD, path, Full::default().boxed())
    }

    pub(crate) fn post(&self, path: &str, body: impl Into<Bytes>) -> TestRequest {
        self.request(Method::POST, path, Full::new(body.into()).boxed())
    }

    /// A POST whose body is sent chunk by chunk (`Transfer-Encoding: chunked`, no length known up front).
    pub(crate) fn post_chunks(&self, path: &str, chunks: Vec<Bytes>) -> TestRequest {
        self.request(Method::POST, path, Chunks(chunks.into()).boxed())
    }
}

struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// One request being built; `.send().await` or just `.await` sends it.
pub(crate) struct TestRequest {
    client: TestClient,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: RequestBody,
}

impl TestRequest {
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) async fn send(self) -> TestResponse {
        let what = format!("{} {}", self.method, self.path);
        self.try_send()
            .await
            .unwrap_or_else(|err| panic!("{what} failed: {err:?}"))
    }

    /// Sends the request; a transport error is returned instead of failing the test.
    pub(crate) async fn try_send(self) -> Result<TestResponse, hyper_util::client::legacy::Error> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{}{}", self.client.addr, self.path));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request.body(self.body).expect("valid test request");
        let what = format!("{} {}", self.method, self.path);
        let response = self.client.http.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap_or_else(|err| panic!("{what} body: {err}"));
        let body = body.to_bytes();
        Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            text: String::from_utf8_lossy(&body).into_owned(),
            body,
        })
    }
}

impl IntoFuture for TestRequest {
    type Output = TestResponse;
    type IntoFuture = Pin<Box<dyn Future<Output = TestResponse> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

#[derive(Debug)]
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The body as text (lossy).
    pub(crate) text: String,
    pub(crate) body: Bytes,
}

impl TestResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    /// The `x-isr-cache` header, or `""` when absent.
    pub(crate) fn cache(&self) -> &str {
        self.header("x-isr-cache").unwrap_or("")
    }
}

/// Awaits `fut`, panicking if it takes more than `ms` milliseconds.
pub(crate) async fn within<F: IntoFuture>(ms: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_millis(ms), fut.into_future()).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {ms} ms waiting for {what}"),
    }
}

/// Polls `check` every 5 ms until it holds, panicking after `ms` milliseconds.
pub(crate) async fn eventually(ms: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(ms, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Every file under `dir` (recursively) whose name ends in `.{extension}`: the disk tier's entries and temp files.
pub(crate) fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    found
}
