import type { ConsumeRequest, RateLimitResult, RateLimiterAdapter } from './types';

/** consumeAll's contract through one `consume` call a window: in order, up to the first refusal. */
export async function consumeEach(limiter: RateLimiterAdapter, requests: readonly ConsumeRequest[]): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (const { window, id, cost } of requests) {
    const result = await limiter.consume(window, id, cost);
    results.push(result);
    if (!result.allowed) break;
  }
  return results;
}
