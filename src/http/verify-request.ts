import type { IncomingMessage } from 'node:http';
import type { Request, Response } from 'express';
import { ConfigError, DaymindError, describeError } from '../errors';
import { extractKey } from './extract-key';
import { checkRequest, requestChecks } from './check-request';
import type { DaymindAuth } from './middleware';
import type { VerifyResult } from '../pipeline/verify-types';
import { sendUnavailable } from './responses';

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

/** The key a request carries: Bearer, else X-API-Key, else (when enabled) the query parameter. */
function keyOf(req: IncomingMessage, queryParam: string | false): string | undefined {
  const key = extractKey(req as Request, false);
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
    const cost = options.cost ?? 1;
    if (!Number.isSafeInteger(cost) || cost < 1) throw new ConfigError('cost', `must be a whole number of at least 1, got ${String(cost)}`);
    const pipeline = requestChecks.get(auth);
    if (!pipeline) throw new ConfigError('verifyRequest', 'the first argument must be the middleware that daymindAuth() returned');
    const request = {
      key: keyOf(req, auth.config.queryParam),
      clientAddress: options.clientAddress ?? req.socket?.remoteAddress,
      cost,
      peek: options.peek,
    };
    const { result } = await checkRequest(pipeline, answer as unknown as Response, request);
    return answer.done(result);
  } catch (err) {
    auth.config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    const failed = new Answer();
    sendUnavailable(failed as unknown as Response);
    return failed.done(undefined);
  }
}
