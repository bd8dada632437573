import { RateLimiterMemory } from 'rate-limiter-flexible';
import { RlfRateLimiter, rlfOptions } from './rlf-adapter';
import type { RateLimitWindow } from './types';

/** rate-limiter-flexible's in-process fixed-window limiter: counts per process. */
export class MemoryRateLimiter extends RlfRateLimiter {
  protected build(window: RateLimitWindow, keyPrefix: string): RateLimiterMemory {
    return new RateLimiterMemory(rlfOptions(window, keyPrefix));
  }
}
