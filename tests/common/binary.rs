//! The real `isr-proxy` binary as a child process, for what only a process can show: signals (SIGHUP reload,
//! SIGTERM drain) and two processes on one port. Its config file lives in a temp dir and can be rewritten.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{TestClient, eventually};

/// A running `isr-proxy`; killed on drop.
pub(crate) struct ProxyProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) client: TestClient,
    pub(crate) admin_client: TestClient,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl ProxyProcess {
    /// Starts the binary on `config` (in which `{listen}` and `{admin}` stand for the given ports) and waits
    /// until both listeners answer.
    pub(crate) async fn start(config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the config");
        let path = dir.path().join("isr-proxy.toml");
        let admin_port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let text = config
            .replace("{listen}", &addr.to_string())
            .replace("{admin}", &admin.to_string());
        std::fs::write(&path, text).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_isr-proxy"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start isr-proxy");
        let process = Self {
            child,
            addr,
            admin,
            client: TestClient::new(addr),
            admin_client: TestClient::new(admin),
            config: path,
            _dir: dir,
        };
        // `/health` is 200 only once the public listener accepts (another process may hold the port already).
        eventually(10_000, "isr-proxy to report itself ready", async || {
            tokio::net::TcpStream::connect(admin).await.is_ok()
                && process.admin_client.get("/health").await.status == http::StatusCode::OK
        })
        .await;
        process
    }

    /// Replaces the config file (`{listen}` and `{admin}` as in [`ProxyProcess::start`]).
    pub(crate) fn rewrite_config(&self, config: &str) {
        let text = config
            .replace("{listen}", &self.addr.to_string())
            .replace("{admin}", &self.admin.to_string());
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) with `kill`.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// `/health` as JSON.
    pub(crate) async fn health(&self) -> serde_json::Value {
        let response = self.admin_client.get("/health").await;
        serde_json::from_str(&response.text).expect("health JSON")
    }

    /// `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        self.admin_client.get("/metrics").await.text
    }

    /// Waits (bounded) for the process to exit.
    pub(crate) async fn wait_exit(&mut self, ms: u64) -> ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_millis(ms);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "isr-proxy did not exit within {ms} ms"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests sent in a loop by a few tasks until stopped: every one must get a 200 (a transport error panics
/// the task, which [`Load::stop`] re-raises).
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<usize>>,
}

impl Load {
    /// `tasks` loops over `paths` through `client`; with `fresh_connections`, each request opens its own
    /// connection (`Connection: close`), as new visitors would.
    pub(crate) fn start(client: &TestClient, paths: &[&str], tasks: usize, fresh_connections: bool) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|i| {
                let (client, stop) = (client.clone(), stop.clone());
                let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
                tokio::spawn(async move {
                    let mut sent = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let path = &paths[(i + sent) % paths.len()];
                        let response = if fresh_connections {
                            fresh_connection_get(&client, path).await
                        } else {
                            client.get(path).await
                        };
                        assert_eq!(
                            response.status,
                            http::StatusCode::OK,
                            "{path} under load: {}",
                            response.text
                        );
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops the tasks and returns how many requests succeeded; a failed one fails the test here.
    pub(crate) async fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = 0;
        for task in self.tasks {
            match task.await {
                Ok(sent) => total += sent,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("load task: {err}"),
            }
        }
        total
    }
}

/// A GET on a connection of its own. A connection refused or reset *while connecting* is retried once, as a
/// browser or a load balancer does: the request never reached any server. Linux resets connections still in a
/// closing listener's SYN queue unless `net.ipv4.tcp_migrate_req = 1` (see README, "Deploying"); a failure
/// after the connection was made is never retried.
async fn fresh_connection_get(client: &TestClient, path: &str) -> super::TestResponse {
    match client.get(path).header("connection", "close").try_send().await {
        Ok(response) => response,
        Err(err) if err.is_connect() => client.get(path).header("connection", "close").await,
        Err(err) => panic!("GET {path} failed after connecting: {err:?}"),
    }
}
