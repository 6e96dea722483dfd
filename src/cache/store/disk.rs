//! The disk tier: pages survive a restart, and deployment namespaces make a rollback warm.
//!
//! Files live at `dir/<namespace>/<2 hex>/<xxh3-128 of the key>.entry` — names derive from a hash, never from
//! the request path. Writes go through a bounded queue to one writer thread (the request path never waits on
//! disk) and are atomic: temp file, fsync, rename. A torn or corrupt file fails its checksum, is deleted and
//! read as a miss. Pages are loaded lazily on an in-memory miss, so startup does not wait for the disk; a
//! background scan rebuilds the tag index and the size accounting that bounds `max_disk_size` (oldest first).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::cache::store::codec::{self, CodecError};
use crate::cache::store::{BoxFuture, Store};
use crate::cache::{CacheKey, Entry};

/// Queued writes before new ones are dropped (and counted): a slow disk must not grow memory without bound.
const QUEUE_CAPACITY: usize = 4096;
/// Bound on waiting for queued writes at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one "disk write failed" log line per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Eviction frees down to this share of `max_disk_size`, so it runs in batches rather than on every write.
const EVICT_TO_PERCENT: u64 = 90;
/// Written in the namespace directory at startup; its mtime orders namespaces for `keep_namespaces`.
const LAST_USED_MARKER: &str = ".last-used";

/// Where and how much to persist.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// Root directory.
    pub dir: PathBuf,
    /// Sub-directory for this deployment (build id).
    pub namespace: String,
    /// Bound on bytes of entry files in this namespace.
    pub max_bytes: u64,
    /// Namespaces kept (the current one included); older ones are removed at startup.
    pub keep_namespaces: usize,
}

/// Why the disk tier could not start (the proxy then runs memory-only).
#[derive(Debug, thiserror::Error)]
#[error("cannot use cache directory {dir}: {error}")]
pub struct DiskError {
    dir: PathBuf,
    error: std::io::Error,
}

/// Called for every page found by the startup scan, to rebuild the tag index.
pub type OnScanned = Box<dyn FnMut(&CacheKey, &[String]) + Send>;

enum Job {
    Write(CacheKey, Arc<Entry>),
    Delete(CacheKey),
    Flush(oneshot::Sender<()>),
}

/// The disk tier. Dropping it lets the writer thread finish its queue and exit.
pub struct DiskStore {
    root: PathBuf,
    jobs: SyncSender<Job>,
    dropped_writes: AtomicU64,
}

impl DiskStore {
    /// Opens (creating) `dir/<namespace>`, removes namespaces beyond `keep_namespaces`, and starts the writer
    /// thread, which first scans existing files (reporting each to `on_scanned`) and then serves writes.
    pub fn open(options: DiskOptions, on_scanned: OnScanned) -> Result<Self, DiskError> {
        let root = options.dir.join(&options.namespace);
        let fail = |error| DiskError {
            dir: root.clone(),
            error,
        };
        fs::create_dir_all(&root).map_err(fail)?;
        fs::write(root.join(LAST_USED_MARKER), b"").map_err(fail)?;
        prune_namespaces(&options.dir, &options.namespace, options.keep_namespaces);
        let (jobs, queue) = sync_channel(QUEUE_CAPACITY);
        let writer = Writer {
            root: root.clone(),
            max_bytes: options.max_bytes,
            files: HashMap::new(),
            total_bytes: 0,
            last_error_log: None,
        };
        // Not joined: when the store is dropped the sender goes with it, and the thread drains its queue and
        // exits on its own. `flush` is the way to wait for it.
        std::thread::Builder::new()
            .name("isr-disk-writer".into())
            .spawn(move || writer.run(queue, on_scanned))
            .map_err(fail)?;
        Ok(Self {
            root,
            jobs,
            dropped_writes: AtomicU64::new(0),
        })
    }

    /// Writes dropped because the queue was full.
    pub fn dropped_writes(&self) -> u64 {
        self.dropped_writes.load(Ordering::Relaxed)
    }

    fn enqueue(&self, job: Job) {
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped_writes.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "disk write queue full; dropping writes (pages stay in memory)");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Store for DiskStore {
    fn load<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Option<Entry>> {
        let path = file_path(&self.root, key);
        let key = key.clone();
        Box::pin(async move {
            let read = tokio::task::spawn_blocking(move || read_entry(&path, &key)).await;
            read.ok().flatten()
        })
    }

    fn save(&self, key: &CacheKey, entry: &Arc<Entry>) {
        self.enqueue(Job::Write(key.clone(), entry.clone()));
    }

    fn delete(&self, key: &CacheKey) {
        self.enqueue(Job::Delete(key.clone()));
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            // A blocking send is fine on a full queue at shutdown, but must not block the runtime.
            let jobs = self.jobs.clone();
            let sent = tokio::task::spawn_blocking(move || jobs.send(Job::Flush(done)).is_ok()).await;
            if matches!(sent, Ok(true)) && tokio::time::timeout(FLUSH_TIMEOUT, wait).await.is_err() {
                tracing::warn!(timeout = ?FLUSH_TIMEOUT, "disk flush timed out; some pages may not be persisted");
            }
        })
    }

    fn name(&self) -> &'static str {
        "disk"
    }

    fn holds<'a>(&'a self, keys: &'a [CacheKey]) -> BoxFuture<'a, Option<Vec<bool>>> {
        let paths: Vec<PathBuf> = keys.iter().map(|key| file_path(&self.root, key)).collect();
        Box::pin(async move {
            let exist = tokio::task::spawn_blocking(move || paths.iter().map(|p| p.exists()).collect());
            exist.await.ok()
        })
    }
}

