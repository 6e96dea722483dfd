//! Crash safety of the disk tier: the real `isr-proxy` binary is killed with SIGKILL in the middle of a stream of
//! regenerations; a proxy restarted on the same directory serves only whole pages, never a torn one.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::ProxyProcess;
use common::{TestOrigin, eventually, files_with_extension, spawn_proxy};

/// Big enough that a write takes a while and a torn file would be obvious.
const FILLER: usize = 256 * 1024;
const PAGES: usize = 40;

fn whole_page(n: usize) -> String {
    format!("BEGIN {n}\n{}\nEND {n}", "x".repeat(FILLER))
}

/// A body the origin rendered, complete: its header and trailer carry the same render number.
fn is_whole(body: &str) -> bool {
    let Some(rest) = body.strip_prefix("BEGIN ") else {
        return false;
    };
    let Some((n, _)) = rest.split_once('\n') else {
        return false;
    };
    body.len() == format!("BEGIN {n}\n").len() + FILLER + format!("\nEND {n}").len()
        && body.ends_with(&format!("\nEND {n}"))
}

fn config(dir: &Path) -> String {
    format!(
        r#"
[origin]
url = "{{origin}}"

[cache]
dir = "{}"
max_entry_size = "1MiB"
compress = false

[[route]]
path = "/blog/:slug"
revalidate = 3600
"#,
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proxy_killed_mid_regeneration_restarts_with_whole_pages_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut origin = TestOrigin::new();
    for i in 0..PAGES {
        origin = origin.page(&format!("/blog/{i}"), whole_page);
    }
    let origin = origin.start().await;

    let mut child = ProxyProcess::start(
        &config(dir.path()),
        &origin.url(),
        Some(dir.path()),
        &[("ISR_REVALIDATE_TOKEN", "t")],
    )
    .await;
    let client = child.client.clone();

    // Fill the cache, then keep it regenerating every page until the kill.
    for i in 0..PAGES {
        assert_eq!(client.get(&format!("/blog/{i}")).await.cache(), "MISS");
    }
    let paths: Vec<String> = (0..PAGES).map(|i| format!("\"/blog/{i}\"")).collect();
    let body = format!("{{\"paths\": [{}]}}", paths.join(","));
    let started = Instant::now();
    let mut rounds = 0;
    // At least two rounds however slow the machine, and some 400 ms of them on a fast one.
    while rounds < 2 || started.elapsed() < Duration::from_millis(400) {
        let revalidated = client
            .post("/_isr/revalidate", body.clone())
            .header("authorization", "Bearer t")
            .await;
        assert_eq!(revalidated.status, http::StatusCode::OK, "{}", revalidated.text);
        rounds += 1;
    }
    // Kill while one more round of regenerations (and their disk writes) is in flight.
    let last = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post("/_isr/revalidate", body)
                .header("authorization", "Bearer t")
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(3)).await;
    child.kill();
    drop(last);
    assert!(rounds >= 2, "the stream of regenerations ran ({rounds} rounds)");

    let restarted = spawn_proxy(&config(dir.path()), &origin).await;
    let renders_before = origin.renders("/blog/0");
    let mut hits = 0;
    for i in 0..PAGES {
        let page = restarted.client.get(&format!("/blog/{i}")).await;
        assert!(
            is_whole(&page.text),
            "/blog/{i} ({}) is torn: {} bytes",
            page.cache(),
            page.text.len()
        );
        hits += usize::from(page.cache() == "HIT");
    }
    assert!(
        hits >= PAGES / 2,
        "most pages survive the crash on disk ({hits} of {PAGES} were HITs)"
    );
    assert!(origin.renders("/blog/0") <= renders_before + 1);
    eventually(2_000, "leftover temp files to be removed", async || {
        files_with_extension(dir.path(), "tmp").is_empty()
    })
    .await;
    restarted.shutdown().await;
}
