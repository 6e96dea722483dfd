//! Zero-downtime binary upgrades: with `server.reuse_port`, a second isr-proxy binds the port the first one
//! serves, warms from the shared disk tier, and takes over while the first drains on SIGTERM; no request fails.

mod common;

use common::binary::{Load, ProxyProcess, free_port};
use common::{TestOrigin, eventually, files_with_extension};

const CONFIG: &str = r#"
[origin]
url = "{origin}"

[cache]
dir = "{dir}"

[server]
reuse_port = true
shutdown_timeout = "2s"

[[route]]
path = "/blog/:slug"
revalidate = 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_process_takes_over_the_port_warm_while_the_old_one_drains() {
    let origin = TestOrigin::new().start().await;
    let dir = tempfile::tempdir().expect("cache dir");
    let config = CONFIG.replace("{dir}", &dir.path().display().to_string());
    let port = free_port();
    let mut old = ProxyProcess::start_with_admin(&config, &origin.url(), port).await;
    assert_eq!(old.client.get("/blog/a").await.cache(), "MISS");
    eventually(3000, "the page on disk", async || {
        !files_with_extension(dir.path(), "entry").is_empty()
    })
    .await;

    let new = ProxyProcess::start_with_admin(&config, &origin.url(), port).await;
    assert_eq!(new.addr, old.addr, "both processes listen on one port");
    let load = Load::start(&new.client, &["/blog/a"], 4, true);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    old.signal("TERM");
    let status = old.wait_exit(5000).await;
    assert!(status.success(), "the old process drains and exits cleanly: {status}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let served = load.stop().await;
    assert!(served > 0, "requests kept flowing");

    assert_eq!(new.client.get("/blog/a").await.cache(), "HIT");
    assert_eq!(
        origin.renders("/blog/a"),
        1,
        "the new process served the page the old one had rendered, from disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_port_a_second_process_cannot_bind_and_says_why() {
    let origin = TestOrigin::new().start().await;
    let dir = tempfile::tempdir().expect("cache dir");
    let config = CONFIG
        .replace("{dir}", &dir.path().display().to_string())
        .replace("reuse_port = true", "reuse_port = false");
    let first = ProxyProcess::start_with_admin(&config, &origin.url(), free_port()).await;
    let path = dir.path().join("second.toml");
    std::fs::copy(&first.config_file, &path).expect("copy config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_isr-proxy"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("run isr-proxy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`listen`"), "the error names the key: {stderr}");
}