/// Reads one page; a corrupt or foreign file is deleted and read as a miss.
fn read_entry(path: &Path, key: &CacheKey) -> Option<Entry> {
    let bytes = fs::read(path).ok()?;
    match codec::decode(&bytes) {
        Ok((stored_key, entry)) if &stored_key == key => Some(entry),
        Ok(_) => None,
        Err(err) => {
            discard(path, &err);
            None
        }
    }
}

fn discard(path: &Path, err: &CodecError) {
    tracing::warn!(file = %path.display(), error = %err, "unreadable cache file; deleting it");
    let _ = fs::remove_file(path);
}

/// `root/ab/abcdef….entry` from a hash of the whole key (path, query and variant).
/// The file holding `key` in the namespace directory `root`: a hash of the key, never the request path.
pub fn file_path(root: &Path, key: &CacheKey) -> PathBuf {
    let hash = format!("{:032x}", codec::key_hash(key));
    root.join(&hash[..2]).join(format!("{hash}.entry"))
}

/// Removes namespace directories beyond the newest `keep` (by their marker's mtime); the current one stays.
fn prune_namespaces(dir: &Path, current: &str, keep: usize) {
    let Ok(read) = fs::read_dir(dir) else { return };
    let mut namespaces: Vec<(SystemTime, PathBuf)> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != current)
        .map(|e| {
            let used = fs::metadata(e.path().join(LAST_USED_MARKER))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (used, e.path())
        })
        .collect();
    namespaces.sort_by_key(|n| std::cmp::Reverse(n.0));
    for (_, old) in namespaces.into_iter().skip(keep.saturating_sub(1)) {
        tracing::info!(namespace = %old.display(), "removing an old cache namespace");
        if let Err(err) = fs::remove_dir_all(&old) {
            tracing::warn!(namespace = %old.display(), error = %err, "cannot remove an old cache namespace");
        }
    }
}

/// The writer thread's state: it alone touches files after startup, so it needs no locks.
struct Writer {
    root: PathBuf,
    max_bytes: u64,
    /// Size and write time of every entry file, for the disk bound.
    files: HashMap<PathBuf, (u64, SystemTime)>,
    total_bytes: u64,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(mut self, queue: Receiver<Job>, mut on_scanned: OnScanned) {
        self.scan(&mut on_scanned);
        drop(on_scanned);
        while let Ok(job) = queue.recv() {
            match job {
                Job::Write(key, entry) => self.write(&key, &entry),
                Job::Delete(key) => self.delete(&file_path(&self.root, &key)),
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Indexes existing files; removes leftover temp files (a crash mid-write) and unreadable entries.
    fn scan(&mut self, on_scanned: &mut OnScanned) {
        let started = Instant::now();
        let Ok(shards) = fs::read_dir(&self.root) else { return };
        for shard in shards
            .filter_map(Result::ok)
            .filter(|s| s.file_type().is_ok_and(|t| t.is_dir()))
        {
            let Ok(files) = fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.filter_map(Result::ok) {
                let path = file.path();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("entry") => match fs::read(&path).map(|bytes| codec::decode(&bytes)) {
                        Ok(Ok((key, entry))) => {
                            on_scanned(&key, &entry.tags);
                            let modified = file.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::now());
                            self.track(path, file.metadata().map_or(0, |m| m.len()), modified);
                        }
                        Ok(Err(err)) => discard(&path, &err),
                        Err(_) => {}
                    },
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        tracing::info!(
            files = self.files.len(),
            bytes = self.total_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            dir = %self.root.display(),
            "disk cache indexed"
        );
        self.evict_if_over();
    }

    fn write(&mut self, key: &CacheKey, entry: &Entry) {
        let path = file_path(&self.root, key);
        let bytes = codec::encode(key, entry);
        match write_atomically(&path, &bytes) {
            Ok(()) => {
                self.track(path, bytes.len() as u64, SystemTime::now());
                self.evict_if_over();
            }
            Err(err) => {
                let now = Instant::now();
                if self
                    .last_error_log
                    .is_none_or(|at| now.duration_since(at) >= ERROR_LOG_INTERVAL)
                {
                    self.last_error_log = Some(now);
                    tracing::error!(file = %path.display(), error = %err, "disk cache write failed; serving from memory");
                }
            }
        }
    }

    fn track(&mut self, path: PathBuf, size: u64, written: SystemTime) {
        if let Some((old, _)) = self.files.insert(path, (size, written)) {
            self.total_bytes -= old;
        }
        self.total_bytes += size;
    }

    fn delete(&mut self, path: &Path) {
        if let Some((size, _)) = self.files.remove(path) {
            self.total_bytes -= size;
        }
        let _ = fs::remove_file(path);
    }

    /// Oldest-written first, down to [`EVICT_TO_PERCENT`] of the bound.
    fn evict_if_over(&mut self) {
        if self.total_bytes <= self.max_bytes {
            return;
        }
        let target = self.max_bytes / 100 * EVICT_TO_PERCENT;
        let mut by_age: Vec<(SystemTime, PathBuf)> = self.files.iter().map(|(p, (_, t))| (*t, p.clone())).collect();
        by_age.sort();
        let mut evicted = 0usize;
        for (_, path) in by_age {
            if self.total_bytes <= target {
                break;
            }
            self.delete(&path);
            evicted += 1;
        }
        tracing::debug!(
            evicted,
            bytes = self.total_bytes,
            "disk cache over max_disk_size; evicted oldest"
        );
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
