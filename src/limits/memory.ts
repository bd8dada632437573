import { RateLimiterMemory } from 'rate-limiter-flexible';
import { RlfRateLimiter, rlfOptions } from './rlf-adapter';
import type { RateLimitWindow } from './types';

/** rate-limiter-flexible's in-process fixed-window limiter: counts per process. */
export class MemoryRateLimiter extends RlfRateLimiter {
  /**
   * No key prefix: each window has a limiter of its own, with its own storage, so the subject
   * alone is the counter's key (and the same string each time, rather than a new one a call).
   */
  protected override keyPrefixFor(): string {
    return '';
  }

  protected build(window: RateLimitWindow, keyPrefix: string): RateLimiterMemory {
    return new RateLimiterMemory(rlfOptions(window, keyPrefix));
  }
}
