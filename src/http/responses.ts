import type { Response } from 'express';
import { perWindow, waitText } from '../internal/human-time';
import { retryAfterSeconds } from './ratelimit-headers';
import type { RateLimitResult } from '../limits/types';
import type { VerifyCode, VerifyResult } from '../pipeline/verify-types';

/**
 * The `error.code` values of HTTP answers. `jsonErrorHandler()` answers `invalid_json`, and
 * otherwise the name of the status in snake case (`payload_too_large`, `internal_server_error`).
 */
export type HttpErrorCode =
  | 'missing_api_key'
  | 'malformed_api_key'
  | 'invalid_api_key'
  | 'revoked_api_key'
  | 'expired_api_key'
  | 'rate_limited'
  | 'service_unavailable'
  | 'bad_request'
  | 'history_unavailable'
  | 'quota_exceeded'
  | 'credits_exhausted'
  | 'insufficient_scope'
  | 'invalid_json'
  | 'payload_too_large'
  | 'internal_server_error';

const UNAUTHORIZED: Partial<Record<VerifyCode, { code: HttpErrorCode; message: string }>> = {
  MISSING: {
    code: 'missing_api_key',
    message: 'An API key is required: send it as "Authorization: Bearer <key>" or in the X-API-Key header.',
  },
  MALFORMED: { code: 'malformed_api_key', message: 'The API key is malformed: check that it was copied whole.' },
  NOT_FOUND: { code: 'invalid_api_key', message: 'The API key is not valid.' },
  REVOKED: { code: 'revoked_api_key', message: 'The API key has been revoked.' },
  EXPIRED: { code: 'expired_api_key', message: 'The API key has expired.' },
};

/** A refusal as the `handler` option gets it: the response's headers are set already. */
export interface Refusal {
  status: number;
  code: HttpErrorCode;
  message: string;
  /** The JSON body daymind-auth would send: `{ error: { code, message, ... } }`. */
  body: { error: { code: HttpErrorCode; message: string } & Record<string, unknown> };
}

/** Answers a refusal instead of daymind-auth (the `handler` option, bound to its request). */
export type RefusalAnswer = (refusal: Refusal) => void;

const refusalAnswers = new WeakMap<Response, RefusalAnswer>();

/** The next refusal on `res` is answered by `answer` (once), not by the JSON below. */
export function answerRefusalWith(res: Response, answer: RefusalAnswer): void {
  refusalAnswers.set(res, answer);
}

export function sendJsonError(res: Response, status: number, code: HttpErrorCode, message: string, extra?: Record<string, unknown>): void {
  res.status(status);
  res.setHeader('Cache-Control', 'no-store');
  const body = { error: { code, message, ...extra } };
  const answer = refusalAnswers.get(res);
  if (answer) {
    refusalAnswers.delete(res);
    return answer({ status, code, message, body });
  }
  sendJsonBody(res, body);
}

/** Sends a refusal's JSON body (status and other headers already set). */
export function sendJsonBody(res: Response, body: object): void {
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

/** 401 with `WWW-Authenticate: Bearer` (RFC 6750): no error attribute when no key was sent. */
export function sendUnauthorized(res: Response, verifyCode: VerifyCode): void {
  const answer = UNAUTHORIZED[verifyCode] ?? UNAUTHORIZED.NOT_FOUND!;
  res.setHeader(
    'WWW-Authenticate',
    verifyCode === 'MISSING' ? 'Bearer' : `Bearer error="invalid_token", error_description="${answer.message.replace(/"/g, "'")}"`,
  );
  sendJsonError(res, 401, answer.code, answer.message);
}

export function sendRateLimited(res: Response, refusedBy: RateLimitResult): void {
  const retryAfter = retryAfterSeconds(refusedBy);
  res.setHeader('Retry-After', String(retryAfter));
  const subject = refusedBy.policy === 'ip' ? 'this client address' : 'this API key';
  sendJsonError(
    res,
    429,
    'rate_limited',
    `Rate limit of ${refusedBy.limit} request${refusedBy.limit === 1 ? '' : 's'} per ${perWindow(refusedBy.windowSeconds)} exceeded for ${subject}; retry in ${waitText(retryAfter)}.`,
    { policy: refusedBy.policy },
  );
}

/** 429 for a spent monthly quota: the `"month"` policy, `Retry-After` until the 1st (UTC). */
export function sendQuotaExceeded(res: Response, month: RateLimitResult): void {
  res.setHeader('Retry-After', String(retryAfterSeconds(month)));
  sendJsonError(
    res,
    429,
    'quota_exceeded',
    `The monthly quota of ${month.limit} units is used up; it restarts on the 1st of next month (UTC).`,
    {
      policy: 'month',
    },
  );
}

/** 402 for a prepaid key without credits left for this request. */
export function sendCreditsExhausted(res: Response, credits: number | undefined, cost: number): void {
  sendJsonError(
    res,
    402,
    'credits_exhausted',
    `This API key has ${credits ?? 0} prepaid credit(s) left; this request costs ${cost}. Add credits to continue.`,
    {
      credits: credits ?? 0,
    },
  );
}

/** 403 for a key without the scope a route needs (RFC 6750 section 3.1). */
export function sendInsufficientScope(res: Response, scope: string): void {
  res.setHeader('WWW-Authenticate', `Bearer error="insufficient_scope", scope="${scope}"`);
  sendJsonError(res, 403, 'insufficient_scope', `This API key lacks the scope "${scope}" that this request needs.`, { scope });
}

/** The answer to a check that did not let the request through (any code but VALID). */
export function sendRefusal(res: Response, result: VerifyResult): void {
  switch (result.code) {
    case 'RATE_LIMITED':
      return sendRateLimited(res, result.refusedBy!);
    case 'QUOTA_EXCEEDED':
      return sendQuotaExceeded(res, result.refusedBy!);
    case 'CREDITS_EXHAUSTED':
      return sendCreditsExhausted(res, result.credits, result.cost);
    case 'UNAVAILABLE':
      return sendUnavailable(res);
    default:
      return sendUnauthorized(res, result.code);
  }
}

export function sendUnavailable(res: Response): void {
  res.setHeader('Retry-After', '1');
  sendJsonError(res, 503, 'service_unavailable', 'API key verification is temporarily unavailable; retry shortly.');
}

export function sendBadRequest(res: Response, message: string): void {
  sendJsonError(res, 400, 'bad_request', message);
}
