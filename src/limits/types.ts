/** One named limit: at most `limit` units per `windowSeconds`. */
export interface RateLimitWindow {
  /** Policy name announced in the RateLimit headers (`"key"`, `"ip"`, later `"day"`, ...). */
  name: string;
  limit: number;
  windowSeconds: number;
  /** A subject that exceeds the limit is refused for this many seconds (abuse guard). */
  blockSeconds?: number;
}

/** The state of one window after a consume, the same shape whatever the backend. */
export interface RateLimitResult {
  policy: string;
  allowed: boolean;
  limit: number;
  /** Units left in the current window (0 when refused). */
  remaining: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
  windowSeconds: number;
}

/** One window to spend on, for one subject, in a {@link RateLimiterAdapter.consumeAll} call. */
export interface ConsumeRequest {
  window: RateLimitWindow;
  id: string;
  cost: number;
}

/**
 * The rate-limiter contract. One adapter serves any number of named windows; `id` is the subject
 * (a key hash, an IP group). Implement it to put limits in another backend.
 */
export interface RateLimiterAdapter {
  /** Spends `cost` units of `window` for `id`. Rejects only when the backend fails. */
  consume(window: RateLimitWindow, id: string, cost: number): Promise<RateLimitResult>;
  /** @deprecated Not called any more: the request path awaits `consume`. Leaves the interface in the next major version. */
  consumeSync?(window: RateLimitWindow, id: string, cost: number): RateLimitResult | undefined;
  /**
   * Spends on several windows in one call, in order, and stops at the first refusal: the refusing
   * window counts the attempt (as `consume` does), the windows after it are left alone. Returns
   * the results up to and including the refusal. Optional: a backend with a round trip per call
   * (Redis) then spends all of a key's windows in one.
   */
  consumeAll?(requests: readonly ConsumeRequest[]): Promise<RateLimitResult[]>;
  /** Gives back `cost` units of `window` for `id` (a request that turned out not to count). */
  refund?(window: RateLimitWindow, id: string, cost: number): Promise<void>;
  /** The current state without spending anything. */
  peek?(window: RateLimitWindow, id: string): Promise<RateLimitResult>;
  close?(): Promise<void>;
}
