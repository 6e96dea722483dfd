//! The Lua scripts: each makes one check-and-write atomic on the Redis side.
//!
//! Lua numbers are doubles, exact up to 2^53: millisecond timestamps and TTLs fit.

use std::sync::LazyLock;

use redis::Script;

/// Stores a page unless the stored one was generated later, refreshes its TTL and adds it to its tag sets.
/// KEYS: page, tag sets…; ARGV: generated-at ms, stale flag, codec bytes, TTL ms (0 = none). Returns 1 if stored.
pub(super) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'g')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 's', ARGV[2], 'e', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
for i = 2, #KEYS do
  local existed = redis.call('EXISTS', KEYS[i])
  redis.call('SADD', KEYS[i], KEYS[1])
  local left = redis.call('PTTL', KEYS[i])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[i])
  elseif existed == 0 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
",
    )
});

/// Deletes a page and announces it. KEYS: page, epoch; ARGV: channel, message. Returns the number deleted.
pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = redis.call('DEL', KEYS[1])
local epoch = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. ARGV[2])
return deleted
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

/// Marks stale (or deletes) every live page of a tag set, drops dead members, and announces it.
/// KEYS: tag set, epoch; ARGV: channel, message, purge ('1' or '0'). Returns the number of live pages.
pub(super) static TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pages = redis.call('SMEMBERS', KEYS[1])
local count = 0
for _, page in ipairs(pages) do
  if redis.call('EXISTS', page) == 1 then
    count = count + 1
    if ARGV[3] == '1' then redis.call('DEL', page) else redis.call('HSET', page, 's', '1') end
  else
    redis.call('SREM', KEYS[1], page)
  end
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. ARGV[2])
return count
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
