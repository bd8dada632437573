import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { unusedWindow } from './peek-each';
import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './types';

/**
 * The adapter over rate-limiter-flexible, whatever its backend: one limiter per distinct window
 * (name, limit, length), so a key with its own limit gets its own counters. Subclasses build the
 * limiter for a window.
 */
export abstract class RlfRateLimiter implements RateLimiterAdapter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  /** Fast path: the limiter of a window object seen before (callers reuse their window objects). */
  private readonly byWindow = new WeakMap<RateLimitWindow, RateLimiterAbstract>();

  /** A limiter for `window`; `keyPrefix` keeps its counters apart from other windows'. */
  protected abstract build(window: RateLimitWindow, keyPrefix: string): RateLimiterAbstract;

  protected keyPrefixFor(window: RateLimitWindow): string {
    return windowId(window);
  }

  protected limiterFor(window: RateLimitWindow): RateLimiterAbstract {
    let limiter = this.byWindow.get(window);
    if (limiter) return limiter;
    const id = windowId(window);
    limiter = this.limiters.get(id);
    if (!limiter) {
      limiter = this.build(window, this.keyPrefixFor(window));
      this.limiters.set(id, limiter);
    }
    this.byWindow.set(window, limiter);
    return limiter;
  }

  async consume(window: RateLimitWindow, id: string, cost: number): Promise<RateLimitResult> {
    try {
      return toResult(window, await this.limiterFor(window).consume(id, cost), true);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return toResult(window, rejection, false);
      throw rejection;
    }
  }

  /** Gives back `cost` units to the window `id` is in; nothing once that window has ended (a new one took nothing). */
  async refund(window: RateLimitWindow, id: string, cost: number): Promise<void> {
    const limiter = this.limiterFor(window);
    const res = await limiter.get(id);
    if (res && res.msBeforeNext > 0) await limiter.reward(id, cost);
  }

  async peek(window: RateLimitWindow, id: string): Promise<RateLimitResult> {
    const res = await this.limiterFor(window).get(id);
    // A counter past its end (in memory, until its timer has removed it) counts for nothing.
    if (!res || res.msBeforeNext <= 0) return unusedWindow(window);
    return toResult(window, res, res.consumedPoints <= window.limit);
  }
}

/** One limiter per distinct window: name, limit, length and block. */
function windowId(window: RateLimitWindow): string {
  const base = `${window.name}:${window.limit}:${window.windowSeconds}`;
  return window.blockSeconds ? `${base}:b${window.blockSeconds}` : base;
}

/** rate-limiter-flexible's options for a window. */
export function rlfOptions(
  window: RateLimitWindow,
  keyPrefix: string,
): { points: number; duration: number; blockDuration: number; keyPrefix: string } {
  return { points: window.limit, duration: window.windowSeconds, blockDuration: window.blockSeconds ?? 0, keyPrefix };
}

export function toResult(window: RateLimitWindow, res: RateLimiterRes, allowed: boolean): RateLimitResult {
  return windowResult(window, res.consumedPoints, res.msBeforeNext, allowed);
}

/** A window's result from its counter (units consumed in the window) and the time to its reset. */
export function windowResult(window: RateLimitWindow, consumed: number, msBeforeNext: number, allowed: boolean): RateLimitResult {
  return {
    policy: window.name,
    allowed,
    limit: window.limit,
    remaining: allowed ? Math.min(window.limit, Math.max(0, window.limit - consumed)) : 0,
    resetMs: Math.max(0, msBeforeNext),
    windowSeconds: window.windowSeconds,
  };
}
