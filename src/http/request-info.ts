import type { VerifyResult } from '../pipeline/verify-types';
import { resetSeconds } from './ratelimit-headers';
import type { RateLimitResult } from '../limits/types';
import type { KeyRecord } from '../store/types';

/** What the middleware tells the handler about an authenticated request, as `req.daymind`. */
export interface DaymindRequestInfo {
  /** Display prefix of the key, e.g. `dm_8fJq2L` (never the full key). */
  keyPrefix: string;
  /** SHA-256 of the key, hex: a stable id to attach to your own records. */
  keyHash: string;
  owner: string;
  meta: Record<string, unknown>;
  /** The key's rate-limit windows after this request (its plan's, or the `"key"` policy), and `"month"` with a quota. */
  limits: RateLimitResult[];
  /** Units this request cost. */
  cost: number;
  /** The stored record as it was before this request's usage was counted. */
  record: KeyRecord;
  /** The key's plan, or null. */
  plan: string | null;
  /** The monthly quota after this request, or null without one. */
  quota: { limit: number; remaining: number; reset_seconds: number } | null;
  /** Prepaid credits left after this request, or null when the key is not prepaid. */
  credits: number | null;
  /** The key's scopes. */
  scopes: string[];
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by daymindAuth() on requests it let through. */
      daymind?: DaymindRequestInfo;
    }
  }
}

/** `req.daymind` of an allowed request, from its key check. */
export function requestInfo(result: VerifyResult): DaymindRequestInfo {
  const record = result.record!;
  return {
    keyPrefix: record.key_prefix,
    keyHash: record.key_hash,
    owner: record.owner,
    meta: record.meta ?? {},
    limits: result.limits,
    cost: result.cost,
    record,
    plan: result.plan ?? null,
    quota: result.quota
      ? { limit: result.quota.limit, remaining: result.quota.remaining, reset_seconds: resetSeconds(result.quota) }
      : null,
    credits: result.credits ?? null,
    scopes: record.scopes ?? [],
  };
}
