//! Connecting to Redis: one server (a `ConnectionManager`) or a Redis Cluster (a `ClusterConnection`, which
//! routes each command to the node owning its key's slot and follows failovers), plain or over TLS (rustls; the
//! system's CAs, or `ca_file`; optionally a client certificate).
//!
//! Invalidations are subscribed on a connection of their own. In a cluster, `PUBLISH` reaches every node, so the
//! subscriber connects to any node that answers: the seeds first, then the primaries the cluster reports.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture,
    RedisResult, TlsCertificates, Value,
};

use super::{MIN_WRITE_TIMEOUT, RedisOptions, health};

/// The command connection: cheap to clone, reconnects by itself.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where the invalidation subscriber connects.
pub(super) enum Subscriptions {
    /// The one Redis.
    Single(Client),
    /// Any node of the cluster.
    Cluster {
        seeds: Vec<ConnectionInfo>,
        certs: Option<TlsCertificates>,
    },
}

/// Opens the command connection (lazily: an unreachable Redis is an outage, not an error) and says where to
/// subscribe.
pub(super) fn open(options: &RedisOptions) -> RedisResult<(Connection, Subscriptions)> {
    let certs = options.tls.as_ref().map(|tls| TlsCertificates {
        client_tls: tls.client_identity.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        root_cert: tls.ca.clone(),
    });
    let connect_timeout = options.timeout.max(MIN_WRITE_TIMEOUT);
    match &options.cluster {
        None => {
            let client = match &certs {
                Some(certs) => Client::build_with_tls(options.url.as_str(), certs.clone())?,
                None => Client::open(options.url.as_str())?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                // Budgets are applied per operation, so a large write is not cut short by a lookup's budget.
                .set_response_timeout(None)
                .set_number_of_retries(1)
                .set_max_delay(health::RECONNECT_INTERVAL);
            let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
            Ok((Connection::Single(conn), Subscriptions::Single(client)))
        }
        Some(nodes) => {
            let seeds = nodes
                .iter()
                .map(|node| node.as_str().into_connection_info())
                .collect::<RedisResult<Vec<_>>>()?;
            let mut builder = ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(connect_timeout)
                // Per-operation budgets bound every command; a retry after a failover must not be cut short here.
                .response_timeout(Duration::from_secs(5))
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(health::RECONNECT_INTERVAL.as_millis() as u64);
            if let Some(certs) = &certs {
                builder = builder.certs(certs.clone());
            }
            let client = builder.build()?;
            let conn = client.get_pending_async_connection_with_config(redis::cluster::ClusterConfig::new());
            Ok((Connection::Cluster(conn), Subscriptions::Cluster { seeds, certs }))
        }
    }
}

impl Subscriptions {
    /// A pub/sub connection. In a cluster, attempt `n` tries the `n`th candidate node (seeds, then the
    /// primaries `conn` reports), so a stopped node is passed over on the next attempt.
    pub(super) async fn pubsub(&self, conn: &Connection, attempt: usize) -> RedisResult<PubSub> {
        match self {
            Self::Single(client) => client.get_async_pubsub().await,
            Self::Cluster { seeds, certs } => {
                let mut candidates = seeds.clone();
                if attempt >= seeds.len() {
                    candidates.extend(primaries(conn, &seeds[0]).await);
                }
                let node = candidates[attempt % candidates.len()].clone();
                let client = match certs {
                    Some(certs) => Client::build_with_tls(node, certs.clone())?,
                    None => Client::open(node)?,
                };
                client.get_async_pubsub().await
            }
        }
    }
}

/// The cluster's primaries that are not marked failed (`CLUSTER NODES`), as connection infos modelled on `seed`
/// (same scheme, credentials and TLS). Empty when the cluster cannot be asked.
async fn primaries(conn: &Connection, seed: &ConnectionInfo) -> Vec<ConnectionInfo> {
    let mut conn = conn.clone();
    let Ok(nodes) = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(&mut conn)
        .await
    else {
        return Vec::new();
    };
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let healthy = flags.contains("master") && !flags.contains("fail") && !flags.contains("noaddr");
            let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
            let port = port.parse().ok()?;
            healthy.then(|| with_address(seed, host, port))
        })
        .collect()
}

fn with_address(seed: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let host = host.to_owned();
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    seed.clone().set_addr(addr)
}
