import type { IncomingMessage } from 'node:http';
import type { Request, Response } from 'express';
import { ConfigError, DaymindError, describeError } from './errors';
import { extractKey } from './extract';
import { setRateLimitHeaders } from './ratelimit/headers';
import { ipLimitKey } from './ratelimit/ip';
import type { RateLimitResult, RateLimitWindow } from './ratelimit/types';
import { sendRateLimited, sendRefusal, sendUnavailable } from './responses';
import type { DaymindAuth } from './middleware';
import type { VerifyResult } from './verify';

export interface VerifyRequestOptions {
  /** Units this request costs (a whole number of at least 1). Default 1. */
  cost?: number;
  /**
   * The client's address for the per-IP limit. Default: the socket's (`req.socket.remoteAddress`).
   * Behind a proxy, pass the address your framework trusts (Fastify's `request.ip` with `trustProxy`).
   */
  clientAddress?: string;
  /**
   * Check the key without spending or counting anything, as the usage routes do: the per-IP limit
   * still applies, but not the key's windows, quota or credits. Allowed while they would refuse
   * the key; `result` shows them as they stand. Default false.
   */
  peek?: boolean;
}

/** What the Express middleware would answer for a request, as data for any HTTP server. */
export interface VerifiedRequest {
  /** Whether to serve the request: the key is valid and no limit refused it. */
  allowed: boolean;
  /** 200 when allowed; else the refusal's status (401, 402, 429 or 503). */
  status: number;
  /**
   * Headers to send on every answer, allowed or not: `RateLimit-Policy` and `RateLimit` once a
   * limit was checked; with a refusal also `Content-Type`, `Cache-Control: no-store` and, as its
   * status needs, `WWW-Authenticate` or `Retry-After`.
   */
  headers: Record<string, string>;
  /** The refusal's JSON body, `{ "error": { "code", "message", ... } }`; undefined when allowed. */
  body: string | undefined;
  /** The key check's result (its `record` when allowed); undefined when the per-IP limit refused first. */
  result: VerifyResult | undefined;
}

/** Collects what the middleware's answer functions write, instead of writing it to a socket. */
class Answer {
  statusCode = 200;
  readonly headers: Record<string, string> = {};
  body: string | undefined;

  status(code: number): this {
    this.statusCode = code;
    return this;
  }

  setHeader(name: string, value: string): this {
    this.headers[name] = value;
    return this;
  }

  end(body: string): this {
    this.body = body;
    return this;
  }

  done(result: VerifyResult | undefined): VerifiedRequest {
    return { allowed: this.body === undefined, status: this.statusCode, headers: this.headers, body: this.body, result };
  }
}

/** The middleware's per-IP window, one object per instance (the limiter keeps its counters by it). */
const ipWindows = new WeakMap<DaymindAuth, RateLimitWindow | null>();

function ipWindowOf(auth: DaymindAuth): RateLimitWindow | null {
  let window = ipWindows.get(auth);
  if (window === undefined) {
    const limit = auth.config.ipRateLimitPerMinute;
    window = limit === false ? null : { name: 'ip', limit, windowSeconds: 60 };
    ipWindows.set(auth, window);
  }
  return window;
}

/** The key a request carries: Bearer, else X-API-Key, else (when enabled) the query parameter. */
function keyOf(req: IncomingMessage, queryParam: string | false): string | undefined {
  const key = extractKey(req as Request, false, req.headers);
  if (key !== undefined || !queryParam) return key;
  const url = req.url ?? '';
  const at = url.indexOf('?');
  if (at === -1) return undefined;
  // As Express's query parser: a parameter given twice is an array, not a key.
  const values = new URLSearchParams(url.slice(at + 1)).getAll(queryParam);
  return values.length === 1 && values[0] !== '' ? values[0] : undefined;
}

/**
 * The Express middleware's check for a request of any Node.js HTTP server (`node:http`, Fastify's
 * `request.raw`, ...): the per-IP limit, then the key through `auth.verify()`, which counts an
 * allowed request at once (as the middleware does without `billable` or route guards). Resolves
 * to the status, headers and JSON body the middleware would answer with; never rejects (a store
 * or limiter that fails gives 503 and goes to `onError`).
 */
export async function verifyRequest(auth: DaymindAuth, req: IncomingMessage, options: VerifyRequestOptions = {}): Promise<VerifiedRequest> {
  const answer = new Answer();
  try {
    return answer.done(await checkRequest(auth, req, answer as unknown as Response, options));
  } catch (err) {
    auth.config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    const failed = new Answer();
    sendUnavailable(failed as unknown as Response);
    return failed.done(undefined);
  }
}

/**
 * The steps of {@link verifyRequest}, answering a refusal on `res` (an Express response, or the
 * collected answer). Resolves to the key check's result, undefined when the per-IP limit refused.
 */
export async function checkRequest(
  auth: DaymindAuth,
  req: IncomingMessage,
  res: Response,
  options: VerifyRequestOptions,
): Promise<VerifyResult | undefined> {
  const cost = options.cost ?? 1;
  if (!Number.isSafeInteger(cost) || cost < 1) throw new ConfigError('cost', `must be a whole number of at least 1, got ${String(cost)}`);
  await auth.ready;
  const window = ipWindowOf(auth);
  let ip: RateLimitResult | undefined;
  if (window) {
    ip = await auth.limiter.consume(window, ipLimitKey(options.clientAddress ?? req.socket?.remoteAddress), 1);
    if (!ip.allowed) {
      setRateLimitHeaders(res, ip, [], legacyAt(auth));
      sendRateLimited(res, ip);
      return undefined;
    }
  }
  const result = await auth.verify(keyOf(req, auth.config.queryParam), { cost, peek: options.peek });
  setRateLimitHeaders(res, ip, result.limits, legacyAt(auth));
  if (result.code !== 'VALID') sendRefusal(res, result);
  return result;
}

/** The time of the legacy X-RateLimit-Reset, when the `legacyHeaders` option wants those fields. */
function legacyAt(auth: DaymindAuth): number | undefined {
  return auth.config.legacyHeaders ? auth.config.now() : undefined;
}
