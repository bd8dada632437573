import type { Plan } from '../limits/plans';
import type { RateLimitResult } from '../limits/types';
import { creditsAt, monthUsage, utcMonth } from '../store/record';
import type { KeyRecord, KeyStore, SpendResult } from '../store/types';
import type { UsageRecorder } from '../usage/recorder';

/** What a request takes from its key's monthly quota and prepaid credits. */
export interface Spending {
  /** The quota as a RateLimit policy named `"month"` (after this request when allowed). */
  quota: RateLimitResult | undefined;
  /** Credits left after this request (or when refused, what there is); undefined when not prepaid. */
  credits: number | undefined;
  /** Why it was refused, if it was. */
  refused: 'QUOTA_EXCEEDED' | 'CREDITS_EXHAUSTED' | undefined;
  /** Credit units this process must spend at flush time (stores without `spend`). */
  localCredits: number;
  /** What the store spent at once (stores with `spend`), to give back if the request does not count. */
  spent: SpendResult | undefined;
}

/** The `"month"` policy: the quota over the UTC calendar month, reset on the 1st. */
export function monthPolicy(quota: number, used: number, allowed: boolean, nowMs: number): RateLimitResult {
  const d = new Date(nowMs);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return {
    policy: 'month',
    allowed,
    limit: quota,
    remaining: Math.max(0, quota - used),
    resetMs: end - nowMs,
    windowSeconds: (end - start) / 1000,
  };
}

function result(
  plan: Plan | undefined,
  used: number,
  credits: number | undefined,
  refused: Spending['refused'],
  nowMs: number,
  local: number,
  spent?: SpendResult,
): Spending {
  const quota = plan?.monthlyQuota != null ? monthPolicy(plan.monthlyQuota, used, refused !== 'QUOTA_EXCEEDED', nowMs) : undefined;
  return { quota, credits, refused, localCredits: local, spent };
}

/** Whether the key has a monthly quota or prepaid credits: only then is there anything to spend. */
export function hasQuotaOrCredits(record: KeyRecord, plan: Plan | undefined): boolean {
  return plan?.monthlyQuota != null || record.credits !== undefined;
}

/**
 * The quota and credits stage: checks and takes `cost` from the key's monthly quota and credits,
 * both or neither. Undefined when the key has neither. On a store with `spend`
 * (Redis) it is one atomic step shared by every instance; otherwise this process counts what the
 * store holds plus what it has not flushed yet, so several processes on one file may overshoot by
 * what the others have not flushed (at most one flush interval of their traffic).
 */
export async function spendQuotaAndCredits(
  store: KeyStore,
  recorder: UsageRecorder,
  record: KeyRecord,
  plan: Plan | undefined,
  cost: number,
  nowMs: number,
): Promise<Spending | undefined> {
  if (!hasQuotaOrCredits(record, plan)) return undefined;
  const quota = plan?.monthlyQuota ?? null;
  if (store.spend) {
    const spent = await store.spend(record.key_hash, { units: cost, nowMs, monthlyQuota: quota });
    const refused =
      spent.outcome === 'quota_exceeded' ? 'QUOTA_EXCEEDED' : spent.outcome === 'credits_exhausted' ? 'CREDITS_EXHAUSTED' : undefined;
    return result(plan, spent.monthUsed, spent.credits, refused, nowMs, 0, refused ? undefined : spent);
  }
  const unflushed = recorder.unflushed(record.key_hash, utcMonth(nowMs));
  const used = monthUsage(record, nowMs) + unflushed.monthUnits;
  const stored = creditsAt(record, nowMs);
  const credits = stored === undefined ? undefined : Math.max(0, stored - unflushed.credits);
  if (quota !== null && used + cost > quota) return result(plan, used, credits, 'QUOTA_EXCEEDED', nowMs, 0);
  if (credits !== undefined && credits < cost) return result(plan, used, credits, 'CREDITS_EXHAUSTED', nowMs, 0);
  return result(plan, used + cost, credits === undefined ? undefined : credits - cost, undefined, nowMs, credits === undefined ? 0 : cost);
}
