//! End-to-end compatibility with a real Next.js 16 app: `tests/nextjs-app` is built (`next build`), started with
//! `next start` on loopback, and isr-proxy is put in front of it. Covers the two ways a proxy breaks Next.js:
//! client-side navigations (React Server Components requests, `RSC: 1` + `_rsc`) must reach the origin intact and
//! be their own cache variant, never a 307 loop and never the HTML entry; and dynamic pages, which Next.js marks
//! `Cache-Control: private, no-cache, no-store`, are only cached with `origin_cache_control = "ignore"`.
//!
//! Needs node and npm on `PATH`: without them the tests fail and say so. `ISR_SKIP_NEXTJS=1` skips them with a
//! notice, for developers without node. `.ci/run` installs and builds the app beforehand; the tests also do it
//! themselves: `npm install` when `node_modules` is missing, `next build` when `.next` is missing or older than the
//! app's sources.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::{BLOG_CONFIG, TestClient, TestResponse, eventually, spawn_proxy_for_url, within};
use http::StatusCode;
use isr_proxy::config::Token;

const APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nextjs-app");
/// The Next.js CLI inside the app's `node_modules`, run with `node` directly: one process to kill, no npx.
const NEXT_BIN: &str = "node_modules/next/dist/bin/next";
const SKIP_ENV: &str = "ISR_SKIP_NEXTJS";
/// Bounds the wait for `next start` to listen (it takes well under a second on an idle machine).
const START_TIMEOUT_MS: u64 = 30_000;

/// The router state of the index page, URL-encoded as the Next.js client sends it in `Next-Router-State-Tree`
/// when a link on `/` is clicked: `["",{"children":["__PAGE__",{},null,null]},null,null]`.
const INDEX_STATE_TREE: &str =
    "%5B%22%22%2C%7B%22children%22%3A%5B%22__PAGE__%22%2C%7B%7D%2Cnull%2Cnull%5D%7D%2Cnull%2Cnull%5D";

/// The config for a Next.js app in `docs/nextjs.md#nextjs`. `/api/*` and `/_next/image` match no
/// route: they are passed through.
const NEXT_CONFIG: &str = r#"
[origin]
url = "{origin}"

[[route]]
path = "/"
revalidate = 60
origin_cache_control = "ignore"

[[route]]
path = "/blog/:slug"
revalidate = 60
origin_cache_control = "ignore"

[[route]]
path = "/_next/static/*file"
revalidate = false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_page_is_rendered_once_then_served_stale_then_regenerated() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };
    let proxy = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |_| {}).await;
    let client = &proxy.client;

    let first = client.get("/blog/hello").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.cache(), "MISS");
    assert!(
        is_html(&first),
        "a page request gets HTML: {:?}",
        first.header("content-type")
    );
    let marker = render_marker(&first);

    let second = client.get("/blog/hello").await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(
        render_marker(&second),
        marker,
        "a HIT must replay the one render, not render again"
    );
    let cache_control = second.header("cache-control").unwrap_or("");
    assert!(
        cache_control.starts_with("s-maxage=60") && !cache_control.contains("private"),
        "with origin_cache_control = \"ignore\" the client gets isr-proxy's Cache-Control, not Next's: {cache_control}"
    );

    proxy.clock.advance(Duration::from_secs(61));
    let stale = client.get("/blog/hello").await;
    assert_eq!(stale.cache(), "STALE");
    assert_eq!(render_marker(&stale), marker, "STALE serves the old page at once");
    eventually(
        10_000,
        "the background regeneration to store a new render",
        async || {
            let page = client.get("/blog/hello").await;
            page.cache() == "HIT" && render_marker(&page) != marker
        },
    )
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsc_navigation_is_its_own_variant_and_never_redirected() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };
    let proxy = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |_| {}).await;
    let client = &proxy.client;

    let html = client.get("/blog/hello").await;
    assert_eq!(html.cache(), "MISS");
    let html_marker = render_marker(&html);

    // A click on the index page's link: the router headers plus the `_rsc` the client derives from them.
    let rsc_hash = next.rsc_hash(INDEX_STATE_TREE, "/");
    let navigate = || {
        client
            .get(&format!("/blog/hello?_rsc={rsc_hash}"))
            .header("rsc", "1")
            .header("next-router-state-tree", INDEX_STATE_TREE)
            .header("next-url", "/")
    };
    let flight = navigate().await;
    assert_eq!(
        flight.status,
        StatusCode::OK,
        "an RSC navigation must not be redirected: {flight:?}"
    );
    assert!(
        is_flight(&flight),
        "RSC payload expected: {:?}",
        flight.header("content-type")
    );
    assert_eq!(
        flight.cache(),
        "MISS",
        "the RSC payload is its own variant, not the HTML entry"
    );
    assert!(
        !flight.text.contains("<html"),
        "an RSC request must never get the HTML page"
    );
    let flight_marker = render_marker(&flight);
    assert_ne!(flight_marker, html_marker, "the RSC payload is a render of its own");

    let again = navigate().await;
    assert_eq!(again.cache(), "HIT");
    assert!(is_flight(&again));
    assert_eq!(
        render_marker(&again),
        flight_marker,
        "the RSC variant is served from the cache"
    );

    let html_again = client.get("/blog/hello").await;
    assert_eq!(html_again.cache(), "HIT");
    assert!(is_html(&html_again), "an HTML request must never get the RSC payload");
    assert_eq!(render_marker(&html_again), html_marker);
    proxy.shutdown().await;
}

