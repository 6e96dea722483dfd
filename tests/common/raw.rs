//! Raw HTTP/1.1 over a TCP stream, for tests that control every byte and every pause (slow heads, keep-alive).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// Reads until the server closes the connection; returns what it sent. Panics if it stays open past `ms`.
pub(crate) async fn read_until_closed(stream: &mut TcpStream, ms: u64, what: &str) -> String {
    within(ms, what, async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&received).into_owned()
    })
    .await
}

/// Sends one keep-alive GET and reads its response head and body (the origin's small page).
pub(crate) async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write request");
    read_response(stream).await
}

/// Reads one response (head and a `content-length` body) from a keep-alive connection.
pub(crate) async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 8192];
    let mut received = Vec::new();
    within(1_000, "a response", async {
        loop {
            let n = stream.read(&mut buf).await.expect("read response");
            assert!(n > 0, "closed before the response");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text.into_owned();
                }
            }
        }
    })
    .await
}
