import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './types';

/** A window with nothing spent in it: all of its limit left, a whole window to its reset. */
export function unusedWindow(window: RateLimitWindow): RateLimitResult {
  const { name, limit, windowSeconds } = window;
  return { policy: name, allowed: true, limit, remaining: limit, resetMs: windowSeconds * 1000, windowSeconds };
}

/**
 * The state of each window for `id` as the limiter holds it now, spending nothing (its `peek`);
 * a limiter without `peek` cannot tell, and the windows are shown unused.
 */
export function peekEach(limiter: RateLimiterAdapter, windows: readonly RateLimitWindow[], id: string): Promise<RateLimitResult[]> {
  return Promise.all(windows.map((window) => (limiter.peek ? limiter.peek(window, id) : unusedWindow(window))));
}