/// A client that sends no `_rsc` (or a wrong one) gets Next's 307 to the right value, as without a proxy; a
/// browser follows it once and gets the payload. The Location also proves the test computes `_rsc` as Next does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsc_request_without_rsc_param_is_redirected_once_to_the_right_value() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };
    let proxy = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |_| {}).await;
    let rsc_request = |path: &str| {
        proxy
            .client
            .get(path)
            .header("rsc", "1")
            .header("next-router-state-tree", INDEX_STATE_TREE)
            .header("next-url", "/")
    };

    let redirect = rsc_request("/blog/other").await;
    assert_eq!(redirect.status, StatusCode::TEMPORARY_REDIRECT, "{redirect:?}");
    let expected = format!("/blog/other?_rsc={}", next.rsc_hash(INDEX_STATE_TREE, "/"));
    assert_eq!(redirect.header("location"), Some(expected.as_str()));

    let followed = rsc_request(&expected).await;
    assert_eq!(
        followed.status,
        StatusCode::OK,
        "following the 307 once must end the redirects: {followed:?}"
    );
    assert!(is_flight(&followed));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_revalidation_renders_a_new_page() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };
    let proxy = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |c| c.revalidate.token = Token::new("t")).await;
    let client = &proxy.client;

    let first = client.get("/blog/hello").await;
    assert_eq!(first.cache(), "MISS");
    let marker = render_marker(&first);
    assert_eq!(client.get("/blog/hello").await.cache(), "HIT");

    let revalidated = client
        .post("/_isr/revalidate", r#"{"paths": ["/blog/hello"]}"#)
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .await;
    assert_eq!(revalidated.status, StatusCode::OK, "{}", revalidated.text);
    assert!(revalidated.text.contains("regenerated"), "{}", revalidated.text);

    let after = client.get("/blog/hello").await;
    assert_eq!(after.cache(), "HIT", "the new page was stored by the revalidation");
    let new_marker = render_marker(&after);
    assert_ne!(
        new_marker, marker,
        "on-demand revalidation must replace the page with a new render"
    );
    assert_eq!(render_marker(&client.get("/blog/hello").await), new_marker);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_pages_bypass_by_default_and_are_cached_with_origin_cache_control_ignore() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };

    // BLOG_CONFIG keeps the default `origin_cache_control = "respect"`.
    let respecting = spawn_proxy_for_url(BLOG_CONFIG, &next.url, |_| {}).await;
    let first = respecting.client.get("/blog/hello").await;
    let second = respecting.client.get("/blog/hello").await;
    for page in [&first, &second] {
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.cache(),
            "BYPASS",
            "Next's `private, no-store` is respected by default"
        );
        assert_eq!(page.header("cache-status"), Some("isr-proxy; fwd=miss; detail=private"));
        assert!(page.header("cache-control").unwrap_or("").contains("no-store"));
    }
    assert_ne!(
        render_marker(&first),
        render_marker(&second),
        "every bypassed request renders"
    );
    let rsc_hash = next.rsc_hash(INDEX_STATE_TREE, "/");
    let flight = respecting
        .client
        .get(&format!("/blog/hello?_rsc={rsc_hash}"))
        .header("rsc", "1")
        .header("next-router-state-tree", INDEX_STATE_TREE)
        .header("next-url", "/")
        .await;
    assert_eq!(
        flight.status,
        StatusCode::OK,
        "a bypassed RSC navigation is not redirected either"
    );
    assert!(is_flight(&flight));
    assert_eq!(flight.cache(), "BYPASS");
    respecting.shutdown().await;

    let ignoring = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |_| {}).await;
    let stored = ignoring.client.get("/blog/hello").await;
    assert_eq!(stored.cache(), "MISS");
    let hit = ignoring.client.get("/blog/hello").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(render_marker(&hit), render_marker(&stored));
    ignoring.shutdown().await;
}

