//! The real `isr-proxy` binary as a child process, for behaviour that only the binary has (signals, crashes,
//! process limits) or that must be shown end to end.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{TestClient, eventually};

/// A running `isr-proxy` process; killed when dropped.
pub(crate) struct ProxyProcess {
    pub(crate) addr: SocketAddr,
    pub(crate) client: TestClient,
    pub(crate) config_file: PathBuf,
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
        let temp = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temp dir")),
        };
        let dir = dir.map_or_else(|| temp.as_ref().map(|t| t.path().to_owned()), |d| Some(d.to_owned()));
        let dir = dir.expect("a config directory");
        let port = free_port();
        let config_file = dir.join("isr-proxy.toml");
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\n{}",
            toml.replace("{origin}", origin_url)
        );
        std::fs::write(&config_file, text).expect("write config");
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
        let child = command.spawn().expect("start isr-proxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let process = Self {
            addr,
            client: TestClient::new(addr),
            config_file,
            child,
            _dir: temp,
        };
        eventually(10_000, "the isr-proxy binary to listen", async || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await;
        process
    }

    /// SIGKILL, and reap the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
