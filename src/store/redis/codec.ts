import type { KeyRecord } from '../types';
import type { RawRecord } from '../record';

/** Optional record fields kept as numbers in the Redis hash (absent when null). */
const OPTIONAL_NUMBER_FIELDS = [
  'revoked_at',
  'revoke_at',
  'rate_limit_per_minute',
  'expires_at',
  'credits',
  'credits_period',
  'requests_this_month',
  'requests_month',
] as const;

/** Record fields kept as numbers in the Redis hash (absent when null). */
const NUMBER_FIELDS = ['created_at', 'usage_count', 'requests_today', 'requests_day', 'last_used', ...OPTIONAL_NUMBER_FIELDS] as const;

/** Counters that are always present (0 when unused), never deleted. */
const COUNTERS = new Set(['usage_count', 'requests_today', 'requests_day']);

/**
 * A record as Redis hash fields: strings, numbers as decimal text, `revoked` as 1/0, `meta` as
 * JSON. Null and absent fields are listed in `absent`, to be deleted on update.
 */
export function encodeRecord(record: RawRecord): { fields: string[]; absent: string[] } {
  const fields: string[] = [];
  const absent: string[] = [];
  for (const name of ['owner', 'key_prefix', 'rotated_from', 'stripe_customer_id', 'paddle_subscription_id', 'plan'] as const) {
    if (typeof record[name] === 'string') fields.push(name, record[name] as string);
    else if (name === 'stripe_customer_id' || name === 'paddle_subscription_id' || name === 'plan') absent.push(name);
  }
  for (const name of NUMBER_FIELDS) {
    const value = record[name];
    if (typeof value === 'number' && Number.isFinite(value)) fields.push(name, String(value));
    else if (!COUNTERS.has(name)) absent.push(name);
  }
  if (Array.isArray(record.scopes)) fields.push('scopes', JSON.stringify(record.scopes));
  else absent.push('scopes');
  const refill = record.credits_refill as KeyRecord['credits_refill'];
  if (refill) fields.push('credits_refill_interval', refill.interval, 'credits_refill_amount', String(refill.amount));
  else absent.push('credits_refill_interval', 'credits_refill_amount');
  fields.push('revoked', record.revoked === true ? '1' : '0');
  if (record.meta != null && typeof record.meta === 'object') fields.push('meta', JSON.stringify(record.meta));
  else absent.push('meta');
  return { fields, absent };
}

/** The Redis hash fields that hold a record field (most are stored under their own name). */
export function redisFieldsOf(field: string): string[] {
  if (field === 'credits_refill') return ['credits_refill_interval', 'credits_refill_amount', 'credits_period'];
  if (field === 'credits' || field === 'add_credits') return ['credits', 'credits_period'];
  return [field];
}

/** The typed record from a Redis hash (HGETALL reply), or undefined for an empty reply. */
export function decodeRecord(hash: string, h: Record<string, string>): KeyRecord | undefined {
  if (!h || Object.keys(h).length === 0) return undefined;
  const num = (name: string): number | undefined => (h[name] === undefined ? undefined : Number(h[name]));
  const record: KeyRecord = {
    key_hash: hash,
    key_prefix: h.key_prefix ?? '',
    owner: h.owner ?? '',
    created_at: num('created_at') ?? 0,
    usage_count: num('usage_count') ?? 0,
    requests_today: num('requests_today') ?? 0,
    requests_day: num('requests_day') ?? 0,
    last_used: num('last_used') ?? null,
    revoked: h.revoked === '1',
  };
  for (const name of OPTIONAL_NUMBER_FIELDS) {
    const value = num(name);
    if (value !== undefined) record[name] = value;
  }
  if (h.plan) record.plan = h.plan;
  if (h.scopes) {
    try {
      const scopes: unknown = JSON.parse(h.scopes);
      if (Array.isArray(scopes)) record.scopes = scopes.filter((x): x is string => typeof x === 'string');
    } catch {
      record.scopes = [];
    }
  }
  if (h.credits_refill_interval === 'daily' || h.credits_refill_interval === 'monthly') {
    record.credits_refill = { interval: h.credits_refill_interval, amount: Number(h.credits_refill_amount ?? 0) };
  }
  if (h.rotated_from) record.rotated_from = h.rotated_from;
  if (h.stripe_customer_id) record.stripe_customer_id = h.stripe_customer_id;
  if (h.paddle_subscription_id) record.paddle_subscription_id = h.paddle_subscription_id;
  if (h.meta) {
    try {
      record.meta = JSON.parse(h.meta) as Record<string, unknown>;
    } catch {
      record.meta = {};
    }
  }
  return record;
}

/** [field, value] pairs of a flat HSET argument list. */
export function pairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

/** ARGV of WRITE_RECORD for a whole record. */
export function writeArgs(hash: string, mode: string, raw: RawRecord): Array<string | number> {
  const { fields, absent } = encodeRecord(raw);
  if (raw.legacy_format === true) fields.push('legacy_format', '1');
  return [hash, mode, absent.length, ...absent, ...fields];
}
