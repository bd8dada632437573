import type { RateLimitResult } from './types';

/**
 * IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, latest draft), in Structured
 * Fields syntax (RFC 9651): one list item per policy, named by an sf-string.
 *
 *   RateLimit-Policy: "ip";q=240;w=60, "key";q=120;w=60
 *   RateLimit: "ip";r=239;t=60, "key";r=119;t=42
 */
export function rateLimitPolicyHeader(results: readonly RateLimitResult[]): string {
  return listOf(appendPolicy, undefined, results);
}

export function rateLimitHeader(results: readonly RateLimitResult[]): string {
  return listOf(appendState, undefined, results);
}

/** The list of `first` (when given) and `results`, built by `append` without intermediate arrays. */
function listOf(
  append: (header: string, r: RateLimitResult) => string,
  first: RateLimitResult | undefined,
  results: readonly RateLimitResult[],
): string {
  let header = first ? append('', first) : '';
  for (let i = 0; i < results.length; i++) header = append(header, results[i]!);
  return header;
}

function appendPolicy(header: string, r: RateLimitResult): string {
  return (header === '' ? '"' : header + ', "') + r.policy + '";q=' + r.limit + ';w=' + r.windowSeconds;
}

function appendState(header: string, r: RateLimitResult): string {
  return (header === '' ? '"' : header + ', "') + r.policy + '";r=' + r.remaining + ';t=' + resetSeconds(r);
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

/**
 * Sets both fields for `first` (the IP limit's result, when checked) followed by `results`.
 * Built in one pass without intermediate arrays: it runs on every request.
 */
export function setRateLimitHeaders(
  res: HeaderSink,
  first: RateLimitResult | undefined,
  results: readonly RateLimitResult[],
  legacyAtMs?: number,
): void {
  if (!first && results.length === 0) return;
  res.setHeader('RateLimit-Policy', policyHeader(first, results));
  res.setHeader('RateLimit', listOf(appendState, first, results));
  if (legacyAtMs !== undefined) setLegacyHeaders(res, first, results, legacyAtMs);
}

/**
 * With `legacyHeaders`: `X-RateLimit-Limit`, `-Remaining` and `-Reset` as clients written for
 * express-rate-limit's legacy fields (and GitHub's API) read them. They hold one policy only: the
 * refusing one on a refusal, else the one with the fewest remaining, which refuses first; `Reset`
 * in Unix seconds (at `atMs`). The IETF fields stay the complete answer.
 */
function setLegacyHeaders(res: HeaderSink, first: RateLimitResult | undefined, results: readonly RateLimitResult[], atMs: number): void {
  let tightest = first!;
  for (const r of results) if (!tightest || !r.allowed || (tightest.allowed && r.remaining < tightest.remaining)) tightest = r;
  res.setHeader('X-RateLimit-Limit', String(tightest.limit));
  res.setHeader('X-RateLimit-Remaining', String(tightest.remaining));
  res.setHeader('X-RateLimit-Reset', String(Math.ceil(atMs / 1000) + resetSeconds(tightest)));
}

/** The last RateLimit-Policy value, and the name, quota and window of each policy in it. */
let lastPolicy = '';
const lastPolicies: (string | number)[] = [];

/**
 * RateLimit-Policy for `first` and `results`: the last value again when the policies are the same
 * (nearly every request repeats them), so that it is not built anew each time.
 */
function policyHeader(first: RateLimitResult | undefined, results: readonly RateLimitResult[]): string {
  const count = (first ? 1 : 0) + results.length;
  let same = lastPolicies.length === count * 3 && (!first || samePolicy(0, first));
  for (let i = 0, at = first ? 3 : 0; same && i < results.length; i++, at += 3) same = samePolicy(at, results[i]!);
  if (same) return lastPolicy;
  lastPolicies.length = 0;
  if (first) lastPolicies.push(first.policy, first.limit, first.windowSeconds);
  for (const r of results) lastPolicies.push(r.policy, r.limit, r.windowSeconds);
  lastPolicy = listOf(appendPolicy, first, results);
  return lastPolicy;
}

function samePolicy(at: number, r: RateLimitResult): boolean {
  return lastPolicies[at] === r.policy && lastPolicies[at + 1] === r.limit && lastPolicies[at + 2] === r.windowSeconds;
}
