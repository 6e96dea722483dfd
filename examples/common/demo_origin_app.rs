//! The demo origin app, shared by `examples/demo_origin.rs` (origin alone) and `examples/demo.rs` (origin + proxy).
//!
//! A stand-in for any server-rendered app: every page is "rendered" on each request (it sleeps `delay` to make
//! the render cost visible) and shows a per-path render counter and the render time, so you can tell from the
//! response which render the proxy served you. Blog pages carry `x-isr-tags` for revalidation by tag.
//!
//! To rehearse an incident, `POST /_demo/fail` makes every page render answer 500 (as an app whose database is
//! down would) until `POST /_demo/recover`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Where the demo origin listens unless told otherwise (the origin `examples/demo.toml` points at).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Render time per page: long enough that a MISS is visibly slow and a STALE visibly instant.
pub(crate) const DEFAULT_DELAY: Duration = Duration::from_millis(1000);
/// Blog posts linked from the index (any slug of letters, digits, `-` and `_` renders).
pub(crate) const POSTS: [&str; 3] = ["hello-world", "what-is-isr", "stale-while-revalidate"];

/// The demo app: render delay and a render counter per path.
pub(crate) struct DemoOrigin {
    delay: Duration,
    renders: Mutex<HashMap<String, u64>>,
    /// Set by `POST /_demo/fail`: page renders answer 500.
    failing: AtomicBool,
}

impl DemoOrigin {
    /// An app whose pages take `delay` to render.
    pub(crate) fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            renders: Mutex::default(),
            failing: AtomicBool::new(false),
        })
    }

    /// Serves HTTP/1.1 on `listener` until the task is dropped.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, client) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    eprintln!("origin: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let app = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(request, client).await) }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                if let Err(err) = connection.await {
                    eprintln!("origin: connection from {client} failed: {err}");
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, client: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        if request.method() == Method::POST && (path == "/_demo/fail" || path == "/_demo/recover") {
            let failing = path == "/_demo/fail";
            self.failing.store(failing, Ordering::Relaxed);
            println!(
                "origin: page renders now {}",
                if failing { "fail with 500" } else { "succeed" }
            );
            let state = if failing { "failing" } else { "recovered" };
            return text(StatusCode::OK, "text/plain", format!("origin {state}\n"));
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            println!("origin: {} {path} -> 405", request.method());
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET or HEAD only\n".to_owned(),
            );
        }
        if path == "/api/time" {
            let forwarded_for = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            println!("origin: GET /api/time (not cached; peer {client}, x-forwarded-for: {forwarded_for})");
            let body = format!(
                "{{\"now\":\"{}\"}}\n",
                humantime::format_rfc3339_millis(SystemTime::now())
            );
            let mut response = text(StatusCode::OK, "application/json", body);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let slug = path.strip_prefix("/blog/").filter(|slug| is_slug(slug));
        if path != "/" && slug.is_none() {
            println!("origin: GET {path} -> 404");
            return text(
                StatusCode::NOT_FOUND,
                "text/html; charset=utf-8",
                page("Not found", "<p>No such page.</p>"),
            );
        }

        let started = Instant::now();
        tokio::time::sleep(self.delay).await;
        if self.failing.load(Ordering::Relaxed) {
            println!("origin: GET {path} -> 500 (failing; POST /_demo/recover to fix)");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "database unavailable\n".to_owned(),
            );
        }
        let render = self.count_render(&path);
        let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let (body, tags) = match slug {
            Some(slug) => (
                page(
                    slug,
                    &format!("<p>Post <b>{slug}</b>: render #{render} at {at}.</p>\n<p><a href=\"/\">index</a></p>"),
                ),
                Some(format!("blog, post-{slug}")),
            ),
            None => (index(render, &at), None),
        };
        println!(
            "origin: rendered {path} (render #{render}, {} ms)",
            started.elapsed().as_millis()
        );
        let mut response = text(StatusCode::OK, "text/html; charset=utf-8", body);
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::try_from(format!("#{render} at {at}")) {
            headers.insert("x-demo-render", value);
        }
        if let Some(value) = tags.and_then(|tags| HeaderValue::try_from(tags).ok()) {
            headers.insert("x-isr-tags", value);
        }
        response
    }

    fn count_render(&self, path: &str) -> u64 {
        let mut renders = self.renders.lock().unwrap_or_else(PoisonError::into_inner);
        let count = renders.entry(path.to_owned()).or_default();
        *count += 1;
        *count
    }
}

/// Slugs are one path segment of `[A-Za-z0-9_-]`, so they can be put into HTML and headers unescaped.
fn is_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn index(render: u64, at: &str) -> String {
    let links: String = POSTS
        .iter()
        .map(|slug| format!("  <li><a href=\"/blog/{slug}\">{slug}</a></li>\n"))
        .collect();
    page(
        "Demo blog",
        &format!(
            "<p>Index: render #{render} at {at}.</p>\n<ul>\n{links}</ul>\n<p>JSON: <a href=\"/api/time\">/api/time</a></p>"
        ),
    )
}

fn page(title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{main}\n</body></html>\n"
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
