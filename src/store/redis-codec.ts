import type { KeyRecord } from './types';
import type { RawRecord } from './record';

/** Record fields kept as numbers in the Redis hash (absent when null). */
const NUMBER_FIELDS = [
  'created_at',
  'usage_count',
  'requests_today',
  'requests_day',
  'last_used',
  'revoked_at',
  'revoke_at',
  'rate_limit_per_minute',
  'expires_at',
] as const;

/**
 * A record as Redis hash fields: strings, numbers as decimal text, `revoked` as 1/0, `meta` as
 * JSON. Null and absent fields are listed in `absent`, to be deleted on update.
 */
export function encodeRecord(record: RawRecord): { fields: string[]; absent: string[] } {
  const fields: string[] = [];
  const absent: string[] = [];
  for (const name of ['owner', 'key_prefix', 'rotated_from', 'stripe_customer_id'] as const) {
    if (typeof record[name] === 'string') fields.push(name, record[name] as string);
    else if (name === 'stripe_customer_id') absent.push(name);
  }
  for (const name of NUMBER_FIELDS) {
    const value = record[name];
    if (typeof value === 'number' && Number.isFinite(value)) fields.push(name, String(value));
    else if (name !== 'usage_count' && name !== 'requests_today' && name !== 'requests_day') absent.push(name);
  }
  fields.push('revoked', record.revoked === true ? '1' : '0');
  if (record.meta != null && typeof record.meta === 'object') fields.push('meta', JSON.stringify(record.meta));
  return { fields, absent };
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
  for (const name of ['revoked_at', 'revoke_at', 'rate_limit_per_minute', 'expires_at'] as const) {
    const value = num(name);
    if (value !== undefined) record[name] = value;
  }
  if (h.rotated_from) record.rotated_from = h.rotated_from;
  if (h.stripe_customer_id) record.stripe_customer_id = h.stripe_customer_id;
  if (h.meta) {
    try {
      record.meta = JSON.parse(h.meta) as Record<string, unknown>;
    } catch {
      record.meta = {};
    }
  }
  return record;
}
