//! `server.header_read_timeout` against the real binary: a request head must be complete within the timeout of its
//! first byte, whenever that byte comes (right after connecting, late, or between keep-alive requests, over HTTP/1
//! or HTTP/2), while idle time before it counts against `idle_timeout` only.
//!
//! Regression (issue 16): the watchdog computed one deadline and slept until it. A head that started after the
//! watchdog's first look (a client that waited 0.3 s, or any later request on a keep-alive connection) was only
//! cut off at the idle deadline: 20 s instead of 2 s with the settings of the report, 75 s with the defaults.

mod common;

use std::time::{Duration, Instant};

use common::binary::ProxyProcess;
use common::raw::{get_on, read_response, read_until_closed};
use common::{OriginHandle, TestOrigin};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Far apart, so that a close at the idle deadline cannot pass for one at the header deadline.
const HEADER_TIMEOUT_MS: u64 = 300;
const CONFIG: &str = r#"
[origin]
url = "{origin}"

[server]
header_read_timeout = "300ms"
idle_timeout = "10s"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

/// How late a close may come after the header deadline on a busy 2-core machine.
const MARGIN_MS: u64 = 400;
/// The pause before the head starts: longer than the header timeout, so only a watchdog that re-evaluates when
/// the head starts can enforce it.
const LATE: Duration = Duration::from_millis(500);

async fn start() -> (OriginHandle, ProxyProcess) {
    let origin = TestOrigin::new().start().await;
    let proxy = ProxyProcess::start(CONFIG, &origin.url(), None, &[]).await;
    (origin, proxy)
}

/// Sends `partial` (a head that never completes) and asserts the connection is closed within the header timeout
/// of that first byte, plus a margin.
async fn assert_cut_off_after(stream: &mut TcpStream, partial: &[u8], what: &str) {
    stream.write_all(partial).await.expect("send the partial head");
    let sent = Instant::now();
    read_until_closed(stream, 3_000, what).await;
    let lived = sent.elapsed();
    assert!(
        lived >= Duration::from_millis(HEADER_TIMEOUT_MS - 50),
        "{what}: closed after {lived:?}, before the header timeout"
    );
    assert!(
        lived <= Duration::from_millis(HEADER_TIMEOUT_MS + MARGIN_MS),
        "{what}: a stalled head must be cut off at header_read_timeout of its first byte, lived {lived:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_starts_late_and_stalls_is_cut_off_at_the_header_timeout() {
    let (origin, proxy) = start().await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    tokio::time::sleep(LATE).await;
    assert_cut_off_after(
        &mut stream,
        b"GET /blog/a HTTP/1.1\r\nHost: x\r\n",
        "a late partial head",
    )
    .await;
    assert_eq!(origin.renders("/blog/a"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_request_on_a_keep_alive_connection_is_cut_off_at_the_header_timeout() {
    let (origin, proxy) = start().await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    assert!(get_on(&mut stream, "/blog/a").await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(LATE).await;
    assert_cut_off_after(&mut stream, b"GET /blog/b HTTP/1.1\r\nHo", "a partial second head").await;
    assert_eq!(origin.renders("/blog/b"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_an_http2_preface_sent_late_is_cut_off_at_the_header_timeout() {
    let (_origin, proxy) = start().await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    tokio::time::sleep(LATE).await;
    // The whole preface is `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (24 bytes).
    assert_cut_off_after(&mut stream, b"PRI * HTTP/2", "half an HTTP/2 preface").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_head_finished_in_time_is_served() {
    let (origin, proxy) = start().await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    tokio::time::sleep(LATE).await;
    // Four pieces 60 ms apart: 180 ms in all, inside the 300 ms budget, though every pause stalls the head.
    for piece in [
        "GET /blog/slow HTTP/1.1\r\n",
        "host: x\r\n",
        "accept: */*\r\n",
        "x-a: 1\r\n",
    ] {
        stream.write_all(piece.as_bytes()).await.expect("send a piece");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    stream.write_all(b"\r\n").await.expect("end the head");
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(origin.renders("/blog/slow"), 1);
    // Then, on the same connection, a second slow head after a pause is served as well.
    tokio::time::sleep(LATE).await;
    for piece in ["GET /blog/slow HTTP/1.1\r\n", "host: x\r\n"] {
        stream.write_all(piece.as_bytes()).await.expect("send a piece");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    stream.write_all(b"\r\n").await.expect("end the head");
    let response = read_response(&mut stream).await;
    assert!(response.contains("x-isr-cache: HIT"), "{response}");
}
