import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from '../limits/types';

/**
 * The key's limits stage: spends `cost` on each of the key's windows in order, up to the first
 * that refuses (that one counts the attempt; the windows after it are left alone). A limiter with
 * `consumeAll` (Redis) spends them in one call. Rejects when the limiter fails.
 */
export async function takeWindows(
  limiter: RateLimiterAdapter,
  windows: readonly RateLimitWindow[],
  id: string,
  cost: number,
): Promise<RateLimitResult[]> {
  if (limiter.consumeAll && windows.length > 1) return limiter.consumeAll(windows.map((window) => ({ window, id, cost })));
  const results: RateLimitResult[] = [];
  for (const window of windows) {
    const result = await limiter.consume(window, id, cost);
    results.push(result);
    if (!result.allowed) break;
  }
  return results;
}

/**
 * Gives `cost` back to the first `count` windows (a later stage refused the request) and shows
 * them as they are then, in `results`. A give-back that fails is passed to `failed`.
 */
export async function giveBackWindows(
  limiter: RateLimiterAdapter,
  windows: readonly RateLimitWindow[],
  results: RateLimitResult[],
  count: number,
  id: string,
  cost: number,
  failed: (err: unknown) => void,
): Promise<void> {
  const refund = limiter.refund?.bind(limiter);
  if (!refund) return;
  const back: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const taken = results[i]!;
    results[i] = { ...taken, remaining: Math.min(taken.limit, taken.remaining + cost) };
    back.push(refund(windows[i]!, id, cost).catch(failed));
  }
  await Promise.all(back);
}
