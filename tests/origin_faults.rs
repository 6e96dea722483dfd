//! An origin that misbehaves at the byte level (written with raw tokio sockets, since a well-behaved HTTP
//! server cannot send these): bodies too large to store, cut short, with a wrong `Content-Length`, or dripping
//! slower than the timeout. None of them may be stored, and none may evict or corrupt the last good page.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, spawn_proxy_for_url, within};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use isr_proxy::cache::CacheKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the raw origin does for one path.
#[derive(Clone, Debug)]
enum Behavior {
    /// A correct response.
    Good(String),
    /// Declares `declared` bytes, sends `sent` of them, closes.
    CutShort { declared: usize, sent: usize },
    /// Declares `declared` bytes but sends all of `body`, then closes.
    Overlong { declared: usize, body: String },
    /// Declares `declared` bytes and sends one every `every`.
    Drip { declared: usize, every: Duration },
}

#[derive(Default)]
struct RawState {
    behaviors: HashMap<String, Behavior>,
    requests: HashMap<String, usize>,
}

/// A raw-socket origin: one response per connection, then close (so every fault is deterministic).
#[derive(Clone)]
struct RawOrigin {
    addr: SocketAddr,
    state: Arc<Mutex<RawState>>,
}

impl RawOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw origin");
        let origin = Self {
            addr: listener.local_addr().expect("address"),
            state: Arc::default(),
        };
        let state = origin.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, state.clone()));
            }
        });
        origin
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, path: &str, behavior: Behavior) {
        let mut state = self.state.lock().expect("raw origin state");
        state.behaviors.insert(path.to_owned(), behavior);
    }

    fn requests(&self, path: &str) -> usize {
        let state = self.state.lock().expect("raw origin state");
        state.requests.get(path).copied().unwrap_or(0)
    }
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<RawState>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let behavior = {
        let mut state = state.lock().expect("raw origin state");
        *state.requests.entry(path.clone()).or_default() += 1;
        state
            .behaviors
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Behavior::Good(format!("good {path}")))
    };
    let head_for = |declared: usize| {
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n")
    };
    let _ = match behavior {
        Behavior::Good(body) => {
            stream
                .write_all(format!("{}{body}", head_for(body.len())).as_bytes())
                .await
        }
        Behavior::CutShort { declared, sent } => {
            stream
                .write_all(format!("{}{}", head_for(declared), "x".repeat(sent)).as_bytes())
                .await
        }
        Behavior::Overlong { declared, body } => {
            stream
                .write_all(format!("{}{body}", head_for(declared)).as_bytes())
                .await
        }
        Behavior::Drip { declared, every } => {
            let mut result = stream.write_all(head_for(declared).as_bytes()).await;
            for _ in 0..declared {
                if result.is_err() {
                    break;
                }
                tokio::time::sleep(every).await;
                result = stream.write_all(b"x").await;
            }
            result
        }
    };
    let _ = stream.shutdown().await;
}

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "300ms"

[cache]
max_entry_size = "4KiB"
retry_after = "1s"

[[route]]
path = "/p/:id"
revalidate = 10
expire = 20
"#;

/// A GET whose body errors are returned, not panicked on (the harness client treats them as test failures).
async fn get_result(addr: SocketAddr, path: &str) -> (StatusCode, Result<Bytes, String>) {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = within(2_000, "a response head", client.request(request))
        .await
        .expect("response head");
    let status = response.status();
    let body = within(2_000, "the body", response.into_body().collect()).await;
    (status, body.map(|b| b.to_bytes()).map_err(|err| err.to_string()))
}

/// Caches `path` with a good page, then makes it stale and sets `fault`: the stale hit's background
/// regeneration meets the fault. Returns the good body.
async fn stale_page_meeting(proxy: &common::ProxyHandle, origin: &RawOrigin, path: &str, fault: Behavior) -> String {
    let good = format!("good {path}");
    let first = proxy.client.get(path).await;
    assert_eq!((first.cache(), first.text.as_str()), ("MISS", good.as_str()));
    origin.set(path, fault);
    proxy.clock.advance(Duration::from_secs(11));
    let stale = proxy.client.get(path).await;
    assert_eq!((stale.cache(), stale.text.as_str()), ("STALE", good.as_str()));
    eventually(5_000, "the failing regeneration to finish", async || {
        origin.requests(path) == 2 && proxy.proxy.snapshot().regenerations_in_flight == 0
    })
    .await;
    good
}

