//! Disk persistence: a restarted proxy stays warm, ages survive, corrupt files are never served, purges reach
//! the disk, namespaces give instant rollbacks, and a broken directory never stops serving.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{OriginHandle, ProxyHandle, TestOrigin, files_with_extension, spawn_proxy, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::config::Token;

fn config(dir: &Path, namespace: &str) -> String {
    format!(
        r#"
[origin]
url = "{{origin}}"

[cache]
dir = "{}"
namespace = "{namespace}"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#,
        dir.display()
    )
}

async fn start(dir: &Path, namespace: &str, origin: &OriginHandle) -> ProxyHandle {
    spawn_proxy_with(&config(dir, namespace), origin, |c| {
        c.revalidate.token = Token::new("t")
    })
    .await
}

fn entry_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn precompressed_forms_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = "<p>persisted and compressed</p>".repeat(200);
    let body = page.clone();
    let origin = TestOrigin::new()
        .page("/blog/big", move |_| body.clone())
        .header("/blog/big", "content-type", "text/html")
        .start()
        .await;
    let first = start(dir.path(), "default", &origin).await;
    let before = first.client.get("/blog/big").header("accept-encoding", "br").await;
    assert_eq!(before.header("content-encoding"), Some("br"));
    first.shutdown().await;

    let second = start(dir.path(), "default", &origin).await;
    let after = second.client.get("/blog/big").header("accept-encoding", "br").await;
    assert_eq!(after.cache(), "HIT");
    assert_eq!(
        after.header("content-encoding"),
        Some("br"),
        "the Brotli form is read back, not lost"
    );
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(origin.renders("/blog/big"), 1);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_proxy_serves_persisted_pages_without_the_origin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let first = start(dir.path(), "default", &origin).await;
    for i in 0..20 {
        assert_eq!(first.client.get(&format!("/blog/{i}")).await.cache(), "MISS");
    }
    first.shutdown().await;
    assert_eq!(entry_files(dir.path()).len(), 20, "shutdown flushes every queued write");

    let second = start(dir.path(), "default", &origin).await;
    for i in 0..20 {
        let page = second.client.get(&format!("/blog/{i}")).await;
        assert_eq!(page.cache(), "HIT", "page {i} persisted");
        assert_eq!(page.text, format!("<p>/blog/{i} render 1</p>"));
    }
    assert_eq!(
        origin.renders("/blog/0"),
        1,
        "a persisted page needs no origin fetch after a restart"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_keeps_its_age_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let first = start(dir.path(), "default", &origin).await;
    first.client.get("/blog/a").await;
    first.shutdown().await;

    let second = start(dir.path(), "default", &origin).await;
    second.clock.advance(Duration::from_secs(30));
    let aged = second.client.get("/blog/a").await;
    assert_eq!(aged.cache(), "HIT");
    let age: u64 = aged.header("age").and_then(|a| a.parse().ok()).expect("Age header");
    assert!(
        age >= 30,
        "age counts from the original render, not from the restart: {age}"
    );
    second.clock.advance(Duration::from_secs(31));
    assert_eq!(second.client.get("/blog/a").await.cache(), "STALE");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_file_is_never_served_and_the_page_is_rendered_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let first = start(dir.path(), "default", &origin).await;
    first.client.get("/blog/a").await;
    first.shutdown().await;
    for file in entry_files(dir.path()) {
        let mut bytes = std::fs::read(&file).expect("read entry");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&file, bytes).expect("corrupt entry");
    }
    let mut leftover = entry_files(dir.path())[0].clone();
    leftover.set_extension("tmp");
    std::fs::write(&leftover, b"half a write").expect("torn temp file");

    let second = start(dir.path(), "default", &origin).await;
    let page = second.client.get("/blog/a").await;
    assert_eq!(page.cache(), "MISS", "a corrupt file reads as a miss");
    assert_eq!(page.text, "<p>/blog/a render 2</p>");
    second.shutdown().await;
    assert!(!leftover.exists(), "temp files from a crash are removed at startup");

    let third = start(dir.path(), "default", &origin).await;
    assert_eq!(
        third.client.get("/blog/a").await.text,
        "<p>/blog/a render 2</p>",
        "the re-render was persisted"
    );
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purge_removes_the_page_from_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let first = start(dir.path(), "default", &origin).await;
    first.client.get("/blog/a").await;
    first.client.get("/blog/b").await;
    let purge = first
        .client
        .post("/_isr/revalidate", r#"{"paths": ["/blog/a"], "purge": true}"#)
        .header("authorization", "Bearer t")
        .await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text);
    first.shutdown().await;
    assert_eq!(entry_files(dir.path()).len(), 1);

    let second = start(dir.path(), "default", &origin).await;
    assert_eq!(second.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(second.client.get("/blog/b").await.cache(), "HIT");
    second.shutdown().await;
}

