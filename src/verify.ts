import { DaymindError, describeError } from './errors';
import { OnceReporter } from './report-once';
import { hasValidChecksum, hashKey, isPlausibleKey } from './keys';

const SEEN_KEYS_LIMIT = 10_000;
/** Failures of the quota and credits step: a request that did not spend says nothing of their end. */
const SPENDING = new Set(['quota and credits check failed', 'giving back quota and credits failed']);
import type { ConsumeRequest, RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './ratelimit/types';
import type { CheckOptions, LeadWindow, VerifyOptions, VerifyResult } from './verify-types';
import { consumeEach } from './ratelimit/consume-each';
import { peekEach } from './ratelimit/peek-each';
import { isExpired, isRevoked } from './store/record';
import { KeyLimits } from './key-limits';
import type { Plan } from './plans';
import { spend, type Spending } from './spending';
import type { KeyRecord, KeyStore } from './store/types';
import type { UsageRecorder } from './usage/recorder';

export type { CheckOptions, LeadWindow, VerifyCode, VerifyOptions, VerifyResult } from './verify-types';

/** One request's pass through the key's windows, quota and credits. */
interface Attempt {
  record: KeyRecord;
  /** The key's plan in force, if any. */
  plan: Plan | undefined;
  windows: readonly RateLimitWindow[];
  /** The state of each window taken so far, then the `"month"` policy. */
  limits: RateLimitResult[];
  now: number;
  cost: number;
  options: CheckOptions;
  /** The give-back to earlier windows of a refused request, until the limiter has them back. */
  givingBack?: Promise<unknown>;
}

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

/**
 * The core check, independent of HTTP: key shape, look-up by hash, status, the key's rate-limit
 * windows, and usage counting. Never throws: failures of the store or limiter give UNAVAILABLE.
 */
export class Verifier {
  /**
   * An outage is reported once per failing part (what failed), not once per request, until a
   * request gets through that part again. One reporter for all would report the quota check's
   * failure again after every allowed key without a quota while Redis is down (fail open).
   */
  private readonly failures = new Map<string, OnceReporter>();

  private readonly limits: KeyLimits;

  constructor(private readonly parts: VerifierParts) {
    this.limits = new KeyLimits(parts.plans ?? new Map(), parts.defaultRateLimitPerMinute, parts.onError);
  }

  private fail(what: string, err: unknown): void {
    let reporter = this.failures.get(what);
    if (!reporter) this.failures.set(what, (reporter = new OnceReporter(this.parts.onError)));
    reporter.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `${what}: ${describeError(err)}`, { cause: err }));
  }

  /** An allowed request got through the look-up and the limiter, and through the quota check when it had one. */
  private recovered(spent: boolean): void {
    for (const [what, reporter] of this.failures) if (spent || !SPENDING.has(what)) reporter.clear();
  }

  /** Keys seen recently: their hash and whether they carry a valid checksum (bounded). */
  private readonly seenKeys = new Map<string, { hash: string; checksummed: boolean }>();

  /** Shape check, checksum and hash of a key; remembered for the 10,000 most recent keys. */
  private inspect(key: string): { hash: string; checksummed: boolean } | undefined {
    let seen = this.seenKeys.get(key);
    if (seen) return seen;
    if (!isPlausibleKey(key)) return undefined;
    seen = { hash: hashKey(key), checksummed: hasValidChecksum(key, this.parts.keyPrefix) };
    if (this.seenKeys.size >= SEEN_KEYS_LIMIT) this.seenKeys.clear();
    this.seenKeys.set(key, seen);
    return seen;
  }

  /**
   * The record of a key already known to the store, without limits or counting (to attribute a
   * request refused before the key was checked, such as by the IP limit).
   */
  async identify(key: string | undefined): Promise<KeyRecord | undefined> {
    const seen = key ? this.inspect(key) : undefined;
    if (!seen) return undefined;
    try {
      return await this.parts.store.get(seen.hash);
    } catch {
      return undefined;
    }
  }

  async verify(key: string | undefined, options: VerifyOptions = {}): Promise<VerifyResult> {
    return this.check(key, options);
  }

  /**
   * {@link verify}, answered synchronously when the store and the limiter can (a JSON or memory
   * store with the memory limiter): the request path then allocates no promise at all.
   */
  check(key: string | undefined, options: CheckOptions = {}): VerifyResult | Promise<VerifyResult> {
    const cost = options.peek ? 0 : (options.cost ?? 1);
    if (key === undefined || key === '') return { valid: false, code: 'MISSING', limits: [], cost };
    const seen = this.inspect(key);
    if (!seen) return { valid: false, code: 'MALFORMED', limits: [], cost };
    const { store } = this.parts;
    const { hash, checksummed } = seen;
    if (!checksummed && !store.hasUnchecksummedKeys?.()) return { valid: false, code: 'MALFORMED', limits: [], cost };
    let found: KeyRecord | undefined | Promise<KeyRecord | undefined>;
    try {
      found = store.get(hash);
    } catch (err) {
      return this.unavailable('key store look-up failed', err, cost);
    }
    if (found instanceof Promise || (!found && checksummed && store.refresh))
      return this.lookUpLater(found, hash, checksummed, options, cost);
    return this.checkRecord(found, options, cost);
  }

  private unavailable(what: string, err: unknown, cost: number, record?: KeyRecord, limits: RateLimitResult[] = []): VerifyResult {
    this.fail(what, err);
    return { valid: false, code: 'UNAVAILABLE', record, limits, cost };
  }

  /** The look-up when the store answers asynchronously, or must be refreshed for an unknown key. */
  private async lookUpLater(
    found: KeyRecord | undefined | Promise<KeyRecord | undefined>,
    hash: string,
    checksummed: boolean,
    options: CheckOptions,
    cost: number,
  ): Promise<VerifyResult> {
    const { store } = this.parts;
    let record: KeyRecord | undefined;
    try {
      record = await found;
    } catch (err) {
      return this.unavailable('key store look-up failed', err, cost);
    }
    if (!record && checksummed && store.refresh) {
      // An unknown key's refresh waits for the lead: a flood that the IP limit refuses never reaches the store.
      if (options.lead) {
        const refused = await this.spendLeadAlone(options.lead, cost);
        if (refused) return refused;
        options = { ...options, lead: undefined };
      }
      try {
        await store.refresh();
        record = await store.get(hash);
      } catch (err) {
        return this.unavailable('key store look-up failed', err, cost);
      }
    }
    return this.checkRecord(record, options, cost);
  }

  /** Spends the lead window on its own; the result to answer with when it refused. */
  private async spendLeadAlone(lead: LeadWindow, cost: number): Promise<VerifyResult | undefined> {
    const { window, id } = lead.request;
    lead.result = await this.parts.limiter.consume(window, id, lead.request.cost);
    return lead.result.allowed ? undefined : leadRefused(lead.result, cost);
  }

  /** Status and limits of a found record; synchronous when the limiter is. */
  private checkRecord(record: KeyRecord | undefined, options: CheckOptions, cost: number): VerifyResult | Promise<VerifyResult> {
    if (!record) return { valid: false, code: 'NOT_FOUND', limits: [], cost };
    const now = options.now ?? (this.parts.now ?? Date.now)();
    if (isRevoked(record, now)) return { valid: false, code: 'REVOKED', record, limits: [], cost };
    if (isExpired(record, now)) return { valid: false, code: 'EXPIRED', record, limits: [], cost };
    if (options.peek) return this.standing(record, now);
    return this.take(record, cost, now, options);
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
      held = await spend(this.parts.store, this.parts.recorder, record, plan, 0, now);
    } catch (err) {
      return this.unavailable('quota and credits check failed', err, 0, record, limits);
    }
    const result: VerifyResult = { valid: true, code: 'VALID', record, limits, cost: 0 };
    if (plan) result.plan = plan.name;
    if (held?.quota) limits.push((result.quota = held.quota));
    if (held?.credits !== undefined) result.credits = held.credits;
    return result;
  }

  /**
   * Takes `cost` from every window of the key, then from its quota and credits; counts it (or
   * holds it in flight with `defer`). A refusal gives back what earlier windows took.
   */
  take(record: KeyRecord, cost: number, now: number, options: CheckOptions): VerifyResult | Promise<VerifyResult> {
    const plan = this.limits.planOf(record);
    const a: Attempt = { record, plan, windows: this.limits.windowsFor(record, plan), limits: [], now, cost, options };
    const { limiter } = this.parts;
    if (!limiter.consumeSync || options.lead) return this.limitLater(a);
    try {
      for (const window of a.windows) {
        const result = limiter.consumeSync(window, record.key_hash, cost);
        if (result === undefined) return this.limitLater(a);
        a.limits.push(result);
        if (!result.allowed) return this.refused(a, result);
      }
    } catch (err) {
      return this.unavailable('rate limiter failed', err, cost, record, a.limits);
    }
    return this.spendAndCount(a);
  }

  /**
   * The windows from `a.limits.length` on, through the limiter's asynchronous consume; with a lead
   * window, that one first and then all of the key's, in one `consumeAll` call when the limiter
   * has it.
   */
  private async limitLater(a: Attempt): Promise<VerifyResult> {
    try {
      const lead = a.options.lead;
      if (lead) {
        const ownWindows = a.windows.map((window): ConsumeRequest => ({ window, id: a.record.key_hash, cost: a.cost }));
        const { limiter } = this.parts;
        const all = [lead.request, ...ownWindows];
        const results = await (limiter.consumeAll ? limiter.consumeAll(all) : consumeEach(limiter, all));
        lead.result = results[0]!;
        if (!lead.result.allowed) return leadRefused(lead.result, a.cost, a.record);
        for (const result of results.slice(1)) {
          a.limits.push(result);
          if (!result.allowed) return this.whenGivenBack(a, this.refused(a, result));
        }
      }
      for (let i = a.limits.length; i < a.windows.length; i++) {
        const result = await this.parts.limiter.consume(a.windows[i]!, a.record.key_hash, a.cost);
        a.limits.push(result);
        if (!result.allowed) return this.whenGivenBack(a, this.refused(a, result));
      }
    } catch (err) {
      return this.unavailable('rate limiter failed', err, a.cost, a.record, a.limits);
    }
    return this.whenGivenBack(a, await this.spendAndCount(a));
  }

  /**
   * Gives back the request's units to the first `count` windows (a later check refused it), and
   * shows those windows as they are then. The limiter may take them back asynchronously
   * (`a.givingBack`): a check that is asynchronous already waits for it before it answers.
   */
  private giveBack(a: Attempt, count: number): void {
    const { limiter } = this.parts;
    if (!limiter.refund || count <= 0) return;
    const back: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const taken = a.limits[i]!;
      a.limits[i] = { ...taken, remaining: Math.min(taken.limit, taken.remaining + a.cost) };
      back.push(
        limiter.refund(a.windows[i]!, a.record.key_hash, a.cost).catch((err: unknown) => this.fail('rate limiter refund failed', err)),
      );
    }
    a.givingBack = Promise.all(back);
  }

  /** `result`, once the windows have what a refusal gave back. */
  private whenGivenBack(a: Attempt, result: VerifyResult): VerifyResult | Promise<VerifyResult> {
    return a.givingBack ? a.givingBack.then(() => result) : result;
  }

  private spendAndCount(a: Attempt): VerifyResult | Promise<VerifyResult> {
    const failed = (err: unknown): VerifyResult => {
      this.giveBack(a, a.limits.length);
      return this.unavailable('quota and credits check failed', err, a.cost, a.record, a.limits);
    };
    let spending: Spending | Promise<Spending> | undefined;
    try {
      spending = spend(this.parts.store, this.parts.recorder, a.record, a.plan, a.cost, a.now);
    } catch (err) {
      return failed(err);
    }
    if (spending === undefined) return this.allowed(a, undefined);
    if (spending instanceof Promise) {
      return spending.then(
        (s) => this.whenGivenBack(a, this.afterSpending(a, s)),
        (err: unknown) => this.whenGivenBack(a, failed(err)),
      );
    }
    return this.afterSpending(a, spending);
  }

  private afterSpending(a: Attempt, spending: Spending): VerifyResult {
    if (spending.quota) a.limits.push(spending.quota);
    if (!spending.refused) return this.allowed(a, spending);
    this.giveBack(a, a.windows.length);
    const refused: VerifyResult = {
      valid: false,
      code: spending.refused,
      record: a.record,
      limits: a.limits,
      cost: a.cost,
      plan: a.plan?.name,
      quota: spending.quota,
      credits: spending.credits,
    };
    if (spending.refused === 'QUOTA_EXCEEDED') {
      this.parts.recorder.recordRateLimited(a.record.key_hash, a.now);
      refused.refusedBy = spending.quota;
    }
    return refused;
  }

  private refused(a: Attempt, refusedBy: RateLimitResult): VerifyResult {
    this.giveBack(a, a.limits.length - 1);
    this.parts.recorder.recordRateLimited(a.record.key_hash, a.now);
    return { valid: false, code: 'RATE_LIMITED', record: a.record, limits: a.limits, refusedBy, cost: a.cost };
  }

  private allowed(a: Attempt, spending: Spending | undefined): VerifyResult {
    const { record, cost, options, plan } = a;
    if (this.failures.size > 0) this.recovered(spending !== undefined);
    const credits = spending?.localCredits ?? 0;
    if (options.defer) this.parts.recorder.reserve(record.key_hash, cost, credits, options.additional ? 0 : 1);
    else this.parts.recorder.record(record.key_hash, cost, a.now, credits);
    const result: VerifyResult = { valid: true, code: 'VALID', record, limits: a.limits, cost };
    if (plan) result.plan = plan.name;
    if (spending) {
      result.spending = spending;
      if (spending.quota) result.quota = spending.quota;
      if (spending.credits !== undefined) result.credits = spending.credits;
    }
    return result;
  }

  /**
   * Ends a request held in flight by `defer`: it counts as usage (`counted`), or its quota and
   * credits are given back (not billable, or refused later, such as for a missing scope).
   */
  settle(result: VerifyResult, counted: boolean, now: number, additional = false): void {
    const record = result.record!;
    const credits = result.spending?.localCredits ?? 0;
    const requests = additional ? 0 : 1;
    this.parts.recorder.release(record.key_hash, result.cost, credits, requests);
    if (counted) {
      this.parts.recorder.record(record.key_hash, result.cost, now, credits, requests);
      return;
    }
    const spent = result.spending?.spent;
    const { store } = this.parts;
    if (spent && store.refund) {
      const plan = this.limits.planOf(record);
      store
        .refund(record.key_hash, { units: result.cost, nowMs: now, monthlyQuota: plan?.monthlyQuota ?? null }, spent)
        .catch((err: unknown) => this.fail('giving back quota and credits failed', err));
    }
  }
}

/** The result when the lead window refused: the key's windows were not spent; the caller answers for the lead. */
function leadRefused(refusedBy: RateLimitResult, cost: number, record?: KeyRecord): VerifyResult {
  return { valid: false, code: 'RATE_LIMITED', record, limits: [], refusedBy, cost };
}
