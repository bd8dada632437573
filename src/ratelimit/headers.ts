import type { RateLimitResult } from './types';

/**
 * IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, latest draft), in Structured
 * Fields syntax (RFC 9651): one list item per policy, named by an sf-string.
 *
 *   RateLimit-Policy: "ip";q=240;w=60, "key";q=120;w=60
 *   RateLimit: "ip";r=239;t=60, "key";r=119;t=42
 */
export function rateLimitPolicyHeader(results: readonly RateLimitResult[]): string {
  return results.map((r) => `"${r.policy}";q=${r.limit};w=${r.windowSeconds}`).join(', ');
}

export function rateLimitHeader(results: readonly RateLimitResult[]): string {
  return results.map((r) => `"${r.policy}";r=${r.remaining};t=${resetSeconds(r)}`).join(', ');
}

/** Whole seconds until the window resets, rounded up so that a client never retries too early. */
export function resetSeconds(result: RateLimitResult): number {
  return Math.ceil(result.resetMs / 1000);
}

/** `Retry-After` for a refusal: whole seconds, at least 1. */
export function retryAfterSeconds(result: RateLimitResult): number {
  return Math.max(1, resetSeconds(result));
}

interface HeaderSink {
  setHeader(name: string, value: string): unknown;
}

export function setRateLimitHeaders(res: HeaderSink, results: readonly RateLimitResult[]): void {
  if (results.length === 0) return;
  res.setHeader('RateLimit-Policy', rateLimitPolicyHeader(results));
  res.setHeader('RateLimit', rateLimitHeader(results));
}
