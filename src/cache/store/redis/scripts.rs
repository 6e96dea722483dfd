//! The Lua scripts: each makes one check-and-write atomic on the Redis side. Each touches one key (or keys of
//! one hash slot), so every script runs unchanged on Redis Cluster.
//!
//! Lua numbers are doubles, exact up to 2^53: millisecond timestamps and TTLs fit.

use std::sync::LazyLock;

use redis::Script;

/// Stores a page unless the stored one was generated later, and sets its TTL.
/// KEYS: page; ARGV: generated-at ms, stale flag, codec bytes, TTL ms (0 = none). Returns 1 if stored.
pub(super) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'g')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 's', ARGV[2], 'e', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
",
    )
});

/// Adds a page to a tag set; the set lives at least as long as the page.
/// KEYS: tag set; ARGV: page key, page TTL ms (0 = none).
pub(super) static TAG_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 or (left >= 0 and left < ttl) then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
",
    )
});

/// Adds a page to the path index and drops up to 8 members whose pages expired (a page write at a time keeps
/// the index near what Redis holds). KEYS: path index, its expiry set (one hash tag); ARGV: member, page TTL ms
/// (0 = none). The time is Redis's own, the clock its page TTLs run on.
pub(super) static INDEX_PATH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
if ttl > 0 then redis.call('ZADD', KEYS[2], now + ttl, ARGV[1]) else redis.call('ZADD', KEYS[2], '+inf', ARGV[1]) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 8)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
return #gone
",
    )
});

/// Marks a page stale, or deletes it, if it exists (never creating a page from nothing).
/// KEYS: page; ARGV: purge ('1' or '0'). Returns 1 if the page existed.
pub(super) static INVALIDATE_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) else redis.call('HSET', KEYS[1], 's', '1') end
return 1
",
    )
});

/// Bumps the epoch and announces an invalidation. KEYS: epoch; ARGV: channel, message. Returns the epoch.
pub(super) static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local epoch = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. ARGV[2])
return epoch
",
    )
});

/// Releases a lock only for the holder of its token. KEYS: lock; ARGV: token. Returns 1 if released.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});
