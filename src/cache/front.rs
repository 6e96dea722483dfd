//! The hit map: every page in memory, readable with no lock and none of moka's per-read bookkeeping.
//!
//! moka bounds memory and decides what to evict; reading through it costs a hash, a probe of its concurrent
//! table, a record of the read for its frequency sketch and, now and then, a share of its housekeeping: the
//! largest cost of a hit after hyper's. The front map mirrors moka's contents (written where moka is written,
//! under the same per-key lock; cleared where moka evicts or removes) and answers hits; one hit in
//! [`SAMPLE_EVERY`] also reads through moka, so its idea of which pages are popular stays close to the truth.
//!
//! # Concurrent calls on the same key
//! Writers hold moka's per-key compute lock ([`super::Cache`]), so puts for one key are ordered. A removal only
//! removes the value it saw leave moka (pointer equality), so a page stored again meanwhile stays.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::{CacheKey, Entry};

/// One hit in this many also reads through moka, per worker thread (no shared counter).
pub(super) const SAMPLE_EVERY: u32 = 8;

/// Every page in memory, by key.
pub(super) struct Front {
    map: papaya::HashMap<CacheKey, Arc<Entry>, KeyHashing>,
}

impl Default for Front {
    fn default() -> Self {
        Self {
            map: papaya::HashMap::builder().hasher(KeyHashing).build(),
        }
    }
}

impl Front {
    /// The page under `key`, if in memory.
    pub(super) fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.map.pin().get(key).cloned()
    }

    /// Records that moka now holds `entry` under `key`.
    pub(super) fn put(&self, key: &CacheKey, entry: &Arc<Entry>) {
        self.map.pin().insert(key.clone(), entry.clone());
    }

    /// Forgets `key` if it still maps to `entry` (the value that left moka).
    pub(super) fn remove_if_same(&self, key: &CacheKey, entry: &Arc<Entry>) {
        let _ = self.map.pin().remove_if(key, |_, current| Arc::ptr_eq(current, entry));
    }

    /// Forgets everything (moka was emptied).
    pub(super) fn clear(&self) {
        self.map.pin().clear();
    }
}

/// Whether this hit should also read through moka (see [`SAMPLE_EVERY`]).
pub(super) fn sample_read() -> bool {
    thread_local! {
        static HITS: Cell<u32> = const { Cell::new(0) };
    }
    HITS.with(|hits| {
        let n = hits.get().wrapping_add(1);
        hits.set(n);
        n % SAMPLE_EVERY == 0
    })
}

/// Hashes a [`CacheKey`] by the seeded hash it carries (computed once, when the key was made), instead of
/// hashing that hash again.
#[derive(Clone, Copy, Default)]
pub(super) struct KeyHashing;

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// See [`KeyHashing`]. A key writes exactly one `u64`; anything else is folded in, so the hasher stays correct
/// for any key type.
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}
