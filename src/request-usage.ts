import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError, DaymindError, describeError } from './errors';
import { outcomeOf, type RequestOutcome } from './observe';
import { setRateLimitHeaders } from './ratelimit/headers';
import type { RateLimitResult } from './ratelimit/types';
import { sendCreditsExhausted, sendInsufficientScope, sendQuotaExceeded, sendRateLimited, sendUnavailable } from './responses';
import { SCOPE } from './settings';
import type { VerifyResult, Verifier } from './verify';

/** What one allowed request holds in flight until its response ends. */
interface RequestUsage {
  results: VerifyResult[];
  ipResult: RateLimitResult | undefined;
  /** Refused after the key check (a missing scope, a cost it could not pay): not usage. */
  refused: boolean;
  /** Whether the response was sent ('finish'); a client gone before that leaves it false: not usage. */
  sent: boolean;
  /** Whether `results[0]` is the request itself (false when it was counted at once). */
  first?: boolean;
  /** The request's time (ms), for counting it in the right day and month. */
  at: number;
}

export interface RequestUsageParts {
  verifier: Verifier;
  billable: ((req: Request, res: Response) => boolean) | undefined;
  onError: (err: Error) => void;
  now: () => number;
  /** Also write the legacy X-RateLimit-* fields (the `legacyHeaders` option). */
  legacyHeaders: boolean;
  /** Runs the auth middleware on a request that did not go through it, at `cost` units. */
  authenticate(req: Request, res: Response, next: NextFunction, cost: number): void;
  /** Tells request listeners (metrics) of an outcome decided after the key check. */
  emit(outcome: RequestOutcome, owner: string | undefined): void;
}

/**
 * The usage of allowed requests from the key check to the end of the response: held in flight,
 * counted when the response has been sent (if `billable` agrees and nothing refused it later),
 * else given back. Also the route guards that act on it: `cost(n)` and `requireScope(scope)`.
 */
export class RequestUsageTracker {
  private readonly states = new WeakMap<Request, RequestUsage>();
  private guards = false;

  constructor(private readonly parts: RequestUsageParts) {}

  /**
   * Whether allowed requests are held until their response ends: only when something may still
   * refuse or exclude them (a route guard was made, or `billable` is set). Otherwise they are
   * counted at once, which spares the request path a listener and some objects.
   */
  get defers(): boolean {
    return this.guards || this.parts.billable !== undefined;
  }

  /** Holds an allowed request's usage until its response ends. */
  track(req: Request, res: Response, result: VerifyResult, ipResult: RateLimitResult | undefined, at: number): void {
    const state: RequestUsage = { results: [result], ipResult, refused: false, sent: false, at, first: true };
    this.states.set(req, state);
    this.settleAtClose(req, res, state);
  }

  /** State for a request counted at once (no results to settle), so that more units are held. */
  private adopt(req: Request, res: Response): RequestUsage {
    const state: RequestUsage = { results: [], ipResult: undefined, refused: false, sent: false, at: this.parts.now() };
    this.states.set(req, state);
    this.settleAtClose(req, res, state);
    return state;
  }

  /**
   * Settles the request when its connection is done with it ('close'). Its response counts as sent
   * once it emitted 'finish': a client that went away first leaves 'close' alone, whatever the
   * status code says (`res.writableFinished` is true then too, once Express has ended an answer).
   */
  private settleAtClose(req: Request, res: Response, state: RequestUsage): void {
    res.once('finish', () => (state.sent = true));
    res.once('close', () => this.settle(req, res, state));
  }

  private settle(req: Request, res: Response, state: RequestUsage): void {
    let counted = !state.refused && state.sent;
    if (counted && this.parts.billable) {
      try {
        counted = this.parts.billable(req, res) === true;
      } catch (err) {
        this.parts.onError(
          new DaymindError('ERR_DAYMIND_USAGE_FLUSH', `the billable option threw; the request was counted: ${describeError(err)}`, {
            cause: err,
          }),
        );
      }
    }
    // The first result is the request itself; later ones are more units of it (auth.cost(n)).
    state.results.forEach((result, i) => this.parts.verifier.settle(result, counted, state.at, i > 0 || !state.first));
  }

  /** Route middleware: the request costs `units` in all (windows, quota, credits, usage, billing). */
  cost(units: number): RequestHandler {
    if (!Number.isSafeInteger(units) || units < 1)
      throw new ConfigError('cost', `must be a whole number of at least 1, got ${JSON.stringify(units)}`);
    this.guards = true;
    return (req, res, next) => {
      if (!req.daymind) return this.parts.authenticate(req, res, next, units);
      // A request let through before any guard existed was counted at once: track it from here.
      const state = this.states.get(req) ?? this.adopt(req, res);
      const extra = units - req.daymind.cost;
      if (extra <= 0) return next();
      let taken: VerifyResult | Promise<VerifyResult>;
      try {
        taken = this.parts.verifier.take(req.daymind.record, extra, state.at, { defer: true, additional: true });
      } catch (err) {
        return this.refuse(state, res, err);
      }
      const settle = (result: VerifyResult): void => {
        if (!result.valid) return this.answer(state, req, res, result);
        state.results.push(result);
        req.daymind!.cost = units;
        req.daymind!.limits = result.limits;
        setRateLimitHeaders(res, state.ipResult, result.limits, this.legacyAt());
        next();
      };
      if (taken instanceof Promise) taken.then(settle, (err: unknown) => this.refuse(state, res, err));
      else settle(taken);
    };
  }

  /** Route middleware: 403 `insufficient_scope` unless the key carries `scope`. Not usage when refused. */
  requireScope(scope: string): RequestHandler {
    if (typeof scope !== 'string' || !SCOPE.test(scope)) {
      throw new ConfigError('requireScope', `a scope is a name of letters, digits and _ : . - (at most 64), got ${JSON.stringify(scope)}`);
    }
    this.guards = true;
    const check: RequestHandler = (req, res, next) => {
      if (req.daymind!.record.scopes?.includes(scope)) return next();
      const state = this.states.get(req);
      if (state) state.refused = true;
      this.parts.emit('insufficient_scope', req.daymind!.owner);
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

  /** Answers a request refused by a later check; its earlier usage is given back at the end. */
  private answer(state: RequestUsage, req: Request, res: Response, result: VerifyResult): void {
    state.refused = true;
    setRateLimitHeaders(res, state.ipResult, result.limits, this.legacyAt());
    if (result.code === 'RATE_LIMITED') sendRateLimited(res, result.refusedBy!);
    else if (result.code === 'QUOTA_EXCEEDED') sendQuotaExceeded(res, result.refusedBy!);
    else if (result.code === 'CREDITS_EXHAUSTED') {
      // What the key has for this request: the units the middleware already held come back.
      const held = req.daymind!.cost;
      sendCreditsExhausted(res, (result.credits ?? 0) + held, result.cost + held);
    } else sendUnavailable(res);
    this.parts.emit(outcomeOf(result.code), req.daymind!.owner);
  }

  private refuse(state: RequestUsage, res: Response, err: unknown): void {
    state.refused = true;
    this.parts.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    if (!res.headersSent) sendUnavailable(res);
  }
}
