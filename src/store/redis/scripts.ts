/**
 * Lua scripts of the Redis key store. Every key of one store shares a hash tag (`{daymind}`), so
 * the scripts also run on Redis Cluster.
 */

/**
 * Writes a record's metadata and publishes the change.
 * KEYS: record, index set, version counter, changes zset.
 * ARGV: hash, mode (create | update | absent), number of fields to delete, those fields, then
 * field/value pairs. Returns the new version, 0 when `update` finds no record, -1 when `create`
 * or `absent` finds one.
 */
export const WRITE_RECORD = `
local exists = redis.call('EXISTS', KEYS[1]) == 1
local mode = ARGV[2]
if mode == 'update' and not exists then return 0 end
if mode ~= 'update' and exists then return -1 end
local ndel = tonumber(ARGV[3])
for i = 4, 3 + ndel do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 4 + ndel, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[1])
local v = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[4], v, ARGV[1])
return v
`;

/**
 * Adds one flush's usage deltas, once: the batch id marker makes a retried batch a no-op.
 * KEYS: batch marker, then one record key per delta.
 * ARGV: marker TTL in seconds, then per delta: units, last_used, number of days, day/units pairs.
 * Returns -1 when the batch was applied before, else the units of records that do not exist.
 */
export const APPLY_USAGE = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return -1 end
local a = 2
local missing = 0
for k = 2, #KEYS do
  local key = KEYS[k]
  local units = tonumber(ARGV[a])
  local last = ARGV[a + 1]
  local ndays = tonumber(ARGV[a + 2])
  a = a + 3
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'usage_count', units)
    local current = tonumber(redis.call('HGET', key, 'requests_day') or '0') or 0
    local month = tonumber(redis.call('HGET', key, 'requests_month') or '0') or 0
    for d = 1, ndays do
      local day = tonumber(ARGV[a])
      local dayUnits = tonumber(ARGV[a + 1])
      if day > current then
        redis.call('HSET', key, 'requests_day', ARGV[a], 'requests_today', ARGV[a + 1])
        current = day
      elseif day == current then
        redis.call('HINCRBY', key, 'requests_today', dayUnits)
      end
      local m = math.floor(day / 100)
      if m > month then
        redis.call('HSET', key, 'requests_month', m, 'requests_this_month', dayUnits)
        month = m
      elseif m == month then
        redis.call('HINCRBY', key, 'requests_this_month', dayUnits)
      end
      a = a + 2
    end
    local previous = tonumber(redis.call('HGET', key, 'last_used') or '0') or 0
    if tonumber(last) > previous then redis.call('HSET', key, 'last_used', last) end
  else
    missing = missing + units
    a = a + 2 * ndays
  end
end
return missing
`;
