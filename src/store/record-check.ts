import type { RawRecord } from './record';

/* The checks a key record read from a store file must pass. */

const SHA256_HEX = /^[0-9a-f]{64}$/;
const COUNTERS = ['created_at', 'usage_count', 'requests_today', 'requests_day'] as const;
const OPTIONAL_NUMBERS = ['last_used', 'rate_limit_per_minute', 'expires_at', 'revoked_at', 'revoke_at'] as const;
const CREDIT_NUMBERS = ['credits', 'credits_period', 'requests_this_month', 'requests_month'] as const;

/** Why a raw record cannot be used, or undefined when it can. */
function recordProblem(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'is not an object';
  const r = raw as RawRecord;
  if (r.key != null && typeof r.key !== 'string') return 'has a non-string "key"';
  if (r.key_hash != null && typeof r.key_hash !== 'string') return 'has a non-string "key_hash"';
  if (typeof r.key !== 'string' && typeof r.key_hash !== 'string') return 'has neither "key" nor "key_hash"';
  if (typeof r.key === 'string' && r.key.length === 0) return 'has an empty "key"';
  if (typeof r.key_hash === 'string' && !SHA256_HEX.test(r.key_hash)) return 'has a "key_hash" that is not a SHA-256 hex digest';
  for (const field of COUNTERS) {
    if (r[field] !== undefined && (typeof r[field] !== 'number' || !Number.isFinite(r[field]))) return `has a non-numeric "${field}"`;
  }
  for (const field of OPTIONAL_NUMBERS) {
    if (r[field] != null && (typeof r[field] !== 'number' || !Number.isFinite(r[field]))) return `has a non-numeric "${field}"`;
  }
  if (r.rate_limit_per_minute != null && !(Number.isSafeInteger(r.rate_limit_per_minute) && (r.rate_limit_per_minute as number) > 0)) {
    return 'has a "rate_limit_per_minute" that is not a whole number greater than 0';
  }
  if (r.owner !== undefined && typeof r.owner !== 'string') return 'has a non-string "owner"';
  if (r.stripe_customer_id != null && typeof r.stripe_customer_id !== 'string') return 'has a non-string "stripe_customer_id"';
  if (r.paddle_subscription_id != null && typeof r.paddle_subscription_id !== 'string') return 'has a non-string "paddle_subscription_id"';
  if (r.revoked !== undefined && typeof r.revoked !== 'boolean') return 'has a non-boolean "revoked"';
  if (r.meta != null && (typeof r.meta !== 'object' || Array.isArray(r.meta))) return 'has a "meta" that is not an object';
  if (r.plan != null && typeof r.plan !== 'string') return 'has a non-string "plan"';
  if (r.scopes != null && !(Array.isArray(r.scopes) && r.scopes.every((x) => typeof x === 'string')))
    return 'has "scopes" that are not a list of strings';
  for (const field of CREDIT_NUMBERS) {
    if (r[field] != null && (typeof r[field] !== 'number' || !Number.isFinite(r[field]))) return `has a non-numeric "${field}"`;
  }
  const refill = r.credits_refill as Record<string, unknown> | null | undefined;
  if (
    refill != null &&
    (typeof refill !== 'object' || (refill.interval !== 'daily' && refill.interval !== 'monthly') || typeof refill.amount !== 'number')
  ) {
    return 'has a "credits_refill" that is not { interval: daily|monthly, amount }';
  }
  return undefined;
}

/** Parses a store document (a JSON array of records); throws a message naming the bad record. */
export function parseRecords(text: string): RawRecord[] {
  const doc: unknown = JSON.parse(text);
  if (!Array.isArray(doc)) throw new Error('the document is not a JSON array of key records');
  doc.forEach(assertRecord);
  return doc as RawRecord[];
}

/** Throws a message naming record `i` of its document when `raw` cannot be used as a key record. */
export function assertRecord(raw: unknown, i: number): asserts raw is RawRecord {
  const problem = recordProblem(raw);
  if (problem) throw new Error(`record ${i} ${problem}`);
}
