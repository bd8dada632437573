import { resetSeconds } from '../http/ratelimit-headers';
import type { KeyRecord } from '../store/types';
import type { VerifyResult } from '../pipeline/verify-types';
import type { LiveUsage } from './recorder';

/**
 * The body of `GET /usage`: the key's record and live counters (`auth.usage(record)`), and where
 * it stands against its limits, quota and credits (the check's `result`). The usage router sends
 * it; a server outside Express builds the same answer with it.
 */
export function usageBody(record: KeyRecord, live: LiveUsage, result: VerifyResult): Record<string, unknown> {
  return {
    key_prefix: record.key_prefix,
    owner: record.owner,
    created_at: record.created_at,
    usage_count: live.usage_count,
    requests_today: live.requests_today,
    requests_day: live.requests_day,
    last_used: live.last_used,
    revoked: record.revoked,
    expires_at: record.expires_at ?? null,
    revoke_at: record.revoke_at ?? null,
    requests_this_month: live.requests_this_month,
    plan: result.plan ?? null,
    monthly_quota: result.quota
      ? {
          limit: result.quota.limit,
          used: result.quota.limit - result.quota.remaining,
          remaining: result.quota.remaining,
          reset_seconds: resetSeconds(result.quota),
        }
      : null,
    credits: result.credits ?? null,
    credits_refill: record.credits_refill ?? null,
    scopes: record.scopes ?? [],
    rate_limits: result.limits.map((l) => ({
      policy: l.policy,
      limit: l.limit,
      remaining: l.remaining,
      reset_seconds: resetSeconds(l),
      window_seconds: l.windowSeconds,
    })),
  };
}
