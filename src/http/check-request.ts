import type { Response } from 'express';
import type { IpLimit } from '../pipeline/ip-limit';
import type { Verifier } from '../pipeline/verifier';
import type { VerifyResult } from '../pipeline/verify-types';
import { setRateLimitHeaders } from './ratelimit-headers';
import type { RateLimitResult } from '../limits/types';
import { sendRateLimited, sendRefusal } from './responses';
import type { UsageRecorder } from '../usage/recorder';

export interface RequestCheckParts {
  /** Resolves when the store is ready; requests that arrive earlier wait for it. */
  ready: Promise<void>;
  /** The IP limit stage, unless it is off. */
  ipLimit: IpLimit | undefined;
  verifier: Verifier;
  recorder: UsageRecorder;
  /** Also write the legacy X-RateLimit-* fields (the `legacyHeaders` option). */
  legacyHeaders: boolean;
  now: () => number;
}

/** The pipeline of each daymindAuth() middleware, for verifyRequest(). */
export const requestChecks = new WeakMap<object, RequestCheckParts>();

/** One request as the pipeline takes it: what the HTTP server read from it. */
export interface RequestToCheck {
  key: string | undefined;
  clientAddress: string | undefined;
  cost: number;
  /** Check the key without spending or counting (the usage routes): the IP limit still applies. */
  peek?: boolean;
  /** Hold an allowed request's usage until its response ends (the middleware with route guards or `billable`). */
  defer?: boolean;
}

/** What the pipeline decided. */
export interface CheckedRequest {
  /** The IP limit's window after this request, when it is on. */
  ip: RateLimitResult | undefined;
  /** The key check's result; undefined when the IP limit refused first. */
  result: VerifyResult | undefined;
  /** The request's time (ms). */
  at: number;
}

/**
 * The pipeline of one HTTP request: the IP limit, then the key check (key -> key's limits ->
 * quota and credits -> usage, in the Verifier), then the RateLimit fields of the answer. A refusal
 * is answered on `res` (an Express response, or the collected answer of verifyRequest()). Rejects
 * when the IP limit's limiter fails.
 */
export async function checkRequest(parts: RequestCheckParts, res: Response, request: RequestToCheck): Promise<CheckedRequest> {
  await parts.ready;
  const at = parts.now();
  const legacyAt = parts.legacyHeaders ? at : undefined;
  const ip = parts.ipLimit && (await parts.ipLimit.take(request.clientAddress));
  if (ip && !ip.allowed) {
    setRateLimitHeaders(res, ip, [], legacyAt);
    sendRateLimited(res, ip);
    if (parts.recorder.history) void countIpLimited(parts, request.key, at);
    return { ip, result: undefined, at };
  }
  const result = await parts.verifier.verify(request.key, { cost: request.cost, now: at, peek: request.peek, defer: request.defer });
  setRateLimitHeaders(res, ip, result.limits, legacyAt);
  if (result.code !== 'VALID') sendRefusal(res, result);
  return { ip, result, at };
}

/** A request refused by the IP limit still shows in its key's history as rate-limited. */
async function countIpLimited(parts: RequestCheckParts, key: string | undefined, at: number): Promise<void> {
  const record = await parts.verifier.identify(key);
  if (record) parts.recorder.recordRateLimited(record.key_hash, at);
}
