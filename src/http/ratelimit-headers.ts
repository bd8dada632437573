import type { RateLimitResult } from '../limits/types';

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

/** Sets both fields for `first` (the IP limit's result, when checked) followed by `results`. */
export function setRateLimitHeaders(
  res: HeaderSink,
  first: RateLimitResult | undefined,
  results: readonly RateLimitResult[],
  legacyAtMs?: number,
): void {
  const all = first ? [first, ...results] : results;
  if (all.length === 0) return;
  res.setHeader('RateLimit-Policy', policyHeader(all));
  res.setHeader('RateLimit', rateLimitHeader(all));
  if (legacyAtMs !== undefined) setLegacyHeaders(res, all, legacyAtMs);
}

/**
 * With `legacyHeaders`: `X-RateLimit-Limit`, `-Remaining` and `-Reset` as clients written for
 * express-rate-limit's legacy fields (and GitHub's API) read them. They hold one policy only: the
 * refusing one on a refusal, else the one with the fewest remaining, which refuses first; `Reset`
 * in Unix seconds (at `atMs`). The IETF fields stay the complete answer.
 */
function setLegacyHeaders(res: HeaderSink, all: readonly RateLimitResult[], atMs: number): void {
  let tightest = all[0]!;
  for (const r of all.slice(1)) if (!r.allowed || (tightest.allowed && r.remaining < tightest.remaining)) tightest = r;
  res.setHeader('X-RateLimit-Limit', String(tightest.limit));
  res.setHeader('X-RateLimit-Remaining', String(tightest.remaining));
  res.setHeader('X-RateLimit-Reset', String(Math.ceil(atMs / 1000) + resetSeconds(tightest)));
}

/** The last RateLimit-Policy value and the results it was built from: nearly every request repeats it. */
let lastPolicy: { results: readonly RateLimitResult[]; header: string } = { results: [], header: '' };

/** RateLimit-Policy for `all`: the last value again when the policies are the same. */
function policyHeader(all: readonly RateLimitResult[]): string {
  if (!samePolicies(all, lastPolicy.results)) lastPolicy = { results: all, header: rateLimitPolicyHeader(all) };
  return lastPolicy.header;
}

function samePolicies(a: readonly RateLimitResult[], b: readonly RateLimitResult[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.policy === b[i]!.policy && r.limit === b[i]!.limit && r.windowSeconds === b[i]!.windowSeconds)
  );
}
