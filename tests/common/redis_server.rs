//! A real `redis-server` for the shared-tier tests, on a free loopback port, killed on drop.
//!
//! `redis-server` cannot pick its own port (`--port 0` disables TCP), so a free one is found by binding
//! `127.0.0.1:0` and releasing it. Nothing is persisted (`--save '' --appendonly no`). A missing binary fails
//! the test with the command that installs it: these tests must never skip silently.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, see [`RedisServer::kill`]) Redis.
pub(crate) struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a Redis and waits until it answers.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        // The port was free a moment ago; if something took it meanwhile, redis-server exits: try another.
        for _ in 0..3 {
            if server.spawn().await {
                return server;
            }
            server.port = free_port();
        }
        panic!("redis-server could not bind a free loopback port three times");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "redis-server could not bind port {} again",
            self.port
        );
    }

    /// A plain client connection, for looking at or planting keys.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Starts the server on `self.port` and waits until it answers; `false` if it exited (port taken).
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): the shared-tier tests need it on PATH; \
                     install it with `apt-get update && apt-get install -y redis-server` (.ci/run does)"
                )
            });
        let client = redis::Client::open(self.url()).expect("redis url");
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return false;
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 5s on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
