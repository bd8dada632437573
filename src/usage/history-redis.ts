import { healthOf, type RedisHealth } from '../redis/health';
import type { RedisClientLike } from '../redis/types';
import { DEFAULT_REDIS_PREFIX } from '../config/setting-values';
import { HISTORY_RETENTION_DAYS, type DayCounts, type HistoryEntry, type UsageHistory } from './history';

/**
 * Adds one flush's history counts, once (the batch marker makes a retry a no-op), and keeps each
 * day's hash for the retention period.
 * KEYS: batch marker, then one day hash per entry. ARGV: marker TTL, day TTL, then per entry:
 * key hash, allowed, rate_limited.
 */
const ADD_HISTORY = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local a = 3
for k = 2, #KEYS do
  local day = KEYS[k]
  if tonumber(ARGV[a + 1]) > 0 then redis.call('HINCRBY', day, ARGV[a] .. ':a', ARGV[a + 1]) end
  if tonumber(ARGV[a + 2]) > 0 then redis.call('HINCRBY', day, ARGV[a] .. ':r', ARGV[a + 2]) end
  redis.call('EXPIRE', day, ARGV[2])
  a = a + 3
end
return 1
`;

interface Commands extends RedisClientLike {
  defineCommand(name: string, definition: { lua: string }): void;
  daymindAddHistory(numberOfKeys: number, ...args: Array<string | number>): Promise<number>;
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  hgetall(key: string): Promise<Record<string, string>>;
  pipeline(): {
    hmget(key: string, ...fields: string[]): unknown;
    hgetall(key: string): unknown;
    exec(): Promise<Array<[Error | null, unknown]>>;
  };
}

export interface RedisUsageHistoryOptions {
  client: RedisClientLike;
  /** The store's prefix (hash tag); default `daymind`. */
  prefix?: string;
}

/**
 * History in Redis: one hash per UTC day (`{daymind}:history:YYYYMMDD`, fields `<key hash>:a` and
 * `<key hash>:r`) that expires after the retention period; each flush adds with one Lua script,
 * applied once per batch, so every instance's counts add up exactly.
 */
export class RedisUsageHistory implements UsageHistory {
  private readonly client: Commands;
  private readonly ns: string;
  /** Shared with the limiter and the key store: GET /v1/usage/history does not wait for a Redis known to be down. */
  private readonly health: RedisHealth;

  constructor(options: RedisUsageHistoryOptions) {
    this.client = options.client as Commands;
    this.health = healthOf(options.client);
    this.ns = `{${options.prefix ?? DEFAULT_REDIS_PREFIX}}`;
    if (typeof this.client.daymindAddHistory !== 'function') this.client.defineCommand('daymindAddHistory', { lua: ADD_HISTORY });
  }

  private dayKey(day: number): string {
    return `${this.ns}:history:${day}`;
  }

  async add(entries: HistoryEntry[], batchId: string): Promise<void> {
    if (entries.length === 0) return;
    const keys = [`${this.ns}:history-batch:${batchId}`];
    const args: Array<string | number> = [86_400, HISTORY_RETENTION_DAYS * 86_400];
    for (const entry of entries) {
      keys.push(this.dayKey(entry.day));
      args.push(entry.key_hash, entry.allowed, entry.rate_limited);
    }
    await this.health.watch(this.client.daymindAddHistory(keys.length, ...keys, ...args));
  }

  read(keyHash: string, days: readonly number[]): Promise<DayCounts[]> {
    // A pipeline resolves with each command's error (a timeout too): they are thrown inside run.
    return this.health.run(async () => {
      const pipeline = this.client.pipeline();
      for (const day of days) pipeline.hmget(this.dayKey(day), `${keyHash}:a`, `${keyHash}:r`);
      const replies = await pipeline.exec();
      return replies.map(([err, value]) => {
        if (err) throw err;
        const [a, r] = value as Array<string | null>;
        return { allowed: Number(a ?? 0), rate_limited: Number(r ?? 0) };
      });
    });
  }

  async readDays(days: readonly number[]): Promise<Map<number, Map<string, DayCounts>>> {
    const pipeline = this.client.pipeline();
    for (const day of days) pipeline.hgetall(this.dayKey(day));
    const replies = await pipeline.exec();
    const result = new Map<number, Map<string, DayCounts>>();
    replies.forEach(([err, value], i) => {
      if (err) throw err;
      const byKey = new Map<string, DayCounts>();
      for (const [field, count] of Object.entries(value as Record<string, string>)) {
        const hash = field.slice(0, -2);
        const counts = byKey.get(hash) ?? { allowed: 0, rate_limited: 0 };
        if (field.endsWith(':a')) counts.allowed += Number(count);
        else counts.rate_limited += Number(count);
        byKey.set(hash, counts);
      }
      result.set(days[i]!, byKey);
    });
    return result;
  }
}