/// Calls the revalidation endpoint with `query` until the report's `field` counts one page: the startup scan of
/// the disk runs in the background, and indexes pages as it reads them.
async fn revalidate_once_scanned(proxy: &ProxyHandle, query: &str, field: &str, name: &str) {
    let report = common::within(2_000, "revalidation of a scanned page", async {
        loop {
            let response = proxy
                .client
                .post(&format!("/_isr/revalidate?{query}"), "")
                .header("authorization", "Bearer t")
                .await;
            let report: serde_json::Value = serde_json::from_str(&response.text).expect("JSON");
            if report[field][name] == 1 {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(report[field][name], 1, "the startup scan indexed the persisted page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_are_rebuilt_from_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new()
        .header("/blog/a", "x-isr-tags", "post-a")
        .start()
        .await;
    let first = start(dir.path(), "default", &origin).await;
    first.client.get("/blog/a").await;
    first.shutdown().await;

    let second = start(dir.path(), "default", &origin).await;
    revalidate_once_scanned(&second, "tag=post-a", "tags", "post-a").await;
    assert_eq!(second.client.get("/blog/a").await.cache(), "STALE");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_reaches_pages_only_the_disk_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let first = start(dir.path(), "default", &origin).await;
    first.client.get("/blog/a").await;
    first.shutdown().await;

    let second = start(dir.path(), "default", &origin).await;
    revalidate_once_scanned(&second, "prefix=/blog", "prefixes", "/blog").await;
    assert_eq!(
        second.client.get("/blog/a").await.cache(),
        "STALE",
        "a page read from disk after the prefix revalidation is stale"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_namespaces_starts_cold_and_switching_back_rolls_back_warm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    let build1 = start(dir.path(), "build-1", &origin).await;
    assert_eq!(build1.client.get("/blog/a").await.text, "<p>/blog/a render 1</p>");
    build1.shutdown().await;

    let build2 = start(dir.path(), "build-2", &origin).await;
    let fresh = build2.client.get("/blog/a").await;
    assert_eq!(
        (fresh.cache(), fresh.text.as_str()),
        ("MISS", "<p>/blog/a render 2</p>"),
        "a new build starts cold"
    );
    build2.shutdown().await;

    let rollback = start(dir.path(), "build-1", &origin).await;
    let old = rollback.client.get("/blog/a").await;
    assert_eq!(
        (old.cache(), old.text.as_str()),
        ("HIT", "<p>/blog/a render 1</p>"),
        "rollback is warm"
    );
    rollback.shutdown().await;
    assert_eq!(origin.renders("/blog/a"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_namespaces_beyond_keep_namespaces_are_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TestOrigin::new().start().await;
    for build in ["b1", "b2", "b3", "b4"] {
        let proxy = start(dir.path(), build, &origin).await;
        proxy.client.get("/blog/a").await;
        proxy.shutdown().await;
        // Marker mtimes order namespaces; keep them apart on coarse-grained filesystems.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["b2", "b3", "b4"], "keep_namespaces defaults to 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unusable_cache_dir_keeps_the_proxy_serving_from_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("plain file");
    let origin = TestOrigin::new().start().await;
    let proxy = spawn_proxy(&config(&not_a_dir.join("cache"), "default"), &origin).await;
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "MISS");
    assert_eq!(proxy.client.get("/blog/a").await.cache(), "HIT");
    proxy.shutdown().await;
}
