//! The cache tiers below memory, built from the config when the proxy starts: the disk tier (`cache.dir`) and
//! the shared Redis tier (`[cache.redis]`). A tier that cannot be set up is logged and left out; the proxy
//! serves without it.

use std::sync::Arc;

use crate::cache::Cache;
use crate::cache::store::disk::{DiskOptions, DiskStore};
use crate::cache::store::redis::{RedisOptions, RedisStore, RedisTls};
use crate::config::Config;

/// Adds the disk tier when `cache.dir` is set; an unusable directory is logged and the proxy runs memory-only.
pub(super) fn with_disk_tier(cache: Cache, config: &Config) -> Cache {
    let Some(disk) = &config.cache.disk else {
        return cache;
    };
    let options = DiskOptions {
        dir: disk.dir.clone(),
        namespace: disk.namespace.clone(),
        max_bytes: disk.max_disk_size,
        keep_namespaces: disk.keep_namespaces,
    };
    match DiskStore::open(options, cache.tag_indexer()) {
        Ok(store) => cache.with_tier(Arc::new(store)),
        Err(err) => {
            tracing::error!(error = %err, "disk persistence disabled; serving from memory only");
            cache
        }
    }
}

/// Adds the shared tier when `[cache.redis]` is set. It connects in the background; an unusable URL (already
/// rejected by config validation) is logged and the proxy runs without it.
pub(super) fn with_redis_tier(cache: Cache, config: &Config) -> Cache {
    let Some(redis) = &config.cache.redis else {
        return cache;
    };
    let tls = (redis.ca_file.is_some() || redis.client_identity.is_some()).then(|| RedisTls {
        ca: redis.ca_file.as_ref().map(|file| file.pem.to_vec()),
        client_identity: redis
            .client_identity
            .as_ref()
            .map(|(cert, key)| (cert.pem.to_vec(), key.pem.to_vec())),
    });
    let options = RedisOptions {
        url: redis.url.clone(),
        cluster: redis.cluster.clone(),
        tls,
        key_prefix: redis.key_prefix.clone(),
        lock_ttl: redis.lock_ttl,
        timeout: redis.timeout,
    };
    match RedisStore::open(options, cache.invalidation_applier()) {
        Ok(store) => cache.with_shared_tier(Arc::new(store)),
        Err(err) => {
            tracing::error!(error = %err, "shared redis tier disabled; this instance caches on its own");
            cache
        }
    }
}
