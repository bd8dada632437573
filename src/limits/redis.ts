import { RateLimiterRedis } from 'rate-limiter-flexible';
import { corkWritesForThisTurn } from '../redis/cork-writes';
import { healthOf, type RedisHealth } from '../redis/health';
import type { RedisClientLike } from '../redis/types';
import { DEFAULT_REDIS_PREFIX } from '../config/setting-values';
import { consumeEach } from './consume-each';
import { MemoryRateLimiter } from './memory';
import { RlfRateLimiter, rlfOptions, windowResult } from './rlf-adapter';
import type { ConsumeRequest, RateLimitResult, RateLimitWindow } from './types';

export interface RedisRateLimiterOptions {
  /** An ioredis client (or Cluster), shared by every app instance. */
  client: RedisClientLike;
  /** Prefix of the limiter keys in Redis. Default `daymind`. */
  prefix?: string;
  /**
   * What to do while Redis is unreachable or not answering: `open` (default) counts in process
   * memory with the same limits, `closed` fails the consume, so the request gets 503.
   */
  failureMode?: 'open' | 'closed';
}

/**
 * rate-limiter-flexible's consume (its Lua script, step for step) on several counters at once.
 * KEYS: the counters, in order. ARGV: per key, its cost, window seconds and limit.
 * Returns the count and PTTL of each key, up to and including the first one over its limit.
 */
const CONSUME_ALL = `
local out = {}
for i = 1, #KEYS do
  local a = 3 * i - 2
  local seconds = ARGV[a + 1]
  redis.call('set', KEYS[i], 0, 'EX', seconds, 'NX')
  local consumed = redis.call('incrby', KEYS[i], ARGV[a])
  local ttl = redis.call('pttl', KEYS[i])
  if ttl == -1 then
    redis.call('expire', KEYS[i], seconds)
    ttl = 1000 * seconds
  end
  out[#out + 1] = consumed
  out[#out + 1] = ttl
  if consumed > tonumber(ARGV[a + 2]) then break end
end
return out
`;

/** Gives back units to a window's counter while it lasts: a counter gone (its window ended) is left alone. KEYS: the counter. ARGV: units. */
const GIVE_BACK = `
if redis.call('exists', KEYS[1]) == 1 then return redis.call('decrby', KEYS[1], ARGV[1]) end
return 0
`;

interface Commands extends RedisClientLike {
  readonly isCluster?: boolean;
  defineCommand?(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  daymindConsumeAll?(numberOfKeys: number, ...args: Array<string | number>): Promise<number[]>;
  daymindGiveBack?(key: string, units: number): Promise<number>;
}

/**
 * rate-limiter-flexible's Redis limiter: one counter per window and subject in Redis, exact across
 * every instance. A key's windows (a plan's minute, hour and day) are spent with one script call,
 * on the same counters as rate-limiter-flexible's: one round trip instead of one a window.
 *
 * While the client's health (shared with the key store) says Redis is down, nothing is sent: the
 * windows are counted in an in-process MemoryRateLimiter (fail open) or the consume rejects (fail
 * closed). A call that fails marks Redis down first, so the request that met the timeout waits
 * for it once, and the windows after it do not. rate-limiter-flexible's own `insuranceLimiter` is
 * not used: it takes a failed call over without telling the caller, so the health would never
 * learn of the timeout, and every call would wait for one of its own.
 */
export class RedisRateLimiter extends RlfRateLimiter {
  private readonly client: Commands;
  private readonly health: RedisHealth;
  /** The windows while Redis is down, with failure mode `open`. */
  private readonly insurance: MemoryRateLimiter | undefined;

  constructor(private readonly options: RedisRateLimiterOptions) {
    super();
    this.client = options.client as Commands;
    this.health = healthOf(options.client);
    this.insurance = options.failureMode === 'closed' ? undefined : new MemoryRateLimiter();
    // A Cluster cannot run one script over keys of different slots: it keeps one call a window.
    if (!this.client.isCluster && typeof this.client.defineCommand === 'function' && !this.client.daymindConsumeAll) {
      this.client.defineCommand('daymindConsumeAll', { lua: CONSUME_ALL });
    }
    if (typeof this.client.defineCommand === 'function' && !this.client.daymindGiveBack) {
      this.client.defineCommand('daymindGiveBack', { numberOfKeys: 1, lua: GIVE_BACK });
    }
  }

  protected override keyPrefixFor(window: RateLimitWindow): string {
    return `${this.options.prefix ?? DEFAULT_REDIS_PREFIX}:rl:${super.keyPrefixFor(window)}`;
  }

  /** Where a call goes once Redis failed it or is down: the in-memory windows, or nowhere (the error goes on). */
  private fallback(err: unknown): MemoryRateLimiter {
    if (this.insurance) return this.insurance;
    throw err;
  }

  override async consume(window: RateLimitWindow, id: string, cost: number): Promise<RateLimitResult> {
    try {
      return await this.health.run(() => {
        corkWritesForThisTurn(this.client);
        return super.consume(window, id, cost);
      });
    } catch (err) {
      return this.fallback(err).consume(window, id, cost);
    }
  }

  /** One atomic step: the units go back to the window that took them, never to one begun since. */
  override async refund(window: RateLimitWindow, id: string, cost: number): Promise<void> {
    const client = this.client;
    try {
      await this.health.run<unknown>(() =>
        client.daymindGiveBack ? client.daymindGiveBack(this.limiterFor(window).getKey(id), cost) : super.refund(window, id, cost),
      );
    } catch (err) {
      await this.fallback(err).refund(window, id, cost);
    }
  }

  override async peek(window: RateLimitWindow, id: string): Promise<RateLimitResult> {
    try {
      return await this.health.run(() => super.peek(window, id));
    } catch (err) {
      return this.fallback(err).peek(window, id);
    }
  }

  async consumeAll(requests: readonly ConsumeRequest[]): Promise<RateLimitResult[]> {
    const client = this.client;
    // Blocks and Clusters: rate-limiter-flexible's own path.
    if (requests.length < 2 || !client.daymindConsumeAll || requests.some((r) => r.window.blockSeconds)) {
      return consumeEach(this, requests);
    }
    const keys: string[] = [];
    const args: number[] = [];
    for (const { window, id, cost } of requests) {
      keys.push(this.limiterFor(window).getKey(id));
      args.push(cost, window.windowSeconds, window.limit);
    }
    let reply: number[];
    try {
      reply = await this.health.run(() => {
        corkWritesForThisTurn(client);
        return client.daymindConsumeAll!(keys.length, ...keys, ...args);
      });
    } catch {
      // Redis down (found so now or before): consume falls back at once. A script error: one call a window.
      return consumeEach(this, requests);
    }
    const results: RateLimitResult[] = [];
    for (let i = 0; i < reply.length / 2; i++) {
      const { window } = requests[i]!;
      const consumed = Number(reply[2 * i]);
      results.push(windowResult(window, consumed, Number(reply[2 * i + 1]), consumed <= window.limit));
    }
    return results;
  }

  protected build(window: RateLimitWindow, keyPrefix: string): RateLimiterRedis {
    return new RateLimiterRedis({ storeClient: this.options.client, ...rlfOptions(window, keyPrefix), rejectIfRedisNotReady: true });
  }
}
