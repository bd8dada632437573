import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError, DaymindError, describeError } from '../errors';
import { outcomeOf, type RequestOutcome } from './observe';
import type { Verifier } from '../pipeline/verifier';
import type { VerifyResult } from '../pipeline/verify-types';
import { setRateLimitHeaders } from './ratelimit-headers';
import { sendCreditsExhausted, sendInsufficientScope, sendQuotaExceeded, sendRateLimited, sendUnavailable } from './responses';
import { SCOPE } from '../config/setting-values';
import type { HeldRequest, HeldUsage } from './held-usage';

export interface GuardParts {
  verifier: Verifier;
  held: HeldUsage;
  onError: (err: Error) => void;
  now: () => number;
  /** Also write the legacy X-RateLimit-* fields (the `legacyHeaders` option). */
  legacyHeaders: boolean;
  /** The auth middleware, for a request that has not been through it, at `cost` units. */
  authenticate(req: Request, res: Response, next: NextFunction, cost: number): void;
  /** Tells request listeners (metrics) of an outcome decided after the key check. */
  emit(outcome: RequestOutcome, owner: string | undefined, keyHash: string): void;
}

/**
 * The route guards `auth.cost(n)` and `auth.requireScope(scope)`: checks after the middleware's,
 * on the request it let through. A request they refuse is not usage.
 */
export class Guards {
  constructor(private readonly parts: GuardParts) {}

  /** Route middleware: the request costs `units` in all (windows, quota, credits, usage, billing). */
  cost(units: number): RequestHandler {
    if (!Number.isSafeInteger(units) || units < 1)
      throw new ConfigError('cost', `must be a whole number of at least 1, got ${JSON.stringify(units)}`);
    this.parts.held.guarded();
    return (req, res, next) => {
      const info = req.daymind;
      if (!info) return this.parts.authenticate(req, res, next, units);
      const extra = units - info.cost;
      if (extra <= 0) return next();
      const state = this.parts.held.of(req, res);
      this.parts.verifier.take(info.record, extra, state.at, { defer: true, additional: true }).then(
        (result) => {
          if (!result.valid) return this.answer(state, req, res, result);
          state.results.push(result);
          info.cost = units;
          info.limits = result.limits;
          setRateLimitHeaders(res, state.ip, result.limits, this.legacyAt());
          next();
        },
        (err: unknown) => this.fail(state, res, err),
      );
    };
  }

  /** Route middleware: 403 `insufficient_scope` unless the key carries `scope`. */
  requireScope(scope: string): RequestHandler {
    if (typeof scope !== 'string' || !SCOPE.test(scope)) {
      throw new ConfigError('requireScope', `a scope is a name of letters, digits and _ : . - (at most 64), got ${JSON.stringify(scope)}`);
    }
    this.parts.held.guarded();
    const check: RequestHandler = (req, res, next) => {
      if (req.daymind!.record.scopes?.includes(scope)) return next();
      this.parts.held.refuse(req);
      this.parts.emit('insufficient_scope', req.daymind!.owner, req.daymind!.keyHash);
      sendInsufficientScope(res, scope);
    };
    return (req, res, next) => {
      if (req.daymind) return check(req, res, next);
      this.parts.authenticate(req, res, () => check(req, res, next), 1);
    };
  }

  /** The time of the legacy X-RateLimit-Reset, when those fields are wanted. */
  private legacyAt(): number | undefined {
    return this.parts.legacyHeaders ? this.parts.now() : undefined;
  }

  /** Answers a request refused by the extra units; its earlier usage is given back at its end. */
  private answer(state: HeldRequest, req: Request, res: Response, result: VerifyResult): void {
    state.refused = true;
    setRateLimitHeaders(res, state.ip, result.limits, this.legacyAt());
    if (result.code === 'RATE_LIMITED') sendRateLimited(res, result.refusedBy!);
    else if (result.code === 'QUOTA_EXCEEDED') sendQuotaExceeded(res, result.refusedBy!);
    else if (result.code === 'CREDITS_EXHAUSTED') {
      // What the key has for this request: the units the middleware already held come back.
      const held = req.daymind!.cost;
      sendCreditsExhausted(res, (result.credits ?? 0) + held, result.cost + held);
    } else sendUnavailable(res);
    this.parts.emit(outcomeOf(result.code), req.daymind!.owner, req.daymind!.keyHash);
  }

  private fail(state: HeldRequest, res: Response, err: unknown): void {
    state.refused = true;
    this.parts.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    if (!res.headersSent) sendUnavailable(res);
  }
}
