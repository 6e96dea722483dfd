//! The admin listener next to a test proxy, and running the real `isr-proxy` binary's subcommands against it.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{ProxyHandle, TestClient};

/// An admin listener serving one proxy; stops when dropped.
pub(crate) struct AdminHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) client: TestClient,
    _stop: oneshot::Sender<()>,
}

impl AdminHandle {
    /// `http://127.0.0.1:<port>`, as `--admin-url` takes it.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET path` on the admin listener, decoded as JSON (any status).
    pub(crate) async fn json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(path).await;
        serde_json::from_str(&response.text)
            .unwrap_or_else(|err| panic!("GET {path}: not JSON ({err}): {}", response.text))
    }
}

/// Starts the admin listener for `proxy` on a free loopback port.
pub(crate) async fn spawn_admin(proxy: &ProxyHandle) -> AdminHandle {
    spawn_admin_sampling(proxy, isr_proxy::admin::history::DEFAULT_SAMPLE_INTERVAL).await
}

/// [`spawn_admin`] with `/history` sampled every `interval`.
pub(crate) async fn spawn_admin_sampling(proxy: &ProxyHandle, interval: Duration) -> AdminHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = listener.local_addr().expect("admin address");
    let (stop, stopped) = oneshot::channel::<()>();
    let live = isr_proxy::LiveProxy::new(proxy.proxy.clone());
    tokio::spawn(isr_proxy::admin::run_admin_sampling(listener, live, interval, async {
        let _ = stopped.await;
    }));
    AdminHandle {
        addr,
        client: TestClient::new(addr),
        _stop: stop,
    }
}

/// What one run of the binary printed, and how it exited.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `isr-proxy <args>` with `env` (and none of the operator variables inherited), bounded in time.
pub(crate) async fn isr_proxy(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_isr-proxy"));
    command
        .args(args)
        .env_remove("ISR_REVALIDATE_TOKEN")
        .env_remove("ISR_ADMIN_URL")
        .env_remove("ISR_PROXY_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let what = format!("isr-proxy {}", args.join(" "));
    let output = super::within(20_000, &what, command.output()).await;
    output.unwrap_or_else(|err| panic!("{what}: cannot run: {err}")).into()
}
