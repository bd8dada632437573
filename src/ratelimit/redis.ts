import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { coalesceWrites } from '../redis/coalesce';
import type { RedisClientLike } from '../redis/types';
import { RlfRateLimiter, rlfOptions } from './rlf-adapter';
import type { RateLimitResult, RateLimitWindow } from './types';

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
 * rate-limiter-flexible's Redis limiter: one counter per window and subject in Redis, exact across
 * every instance. Redis not ready or a command timing out sends the consume to the insurance
 * limiter (fail open) or rejects (fail closed); it never waits for Redis to come back.
 */
export class RedisRateLimiter extends RlfRateLimiter {
  constructor(private readonly options: RedisRateLimiterOptions) {
    super();
  }

  protected override keyPrefixFor(window: RateLimitWindow): string {
    return `${this.options.prefix ?? 'daymind'}:rl:${super.keyPrefixFor(window)}`;
  }

  override consume(window: RateLimitWindow, id: string, cost: number): Promise<RateLimitResult> {
    coalesceWrites(this.options.client);
    return super.consume(window, id, cost);
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
