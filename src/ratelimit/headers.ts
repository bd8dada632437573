import type { RateLimitResult } from './types';

/**
 * IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, latest draft), in Structured
 * Fields syntax (RFC 9651): one list item per policy, named by an sf-string.
 *
 *   RateLimit-Policy: "ip";q=240;w=60, "key";q=120;w=60
 *   RateLimit: "ip";r=239;t=60, "key";r=119;t=42
 */
export function rateLimitPolicyHeader(results: readonly RateLimitResult[]): string {
  let header = '';
  for (let i = 0; i < results.length; i++) header = appendPolicy(header, results[i]!);
  return header;
}

export function rateLimitHeader(results: readonly RateLimitResult[]): string {
  let header = '';
  for (let i = 0; i < results.length; i++) header = appendState(header, results[i]!);
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
export function setRateLimitHeaders(res: HeaderSink, first: RateLimitResult | undefined, results: readonly RateLimitResult[]): void {
  let policy = first ? appendPolicy('', first) : '';
  let state = first ? appendState('', first) : '';
  for (let i = 0; i < results.length; i++) {
    policy = appendPolicy(policy, results[i]!);
    state = appendState(state, results[i]!);
  }
  if (policy === '') return;
  res.setHeader('RateLimit-Policy', policy);
  res.setHeader('RateLimit', state);
}
