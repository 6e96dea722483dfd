//! The real `isr-proxy` binary as a child process, for behaviour that only the binary has (signals, crashes,
//! process limits, two processes on one port) or that must be shown end to end.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{TestClient, TestResponse, eventually};

/// A running `isr-proxy` process; killed when dropped.
pub(crate) struct ProxyProcess {
    pub(crate) addr: SocketAddr,
    pub(crate) client: TestClient,
    pub(crate) config_file: PathBuf,
    /// The admin listener, when started with one ([`ProxyProcess::start_with_admin`]).
    admin: Option<(SocketAddr, TestClient)>,
    origin_url: String,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

/// A loopback port free a moment ago (the binary binds it itself, from its config).
pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ProxyProcess {
    /// Starts the binary with `toml` (`{origin}` stands for `origin_url`; `listen` is added) written to a config
    /// file in `dir` (a fresh temporary directory if `None`), and waits until it accepts connections.
    pub(crate) async fn start(
        toml: &str,
        origin_url: &str,
        dir: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Self {
        let process = Self::spawn(toml, origin_url, dir, env, free_port(), None);
        let addr = process.addr;
        eventually(10_000, "the isr-proxy binary to listen", async || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await;
        process
    }

    /// Like [`ProxyProcess::start`] on `port`, with an admin listener (on a free port), and waits until
    /// `/health` answers 200: the public listener accepts, even if another process already held the port.
    pub(crate) async fn start_with_admin(toml: &str, origin_url: &str, port: u16) -> Self {
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let process = Self::spawn(toml, origin_url, None, &[], port, Some(admin));
        eventually(10_000, "isr-proxy to report itself ready", async || {
            std::net::TcpStream::connect(admin).is_ok() && process.admin_get("/health").await.status == 200
        })
        .await;
        process
    }

    fn spawn(
        toml: &str,
        origin_url: &str,
        dir: Option<&std::path::Path>,
        env: &[(&str, &str)],
        port: u16,
        admin: Option<SocketAddr>,
    ) -> Self {
        let temp = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temp dir")),
        };
        let dir = dir.map_or_else(|| temp.as_ref().map(|t| t.path().to_owned()), |d| Some(d.to_owned()));
        let dir = dir.expect("a config directory");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config_file = dir.join("isr-proxy.toml");
        write_config(&config_file, addr, admin, origin_url, toml);
        let mut command = Command::new(env!("CARGO_BIN_EXE_isr-proxy"));
        command
            .arg("--config")
            .arg(&config_file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        Self {
            addr,
            client: TestClient::new(addr),
            config_file,
            admin: admin.map(|admin| (admin, TestClient::new(admin))),
            origin_url: origin_url.to_owned(),
            child: command.spawn().expect("start isr-proxy"),
            _dir: temp,
        }
    }

    /// Writes `toml` as the config file (as [`ProxyProcess::start`] does, with this process's `listen` and
    /// admin address), for a reload.
    pub(crate) fn rewrite_config(&self, toml: &str) {
        let admin = self.admin.as_ref().map(|(admin, _)| *admin);
        write_config(&self.config_file, self.addr, admin, &self.origin_url, toml);
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

    /// A GET on the admin listener.
    pub(crate) async fn admin_get(&self, path: &str) -> TestResponse {
        let (_, client) = self.admin.as_ref().expect("started with an admin listener");
        client.get(path).await
    }

    /// `/health` as JSON.
    pub(crate) async fn health(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_get("/health").await.text).expect("health JSON")
    }

    /// `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.text
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

    /// SIGKILL, and reap the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `toml` with `{origin}` replaced, `listen` added and, with `admin`, an `[admin]` listener.
fn write_config(file: &std::path::Path, addr: SocketAddr, admin: Option<SocketAddr>, origin_url: &str, toml: &str) {
    let mut text = format!("listen = \"{addr}\"\n{}", toml.replace("{origin}", origin_url));
    if let Some(admin) = admin {
        text.push_str(&format!("\n[admin]\nlisten = \"{admin}\"\n"));
    }
    std::fs::write(file, text).expect("write config");
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
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
/// closing listener's SYN queue unless `net.ipv4.tcp_migrate_req = 1` (see
/// `docs/deploying.md#zero-downtime-binary-upgrade-systemd-bare-metal`); a failure after the connection was made is
/// never retried.
async fn fresh_connection_get(client: &TestClient, path: &str) -> super::TestResponse {
    match client.get(path).header("connection", "close").try_send().await {
        Ok(response) => response,
        Err(err) if err.is_connect() => client.get(path).header("connection", "close").await,
        Err(err) => panic!("GET {path} failed after connecting: {err:?}"),
    }
}
