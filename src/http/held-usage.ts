import type { Request, Response } from 'express';
import { DaymindError, describeError } from '../errors';
import type { Verifier } from '../pipeline/verifier';
import type { VerifyResult } from '../pipeline/verify-types';
import type { RateLimitResult } from '../limits/types';

/** What one allowed request holds in flight until its response ends. */
export interface HeldRequest {
  /** The request itself (unless it was counted at once), then more units of it (`auth.cost(n)`). */
  results: VerifyResult[];
  ip: RateLimitResult | undefined;
  /** Refused after the key check (a missing scope, a cost it could not pay): not usage. */
  refused: boolean;
  /** Whether the response was sent ('finish'); a client gone before that leaves it false: not usage. */
  sent: boolean;
  /** Whether `results[0]` is the request itself (false when it was counted at once). */
  first: boolean;
  /** The request's time (ms), for counting it in the right day and month. */
  at: number;
}

export interface HeldUsageParts {
  verifier: Verifier;
  billable: ((req: Request, res: Response) => boolean) | undefined;
  onError: (err: Error) => void;
  now: () => number;
}

/**
 * The usage of allowed requests held from the key check to the end of the response: counted when
 * the response has been sent (if `billable` agrees and nothing refused it later), else given back.
 */
export class HeldUsage {
  private readonly held = new WeakMap<Request, HeldRequest>();
  private guards = false;

  constructor(private readonly parts: HeldUsageParts) {}

  /**
   * Whether allowed requests are held until their response ends: only when something may still
   * refuse or exclude them (a route guard was made, or `billable` is set). Otherwise they are
   * counted at once, which spares the request path a listener and some objects.
   */
  get defers(): boolean {
    return this.guards || this.parts.billable !== undefined;
  }

  /** A route guard exists: from now on allowed requests are held. */
  guarded(): void {
    this.guards = true;
  }

  /** Holds an allowed request's usage until its response ends. */
  hold(req: Request, res: Response, result: VerifyResult, ip: RateLimitResult | undefined, at: number): void {
    this.start(req, res, { results: [result], ip, refused: false, sent: false, first: true, at });
  }

  /** The request's held usage; for a request counted at once (before any guard existed), held from now on. */
  of(req: Request, res: Response): HeldRequest {
    return (
      this.held.get(req) ??
      this.start(req, res, { results: [], ip: undefined, refused: false, sent: false, first: false, at: this.parts.now() })
    );
  }

  /** A later check refused the request: what it holds is given back at its end. */
  refuse(req: Request): void {
    const state = this.held.get(req);
    if (state) state.refused = true;
  }

  /**
   * Settles the request when its connection is done with it ('close'). Its response counts as sent
   * once it emitted 'finish': a client that went away first leaves 'close' alone, whatever the
   * status code says (`res.writableFinished` is true then too, once Express has ended an answer).
   */
  private start(req: Request, res: Response, state: HeldRequest): HeldRequest {
    this.held.set(req, state);
    res.once('finish', () => (state.sent = true));
    res.once('close', () => this.settle(req, res, state));
    return state;
  }

  private settle(req: Request, res: Response, state: HeldRequest): void {
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
    state.results.forEach((result, i) => this.parts.verifier.settle(result, counted, state.at, i > 0 || !state.first));
  }
}