/// `/_next/static/*` is cached for good; `/api/*` and `/_next/image` match no route and pass through. Routing
/// `/_next/image` anyway stores nothing: the optimizer answers `Vary: Accept`, which isr-proxy does not key on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_are_cached_while_api_and_images_pass_through() {
    let Some(next) = NextServerGuard::start().await else {
        return;
    };
    let proxy = spawn_proxy_for_url(NEXT_CONFIG, &next.url, |_| {}).await;
    let client = &proxy.client;

    let index = client.get("/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.cache(), "MISS");
    let chunk = static_chunk(&index);
    let asset = client.get(&chunk).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.cache(), "MISS", "{chunk}");
    let asset_again = client.get(&chunk).await;
    assert_eq!(asset_again.cache(), "HIT", "{chunk}");
    assert_eq!(asset_again.body, asset.body);

    let api = client.get("/api/hello").await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(api.cache(), "BYPASS");
    assert!(api.text.contains("\"hello\":\"world\""), "{}", api.text);

    let image = "/_next/image?url=%2Fdot.png&w=32&q=75";
    let passed = client.get(image).await;
    assert_eq!(passed.status, StatusCode::OK, "{passed:?}");
    assert_eq!(passed.header("cache-status"), Some("isr-proxy; fwd=bypass"));
    proxy.shutdown().await;

    let image_route = format!("{NEXT_CONFIG}\n[[route]]\npath = \"/_next/image\"\nrevalidate = 60\nquery = \"keep\"\n");
    let proxy = spawn_proxy_for_url(&image_route, &next.url, |_| {}).await;
    let optimized = proxy.client.get(image).await;
    assert_eq!(optimized.status, StatusCode::OK, "{optimized:?}");
    assert_eq!(optimized.header("vary"), Some("Accept"));
    assert_eq!(
        optimized.header("cache-status"),
        Some("isr-proxy; fwd=miss; detail=vary-unkeyed"),
        "the optimizer's `Vary: Accept` keeps its answers out of the cache"
    );
    proxy.shutdown().await;
}

/// `next start` running as a child process; dropping the guard kills it, also when a test panics.
struct NextServerGuard {
    child: Child,
    node: PathBuf,
    url: String,
    log: PathBuf,
}

