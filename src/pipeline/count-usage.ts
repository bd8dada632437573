import type { KeyStore } from '../store/types';
import type { UsageRecorder } from '../usage/recorder';
import type { Failures } from './failures';
import type { Plan } from '../limits/plans';
import type { Spending } from './quota-and-credits';
import type { VerifyResult } from './verify-types';

/**
 * The usage stage: an allowed request's units counted at once, or held in flight until the
 * caller knows whether the request counts (`defer`: the middleware, at the response's end); the
 * recorder then hands them on to the store and to billing.
 */
export class UsageCounting {
  constructor(
    private readonly store: KeyStore,
    private readonly recorder: UsageRecorder,
    private readonly failures: Failures,
  ) {}

  /** Counts (or with `defer`, holds) `cost` units of an allowed request; `additional`: more units of one already counted. */
  count(keyHash: string, cost: number, now: number, spending: Spending | undefined, defer: boolean, additional: boolean): void {
    const credits = spending?.localCredits ?? 0;
    if (defer) this.recorder.reserve(keyHash, cost, credits, additional ? 0 : 1);
    else this.recorder.record(keyHash, cost, now, credits);
  }

  /**
   * Ends a request held in flight: it counts as usage (`counted`), or what it took from the quota
   * and credits goes back (not billable, or refused later, such as for a missing scope).
   */
  settle(result: VerifyResult, plan: Plan | undefined, counted: boolean, now: number, additional: boolean): void {
    const record = result.record!;
    const credits = result.spending?.localCredits ?? 0;
    const requests = additional ? 0 : 1;
    this.recorder.release(record.key_hash, result.cost, credits, requests);
    if (counted) {
      this.recorder.record(record.key_hash, result.cost, now, credits, requests);
      return;
    }
    const spent = result.spending?.spent;
    if (spent && this.store.refund) {
      this.store
        .refund(record.key_hash, { units: result.cost, nowMs: now, monthlyQuota: plan?.monthlyQuota ?? null }, spent)
        .catch((err: unknown) => this.failures.report('giving back quota and credits failed', err));
    }
  }
}
