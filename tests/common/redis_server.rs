//! Real `redis-server` processes for the shared-tier tests, on free loopback ports, killed on drop: a plain
//! Redis, one speaking TLS only (certificates made in the test, optionally requiring client certificates), and
//! a Redis Cluster of several primaries.
//!
//! `redis-server` cannot pick its own port (`--port 0` disables TCP), so a free one is found by binding
//! `127.0.0.1:0` and releasing it. Nothing is persisted (`--save '' --appendonly no`). A missing binary fails
//! the test with the command that installs it: these tests must never skip silently.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{ClientTlsConfig, TlsCertificates};

use super::tls::{Issued, TestCa};

/// How a server is run.
#[derive(Clone, Default)]
struct Mode {
    tls: Option<TlsMode>,
    cluster: bool,
}

#[derive(Clone)]
struct TlsMode {
    server: Issued,
    ca_pem: Vec<u8>,
    ca_file: std::path::PathBuf,
    /// The certificate the test's own client presents when the server requires one.
    client: Option<Issued>,
}

/// A running (or killed, see [`RedisServer::kill`]) Redis.
pub(crate) struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    mode: Mode,
}

impl RedisServer {
    /// Starts a Redis and waits until it answers.
    pub(crate) async fn start() -> Self {
        Self::start_in(Mode::default()).await
    }

    /// Starts a Redis that speaks TLS only, with a certificate from `ca` for `127.0.0.1` and `localhost`. With
    /// `client`, it requires client certificates from `ca` (`tls-auth-clients yes`); the test's own client
    /// presents `client`.
    pub(crate) async fn start_tls(ca: &TestCa, client: Option<Issued>) -> Self {
        let tls = TlsMode {
            server: ca.issue("redis", &["127.0.0.1", "localhost"]),
            ca_pem: std::fs::read(ca.ca_file()).expect("read ca.pem"),
            ca_file: ca.ca_file(),
            client,
        };
        Self::start_in(Mode {
            tls: Some(tls),
            cluster: false,
        })
        .await
    }

    async fn start_in(mode: Mode) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            mode,
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

    /// `redis://127.0.0.1:<port>/0`, or `rediss://` for a TLS server.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.mode.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (a cluster node keeps its slots: `nodes.conf` stays).
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
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    fn client(&self) -> redis::Client {
        match &self.mode.tls {
            None => redis::Client::open(self.url()).expect("redis url"),
            Some(tls) => {
                let certs = TlsCertificates {
                    client_tls: tls.client.as_ref().map(|client| ClientTlsConfig {
                        client_cert: std::fs::read(&client.cert_file).expect("client cert"),
                        client_key: std::fs::read(&client.key_file).expect("client key"),
                    }),
                    root_cert: Some(tls.ca_pem.clone()),
                };
                redis::Client::build_with_tls(self.url(), certs).expect("redis TLS client")
            }
        }
    }

    /// Starts the server on `self.port` and waits until it answers; `false` if it exited (port taken).
    async fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        match &self.mode.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.server.cert_file)
                    .arg("--tls-key-file")
                    .arg(&tls.server.key_file)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca_file)
                    .args(["--tls-auth-clients", if tls.client.is_some() { "yes" } else { "no" }]);
            }
        }
        if self.mode.cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
            ]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): the shared-tier tests need it on PATH; \
                     install it with `apt-get update && apt-get install -y redis-server` (.ci/run does)"
                )
            });
        let client = self.client();
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

/// A Redis Cluster of primaries (no replicas) on loopback, the 16384 slots split evenly between them.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` cluster-enabled servers, assigns the slots, introduces the nodes to each other
    /// (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`) and waits until every node reports `cluster_state:ok`.
    pub(crate) async fn start(primaries: u16) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..primaries {
            nodes.push(
                RedisServer::start_in(Mode {
                    tls: None,
                    cluster: true,
                })
                .await,
            );
        }
        let per_node = 16384 / primaries;
        for (i, node) in (0u16..).zip(&nodes) {
            let first = i * per_node;
            let last = if i + 1 == primaries {
                16383
            } else {
                first + per_node - 1
            };
            let mut conn = node.connection().await;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async(&mut conn)
                .await
                .expect("assign slots");
        }
        let mut first = nodes[0].connection().await;
        for node in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .query_async(&mut first)
                .await
                .expect("meet");
        }
        let cluster = Self { nodes };
        cluster.wait_until_ok(&[]).await;
        cluster
    }

    /// `cluster = ["redis://...", ...]`: every node as a seed.
    pub(crate) fn seeds(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|node| format!("{:?}", node.url())).collect();
        format!("cluster = [{}]", urls.join(", "))
    }

    /// Waits until every running node but those in `except` reports `cluster_state:ok` and knows every node.
    pub(crate) async fn wait_until_ok(&self, except: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, node) in self.nodes.iter().enumerate() {
            if except.contains(&i) {
                continue;
            }
            loop {
                let mut conn = node.connection().await;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                let known = format!("cluster_known_nodes:{}", self.nodes.len());
                if info.contains("cluster_state:ok") && info.contains(&known) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not form within 10s:\n{info}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
