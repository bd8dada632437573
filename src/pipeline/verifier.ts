import type { Plan } from '../limits/plans';
import { peekEach } from '../limits/peek-each';
import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from '../limits/types';
import type { KeyRecord, KeyStore } from '../store/types';
import type { UsageRecorder } from '../usage/recorder';
import { UsageCounting } from './count-usage';
import { Failures } from './failures';
import { KeyFinder } from './find-key';
import { KeyLimits } from './key-limits';
import { giveBackWindows, takeWindows } from './key-windows';
import { hasQuotaOrCredits, spendQuotaAndCredits, type Spending } from './quota-and-credits';
import type { VerifyOptions, VerifyResult } from './verify-types';

export type { VerifyCode, VerifyOptions, VerifyResult } from './verify-types';

export interface VerifierParts {
  store: KeyStore;
  limiter: RateLimiterAdapter;
  recorder: UsageRecorder;
  keyPrefix: string;
  defaultRateLimitPerMinute: number;
  plans?: ReadonlyMap<string, Plan>;
  /** The clock, ms. Default Date.now. */
  now?: () => number;
  onError: (err: Error) => void;
}

/** More units for a key already found: the request's time, and whether its usage is held and is more of one counted. */
export interface TakeOptions {
  defer: boolean;
  additional: boolean;
}

/**
 * The key check behind `auth.verify()`, without HTTP: the stages key -> key's limits -> quota and
 * credits -> usage, called in order. Never rejects: a store or limiter that fails gives
 * UNAVAILABLE, and is reported once while it lasts.
 */
export class Verifier {
  private readonly failures: Failures;
  private readonly keys: KeyFinder;
  private readonly limits: KeyLimits;
  private readonly usage: UsageCounting;
  private readonly now: () => number;

  constructor(private readonly parts: VerifierParts) {
    this.failures = new Failures(parts.onError);
    this.keys = new KeyFinder(parts.store, parts.keyPrefix);
    this.limits = new KeyLimits(parts.plans ?? new Map(), parts.defaultRateLimitPerMinute, parts.onError);
    this.usage = new UsageCounting(parts.store, parts.recorder, this.failures);
    this.now = parts.now ?? Date.now;
  }

  async verify(key: string | undefined, options: VerifyOptions = {}): Promise<VerifyResult> {
    const cost = options.peek ? 0 : (options.cost ?? 1);
    const now = options.now ?? this.now();
    let found;
    try {
      found = await this.keys.find(key, now);
    } catch (err) {
      return this.unavailable('key store look-up failed', err, cost);
    }
    const record = found.record;
    if (found.code !== 'VALID' || !record) return { valid: false, code: found.code, record, limits: [], cost };
    if (options.peek) return this.standing(record, now);
    return this.take(record, cost, now, { defer: options.defer === true, additional: options.additional === true });
  }

  /** The record of a key the store knows already, whatever its status; undefined when it cannot tell. */
  async identify(key: string | undefined): Promise<KeyRecord | undefined> {
    return this.keys.identify(key).catch(() => undefined);
  }

  /**
   * Takes `cost` from every window of a found key, then from its quota and credits, and counts
   * it (or holds it with `defer`). A refusal gives back what the stages before it took.
   */
  async take(record: KeyRecord, cost: number, now: number, options: TakeOptions): Promise<VerifyResult> {
    const plan = this.limits.planOf(record);
    const windows = this.limits.windowsFor(record, plan);
    let limits: RateLimitResult[];
    try {
      limits = await takeWindows(this.parts.limiter, windows, record.key_hash, cost);
    } catch (err) {
      return this.unavailable('rate limiter failed', err, cost, record);
    }
    const last = limits[limits.length - 1];
    if (last && !last.allowed) {
      await this.giveBack(windows, limits, limits.length - 1, record, cost);
      this.parts.recorder.recordRateLimited(record.key_hash, now);
      return { valid: false, code: 'RATE_LIMITED', record, limits, refusedBy: last, cost };
    }
    let spending: Spending | undefined;
    try {
      if (hasQuotaOrCredits(record, plan))
        spending = await spendQuotaAndCredits(this.parts.store, this.parts.recorder, record, plan, cost, now);
    } catch (err) {
      await this.giveBack(windows, limits, limits.length, record, cost);
      return this.unavailable('quota and credits check failed', err, cost, record, limits);
    }
    if (spending?.quota) limits.push(spending.quota);
    if (spending?.refused) {
      await this.giveBack(windows, limits, windows.length, record, cost);
      if (spending.refused === 'QUOTA_EXCEEDED') this.parts.recorder.recordRateLimited(record.key_hash, now);
      const { quota, credits } = spending;
      const refused: VerifyResult = { valid: false, code: spending.refused, record, limits, cost, plan: plan?.name, quota, credits };
      if (spending.refused === 'QUOTA_EXCEEDED') refused.refusedBy = spending.quota;
      return refused;
    }
    this.failures.recovered(spending !== undefined);
    this.usage.count(record.key_hash, cost, now, spending, options.defer, options.additional);
    const result = standing(record, limits, cost, plan, spending);
    if (spending) result.spending = spending;
    return result;
  }

  /**
   * Ends a request held in flight by `defer`: it counts as usage (`counted`), or its quota and
   * credits are given back (not billable, or refused later, such as for a missing scope).
   */
  settle(result: VerifyResult, counted: boolean, now: number, additional = false): void {
    this.usage.settle(result, this.limits.planOf(result.record!), counted, now, additional);
  }

  /** Where a valid key stands (`peek`): its windows as they are now, then its quota and credits. Spends nothing. */
  private async standing(record: KeyRecord, now: number): Promise<VerifyResult> {
    const plan = this.limits.planOf(record);
    let limits: RateLimitResult[];
    let held: Spending | undefined;
    try {
      limits = await peekEach(this.parts.limiter, this.limits.windowsFor(record, plan), record.key_hash);
    } catch (err) {
      return this.unavailable('rate limiter failed', err, 0, record);
    }
    try {
      held = await spendQuotaAndCredits(this.parts.store, this.parts.recorder, record, plan, 0, now);
    } catch (err) {
      return this.unavailable('quota and credits check failed', err, 0, record, limits);
    }
    if (held?.quota) limits.push(held.quota);
    return standing(record, limits, 0, plan, held);
  }

  private giveBack(
    windows: readonly RateLimitWindow[],
    limits: RateLimitResult[],
    count: number,
    record: KeyRecord,
    cost: number,
  ): Promise<void> {
    const failed = (err: unknown): void => this.failures.report('rate limiter refund failed', err);
    return giveBackWindows(this.parts.limiter, windows, limits, count, record.key_hash, cost, failed);
  }

  private unavailable(what: string, err: unknown, cost: number, record?: KeyRecord, limits: RateLimitResult[] = []): VerifyResult {
    this.failures.report(what, err);
    return { valid: false, code: 'UNAVAILABLE', record, limits, cost };
  }
}

/** A valid key's result: its windows, plan, quota and credits (after this request, when it spent). */
function standing(
  record: KeyRecord,
  limits: RateLimitResult[],
  cost: number,
  plan: Plan | undefined,
  spending: Spending | undefined,
): VerifyResult {
  const result: VerifyResult = { valid: true, code: 'VALID', record, limits, cost };
  if (plan) result.plan = plan.name;
  if (spending?.quota) result.quota = spending.quota;
  if (spending?.credits !== undefined) result.credits = spending.credits;
  return result;
}
