//! Limits against slow or greedy clients (`[server]`) and against a flood of misses (`origin.max_connections`):
//! slowloris heads are cut off, idle connections closed, huge heads refused, connections beyond the limit wait,
//! and the origin never sees more fetches at once than allowed.

mod common;

use std::time::Duration;

use common::raw::{get_on, read_until_closed};
use common::{TestOrigin, spawn_proxy, within};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "2s"

[server]
header_read_timeout = "200ms"
idle_timeout = "400ms"
max_header_size = "16KiB"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_request_head_is_cut_off_at_header_read_timeout() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    // Slowloris: a request head sent a few bytes at a time, never finished.
    let mut slow = TcpStream::connect(proxy.addr).await.expect("connect");
    let started = std::time::Instant::now();
    let dripping = async {
        for chunk in [
            "GET /blog/a HTTP/1.1\r\n",
            "host: x\r\n",
            "x-a: 1\r\n",
            "x-b: 2\r\n",
            "x-c: 3\r\n",
        ] {
            if slow.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    };
    dripping.await;
    read_until_closed(&mut slow, 1_000, "the slow connection to be closed").await;
    let lived = started.elapsed();
    assert!(
        lived < Duration::from_millis(700),
        "a head that never completes must be cut off near header_read_timeout, lived {lived:?}"
    );
    assert_eq!(origin.renders("/blog/a"), 0);

    // A client that connects and sends nothing is also closed (at the idle timeout).
    let mut silent = TcpStream::connect(proxy.addr).await.expect("connect");
    read_until_closed(&mut silent, 1_500, "the silent connection to be closed").await;

    assert_eq!(
        proxy.client.get("/blog/a").await.status,
        StatusCode::OK,
        "others are served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_keep_alive_connections_close_but_busy_ones_do_not() {
    let origin = TestOrigin::new()
        .latency("/blog/slow", Duration::from_millis(700))
        .start()
        .await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    // Two requests on one connection, 250 ms apart: longer than header_read_timeout, shorter than idle_timeout,
    // so waiting between requests is idling, not a slow head.
    assert!(get_on(&mut stream, "/blog/a").await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(get_on(&mut stream, "/blog/a").await.contains("x-isr-cache: HIT"));
    let idle_from = std::time::Instant::now();
    read_until_closed(&mut stream, 1_500, "the idle connection to be closed").await;
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(300),
        "closed after {idle:?}, before idle_timeout"
    );

    // A request waiting on a slow origin (700 ms, past both timeouts) is not idle.
    let mut busy = TcpStream::connect(proxy.addr).await.expect("connect");
    let response = within(2_000, "the slow page", get_on(&mut busy, "/blog/slow")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_request_head_gets_431() {
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(CONFIG, &origin).await;

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let big = "x".repeat(20 * 1024);
    let request = format!("GET /blog/a HTTP/1.1\r\nhost: x\r\ncookie: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let response = read_until_closed(&mut stream, 1_000, "the 431").await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response:?}");
    assert_eq!(origin.renders("/blog/a"), 0);

    let fits = "x".repeat(8 * 1024);
    let r = proxy.client.get("/blog/a").header("cookie", &fits).await;
    assert_eq!(r.status, StatusCode::OK, "a head within max_header_size is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let origin = TestOrigin::new().start().await;
    let config = CONFIG
        .replace("idle_timeout = \"400ms\"", "idle_timeout = \"5s\"\nmax_connections = 2")
        .replace("header_read_timeout = \"200ms\"", "header_read_timeout = \"5s\"");
    let proxy = spawn_proxy(&config, &origin).await;

    let mut first = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
    assert!(get_on(&mut first, "/blog/a").await.starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut second, "/blog/a").await.starts_with("HTTP/1.1 200"));

    // Both slots are held by open keep-alive connections: a third client is not accepted yet.
    let mut third = TcpStream::connect(proxy.addr)
        .await
        .expect("the kernel queues the connection");
    third
        .write_all(b"GET /blog/a HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "the third connection must wait while two are open");

    drop(first);
    let n = within(1_000, "the third connection to be served", third.read(&mut buf))
        .await
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

const QUEUE_CONFIG: &str = r#"
[origin]
url = "{origin}"
timeout = "5s"
max_connections = 2
queue_timeout = "QUEUE"

[[route]]
path = "/p/:id"
revalidate = 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_origin_never_sees_more_than_max_connections_fetches_at_once() {
    let mut origin = TestOrigin::new();
    for i in 0..8 {
        origin = origin.latency(&format!("/p/{i}"), Duration::from_millis(100));
    }
    let origin = origin.start().await;
    let proxy = spawn_proxy(&QUEUE_CONFIG.replace("QUEUE", "3s"), &origin).await;

    let mut requests = JoinSet::new();
    for i in 0..8 {
        let client = proxy.client.clone();
        requests.spawn(async move { client.get(&format!("/p/{i}")).await });
    }
    while let Some(r) = within(3_000, "8 distinct misses", requests.join_next()).await {
        let r = r.expect("request task");
        assert_eq!(
            (r.status, r.cache()),
            (StatusCode::OK, "MISS"),
            "queued misses wait, then are served"
        );
    }
    assert_eq!(
        origin.max_concurrent(),
        2,
        "8 distinct misses must reach the origin at most origin.max_connections = 2 at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_miss_queued_beyond_queue_timeout_gets_503() {
    let mut origin = TestOrigin::new();
    for i in 0..4 {
        origin = origin.latency(&format!("/p/{i}"), Duration::from_millis(600));
    }
    let origin = origin.start().await;
    let proxy = spawn_proxy(&QUEUE_CONFIG.replace("QUEUE", "200ms"), &origin).await;

    let mut requests = JoinSet::new();
    for i in 0..4 {
        let client = proxy.client.clone();
        requests.spawn(async move { client.get(&format!("/p/{i}")).await });
    }
    let mut statuses = Vec::new();
    while let Some(r) = within(3_000, "4 distinct misses", requests.join_next()).await {
        let r = r.expect("request task");
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "two misses get the origin's slots; two wait past queue_timeout and are shed"
    );
    assert!(origin.max_concurrent() <= 2);
    let fetched: usize = (0..4).map(|i| origin.renders(&format!("/p/{i}"))).sum();
    assert_eq!(fetched, 2, "shed requests never reach the origin");
}