/// After a fault, the cached page is still the good one, byte for byte, and is still served.
async fn assert_last_good_survives(proxy: &common::ProxyHandle, path: &str, good: &str) {
    let key = CacheKey::new(path, None, Vec::new());
    let entry = proxy
        .proxy
        .cache()
        .get(&key)
        .await
        .expect("the last good page is still cached");
    assert_eq!(entry.body.as_ref(), good.as_bytes(), "the stored page is unchanged");
    let r = proxy.client.get(path).await;
    assert_eq!((r.cache(), r.text.as_str()), ("STALE", good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_larger_than_max_entry_size_is_streamed_through_uncached() {
    let origin = RawOrigin::start().await;
    let big = "b".repeat(64 * 1024);
    origin.set("/p/big", Behavior::Good(big.clone()));
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;

    for n in 1..=2 {
        let r = proxy.client.get("/p/big").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.cache(), "BYPASS");
        assert_eq!(r.header("cache-status"), Some("isr-proxy; fwd=miss; detail=too-large"));
        assert_eq!(r.body.len(), big.len(), "the whole body reaches the client");
        assert_eq!(origin.requests("/p/big"), n, "nothing was stored");
    }

    // Too large during a regeneration: the good page stays.
    let good = stale_page_meeting(&proxy, &origin, "/p/a", Behavior::Good(big)).await;
    assert_last_good_survives(&proxy, "/p/a", &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_cut_short_is_an_error_and_is_never_stored() {
    let origin = RawOrigin::start().await;
    origin.set(
        "/p/cut",
        Behavior::CutShort {
            declared: 1000,
            sent: 100,
        },
    );
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;

    // On a miss the body is buffered before anything is sent, so the client gets a clean 502.
    let r = proxy.client.get("/p/cut").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(
        proxy
            .proxy
            .cache()
            .get(&CacheKey::new("/p/cut", None, Vec::new()))
            .await
            .is_none(),
        "a cut body is never stored"
    );

    // Cut short during a regeneration, and again when the page has expired and a request waits for it.
    let good = stale_page_meeting(
        &proxy,
        &origin,
        "/p/a",
        Behavior::CutShort {
            declared: 1000,
            sent: 100,
        },
    )
    .await;
    assert_last_good_survives(&proxy, "/p/a", &good).await;
    proxy.clock.advance(Duration::from_secs(60));
    let r = proxy.client.get("/p/a").await;
    assert_eq!(
        (r.status, r.cache(), r.text.as_str()),
        (StatusCode::OK, "STALE", good.as_str()),
        "an expired page is still better than a cut one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_body_cut_mid_stream_fails_the_client_response() {
    let origin = RawOrigin::start().await;
    origin.set(
        "/p/huge",
        Behavior::CutShort {
            declared: 64 * 1024,
            sent: 16 * 1024,
        },
    );
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;

    // Streamed (too large to buffer), so the status is already sent: the client must see the body fail, not a
    // short body that looks complete.
    let (status, body) = get_result(proxy.addr, "/p/huge").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.is_err(),
        "a cut stream must fail the client's body, got {:?} bytes",
        body.map(|b| b.len())
    );

    let good = stale_page_meeting(
        &proxy,
        &origin,
        "/p/a",
        Behavior::CutShort {
            declared: 64 * 1024,
            sent: 16 * 1024,
        },
    )
    .await;
    assert_last_good_survives(&proxy, "/p/a", &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_content_length_shorter_than_the_body_does_not_leak_into_other_responses() {
    let origin = RawOrigin::start().await;
    origin.set(
        "/p/short",
        Behavior::Overlong {
            declared: 5,
            body: "hello HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil".to_owned(),
        },
    );
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;

    // The origin declared 5 bytes: that is the response. The rest is junk that must never become the answer to
    // another request (response splitting / desync).
    let r = proxy.client.get("/p/short").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "hello"));
    for i in 0..5 {
        let path = format!("/p/next{i}");
        let r = proxy.client.get(&path).await;
        assert_eq!(r.text, format!("good {path}"), "a later response must be its own");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_content_length_longer_than_the_body_is_a_cut_body() {
    let origin = RawOrigin::start().await;
    origin.set(
        "/p/long",
        Behavior::Overlong {
            declared: 500,
            body: "only this".to_owned(),
        },
    );
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;
    let r = proxy.client.get("/p/long").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        proxy
            .proxy
            .cache()
            .get(&CacheKey::new("/p/long", None, Vec::new()))
            .await
            .is_none(),
        "a body shorter than its Content-Length is never stored"
    );

    let good = stale_page_meeting(
        &proxy,
        &origin,
        "/p/a",
        Behavior::Overlong {
            declared: 500,
            body: "only this".to_owned(),
        },
    )
    .await;
    assert_last_good_survives(&proxy, "/p/a", &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_drip_body_hits_the_timeout_and_keeps_the_last_good_page() {
    let origin = RawOrigin::start().await;
    let drip = Behavior::Drip {
        declared: 100,
        every: Duration::from_millis(20),
    };
    origin.set("/p/drip", drip.clone());
    let proxy = spawn_proxy_for_url(CONFIG, &origin.url(), |_| {}).await;

    // 100 bytes at one per 20 ms take 2 s: past the 300 ms whole-response timeout.
    let started = std::time::Instant::now();
    let r = proxy.client.get("/p/drip").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "bounded by origin.timeout"
    );

    let good = stale_page_meeting(&proxy, &origin, "/p/a", drip).await;
    assert_last_good_survives(&proxy, "/p/a", &good).await;
}
