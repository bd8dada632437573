import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { RlfRateLimiter, rlfOptions, toResult } from './rlf-adapter';
import type { RateLimitResult, RateLimitWindow } from './types';

/** The part of rate-limiter-flexible's memory storage that its own `consume` calls synchronously. */
interface MemoryStorage {
  incrby(key: string, value: number, durationSec: number): RateLimiterRes;
  set(key: string, value: number, durationSec: number): RateLimiterRes;
}

/** rate-limiter-flexible's in-process fixed-window limiter: counts per process. */
export class MemoryRateLimiter extends RlfRateLimiter {
  protected build(window: RateLimitWindow, keyPrefix: string): RateLimiterMemory {
    return new RateLimiterMemory(rlfOptions(window, keyPrefix));
  }

  /**
   * The same counting as RateLimiterMemory.consume (its storage's `incrby` on the same key)
   * without the promise it wraps the answer in. Undefined, so that `consume` is used, should a
   * version of rate-limiter-flexible keep its storage differently.
   */
  consumeSync(window: RateLimitWindow, id: string, cost: number): RateLimitResult | undefined {
    const limiter = this.limiterFor(window) as RateLimiterMemory & { _memoryStorage?: Partial<MemoryStorage> };
    const storage = limiter._memoryStorage;
    if (typeof storage?.incrby !== 'function' || typeof storage.set !== 'function') return undefined;
    const key = limiter.getKey(id);
    let res = storage.incrby(key, cost, window.windowSeconds);
    const allowed = res.consumedPoints <= window.limit;
    // As RateLimiterMemory.consume: the first refusal past the limit starts the block.
    if (!allowed && window.blockSeconds && res.consumedPoints <= window.limit + cost)
      res = storage.set(key, res.consumedPoints, window.blockSeconds);
    return toResult(window, res, allowed);
  }
}
