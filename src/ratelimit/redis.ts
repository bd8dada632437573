import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { coalesceWrites } from '../redis/coalesce';
import type { RedisClientLike } from '../redis/types';
import { consumeEach } from './consume-each';
import { RlfRateLimiter, rlfOptions, windowResult } from './rlf-adapter';
import type { ConsumeRequest, RateLimitResult, RateLimitWindow } from './types';

export interface RedisRateLimiterOptions {
  /** An ioredis client (or Cluster), shared by every app instance. */
  client: RedisClientLike;
  /** Prefix of the limiter keys in Redis. Default `daymind`. */
  prefix?: string;
  /**
   * What to do while Redis is unreachable: `open` (default) counts in an in-process insurance
   * limiter with the same limits, `closed` fails the consume, so the request gets 503.
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

interface Commands extends RedisClientLike {
  readonly isCluster?: boolean;
  defineCommand?(name: string, definition: { lua: string }): void;
  daymindConsumeAll?(numberOfKeys: number, ...args: Array<string | number>): Promise<number[]>;
}

/**
 * rate-limiter-flexible's Redis limiter: one counter per window and subject in Redis, exact across
 * every instance. Redis not ready or a command timing out sends the consume to the insurance
 * limiter (fail open) or rejects (fail closed); it never waits for Redis to come back.
 *
 * A request's windows (its IP's and its key's) are spent with one script call, on the same
 * counters as rate-limiter-flexible's: one round trip instead of one a window.
 */
export class RedisRateLimiter extends RlfRateLimiter {
  private readonly client: Commands;

  constructor(private readonly options: RedisRateLimiterOptions) {
    super();
    this.client = options.client as Commands;
    // A Cluster cannot run one script over keys of different slots: it keeps one call a window.
    if (!this.client.isCluster && typeof this.client.defineCommand === 'function' && !this.client.daymindConsumeAll) {
      this.client.defineCommand('daymindConsumeAll', { lua: CONSUME_ALL });
    }
  }

  protected override keyPrefixFor(window: RateLimitWindow): string {
    return `${this.options.prefix ?? 'daymind'}:rl:${super.keyPrefixFor(window)}`;
  }

  override consume(window: RateLimitWindow, id: string, cost: number): Promise<RateLimitResult> {
    coalesceWrites(this.client);
    return super.consume(window, id, cost);
  }

  async consumeAll(requests: readonly ConsumeRequest[]): Promise<RateLimitResult[]> {
    const client = this.client;
    // Blocks, an outage (the insurance limiter or a refusal) and Clusters: rate-limiter-flexible's own path.
    if (requests.length < 2 || !client.daymindConsumeAll || client.status !== 'ready' || requests.some((r) => r.window.blockSeconds)) {
      return consumeEach(this, requests);
    }
    const keys: string[] = [];
    const args: number[] = [];
    for (const { window, id, cost } of requests) {
      keys.push(this.limiterFor(window).getKey(id));
      args.push(cost, window.windowSeconds, window.limit);
    }
    coalesceWrites(client);
    let reply: number[];
    try {
      reply = await client.daymindConsumeAll(keys.length, ...keys, ...args);
    } catch {
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
    return new RateLimiterRedis({
      storeClient: this.options.client,
      ...rlfOptions(window, keyPrefix),
      rejectIfRedisNotReady: true,
      insuranceLimiter: this.options.failureMode === 'closed' ? undefined : new RateLimiterMemory(rlfOptions(window, keyPrefix)),
    });
  }
}