impl NextServerGuard {
    /// Installs and builds the app if needed, starts `next start -H 127.0.0.1 -p <free port>` and waits until it
    /// answers. `None` when `ISR_SKIP_NEXTJS=1`.
    async fn start() -> Option<Self> {
        let node = tokio::task::block_in_place(prepared_app)?;
        let port = free_port();
        let log = std::env::temp_dir().join(format!("isr-proxy-nextjs-{port}.log"));
        let out = File::create(&log).expect("create the next start log file");
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new(&node)
            .args([NEXT_BIN, "start", "-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(APP_DIR)
            .env("NEXT_TELEMETRY_DISABLED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {} {NEXT_BIN} start: {err}", node.display()));
        let mut guard = Self {
            child,
            node,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        guard.wait_ready(port).await;
        Some(guard)
    }

    /// Polls until the server accepts connections (bounded), then checks that it answers.
    async fn wait_ready(&mut self, port: u16) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        within(START_TIMEOUT_MS, "next start to listen", async {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("next start exited with {status}:\n{}", self.log_text());
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let hello = TestClient::new(addr).get("/api/hello").await;
        assert_eq!(
            hello.status,
            StatusCode::OK,
            "next start is up but /api/hello failed: {hello:?}"
        );
    }

    /// The `_rsc` value the Next.js client sends for a navigation (no prefetch headers) with these headers, computed by the installed Next.js
    /// itself (`computeCacheBustingSearchParam`: SHA-256 of the prefetch, segment-prefetch, state-tree and
    /// `Next-Url` headers, truncated to 96 bits, base64url), so the test follows Next's upgrades.
    fn rsc_hash(&self, state_tree: &str, next_url: &str) -> String {
        const SCRIPT: &str = "const { computeCacheBustingSearchParam } = \
            require('next/dist/shared/lib/router/utils/cache-busting-search-param'); \
            const [prefetch, segment, tree, nextUrl] = JSON.parse(process.argv[1]).map((v) => v ?? undefined); \
            computeCacheBustingSearchParam(prefetch, segment, tree, nextUrl).then((h) => process.stdout.write(h));";
        let args = serde_json::json!([None::<&str>, None::<&str>, state_tree, next_url]).to_string();
        let output = Command::new(&self.node)
            .args(["-e", SCRIPT, &args])
            .current_dir(APP_DIR)
            .output()
            .expect("run node to compute _rsc");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("_rsc is ASCII")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NextServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("next start log ({}):\n{}", self.log.display(), self.log_text());
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// Node found, app installed and built (once per test binary); `None` when `ISR_SKIP_NEXTJS=1`.
fn prepared_app() -> Option<PathBuf> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{SKIP_ENV}=1: skipping the Next.js end-to-end test");
        return None;
    }
    static PREPARED: OnceLock<PathBuf> = OnceLock::new();
    Some(PREPARED.get_or_init(prepare_app).clone())
}

fn prepare_app() -> PathBuf {
    let (node, npm) = match (find_on_path("node"), find_on_path("npm")) {
        (Some(node), Some(npm)) => (node, npm),
        (node, npm) => panic!(
            "tests/nextjs.rs needs node (>= 20.9) and npm on PATH (node: {}, npm: {}). Install them \
             (apt-get install -y nodejs npm), or set {SKIP_ENV}=1 to skip the Next.js end-to-end test",
            node.map_or("missing".to_owned(), |p| p.display().to_string()),
            npm.map_or("missing".to_owned(), |p| p.display().to_string()),
        ),
    };
    let app = Path::new(APP_DIR);
    if !app.join("node_modules").exists() {
        // `npm install`, not `npm ci`: the lock lists only the platforms the registry served when it was made (no
        // macOS or Windows compiler binaries), which `npm ci` refuses as out of sync.
        run(
            Command::new(&npm).args(["install", "--no-audit", "--no-fund"]),
            "npm install",
        );
    }
    let built = modified(&app.join(".next/BUILD_ID"));
    let sources = ["app", "public", "package.json", "package-lock.json"]
        .iter()
        .filter_map(|p| newest_modification(&app.join(p)))
        .max();
    if built.is_none() || sources > built {
        run(Command::new(&node).args([NEXT_BIN, "build"]), "next build");
    }
    node
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .current_dir(APP_DIR)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {what} in {APP_DIR}: {err}"));
    assert!(
        output.status.success(),
        "{what} in {APP_DIR} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of a file, or of any file under a directory.
fn newest_modification(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| newest_modification(&entry.path()))
        .chain(own)
        .max()
}

/// A port nobody listens on right now (the OS picks it; `next start` binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The page's `render-marker:<Date.now()>-<n>:end`, present in both the HTML and the RSC payload.
fn render_marker(page: &TestResponse) -> String {
    let start = page
        .text
        .find("render-marker:")
        .unwrap_or_else(|| panic!("no render marker in {page:?}"));
    let rest = &page.text[start..];
    let end = rest.find(":end").expect("render marker is terminated");
    rest[..end].to_owned()
}

fn is_html(page: &TestResponse) -> bool {
    page.header("content-type").is_some_and(|t| t.starts_with("text/html")) && page.text.contains("<html")
}

fn is_flight(page: &TestResponse) -> bool {
    page.header("content-type")
        .is_some_and(|t| t.starts_with("text/x-component"))
}

/// One `/_next/static/...js` path referenced by a page.
fn static_chunk(page: &TestResponse) -> String {
    let start = page
        .text
        .find("/_next/static/")
        .expect("the page references a static chunk");
    let rest = &page.text[start..];
    let end = rest.find(".js").expect("a .js chunk") + 3;
    rest[..end].to_owned()
}
