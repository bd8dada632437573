import type { RawRecord } from '../record';
import type { KeyRecord, UsageDelta } from '../types';

/** A row of the `keys` table as pg returns it (bigint columns as text). */
export type KeyRow = Record<string, unknown>;

/** Columns holding numbers that may be absent (NULL). */
const OPTIONAL_NUMBERS = [
  'revoked_at',
  'revoke_at',
  'rate_limit_per_minute',
  'expires_at',
  'credits',
  'credits_period',
  'requests_this_month',
  'requests_month',
] as const;

/** The settings columns (everything but the usage counters and the version), in a fixed order. */
export const SETTINGS_COLUMNS = [
  'key_prefix',
  'owner',
  'created_at',
  'revoked',
  'revoked_at',
  'revoke_at',
  'rotated_from',
  'rate_limit_per_minute',
  'expires_at',
  'meta',
  'stripe_customer_id',
  'plan',
  'scopes',
  'credits',
  'credits_refill_interval',
  'credits_refill_amount',
  'credits_period',
] as const;

/** The usage counters, written only when a record is copied in whole (migrate). */
export const COUNTER_COLUMNS = [
  'usage_count',
  'requests_today',
  'requests_day',
  'last_used',
  'requests_this_month',
  'requests_month',
] as const;

/** Fields of a record known to the layout; anything else another writer put in a record goes to `extra`. */
const KNOWN = new Set<string>([
  ...SETTINGS_COLUMNS,
  ...COUNTER_COLUMNS,
  'key_hash',
  'key',
  'credits_refill',
  'legacy_format',
  'version',
  'extra',
]);

const numberOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));

/** The typed record from a row of `keys`. */
export function decodeRow(row: KeyRow): KeyRecord {
  const record: KeyRecord = {
    key_hash: row.key_hash as string,
    key_prefix: (row.key_prefix as string) ?? '',
    owner: (row.owner as string) ?? '',
    created_at: Number(row.created_at ?? 0),
    usage_count: Number(row.usage_count ?? 0),
    requests_today: Number(row.requests_today ?? 0),
    requests_day: Number(row.requests_day ?? 0),
    last_used: numberOrNull(row.last_used),
    revoked: row.revoked === true,
  };
  for (const name of OPTIONAL_NUMBERS) {
    const value = numberOrNull(row[name]);
    if (value !== null) record[name] = value;
  }
  if (typeof row.plan === 'string') record.plan = row.plan;
  if (Array.isArray(row.scopes)) record.scopes = (row.scopes as unknown[]).filter((x): x is string => typeof x === 'string');
  if (row.credits_refill_interval === 'daily' || row.credits_refill_interval === 'monthly') {
    record.credits_refill = { interval: row.credits_refill_interval, amount: Number(row.credits_refill_amount ?? 0) };
  }
  if (typeof row.rotated_from === 'string') record.rotated_from = row.rotated_from;
  if (typeof row.stripe_customer_id === 'string') record.stripe_customer_id = row.stripe_customer_id;
  if (row.meta !== null && typeof row.meta === 'object' && !Array.isArray(row.meta)) record.meta = row.meta as Record<string, unknown>;
  return record;
}

/** Fields of a record that are not columns, as another writer left them (kept by `migrate`), or null. */
export function extraOf(row: KeyRow): Record<string, unknown> | null {
  return row.extra !== null && typeof row.extra === 'object' ? (row.extra as Record<string, unknown>) : null;
}

const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);

/** The value of one column for a raw record (null for absent); jsonb values as JSON text. */
export function columnValue(raw: RawRecord, column: string): unknown {
  const refill = raw.credits_refill as KeyRecord['credits_refill'] | undefined;
  switch (column) {
    case 'key_prefix':
    case 'owner':
      return text(raw[column]) ?? '';
    case 'created_at':
    case 'usage_count':
    case 'requests_today':
    case 'requests_day':
      return finite(raw[column]) ?? 0;
    case 'revoked':
      return raw.revoked === true;
    case 'rotated_from':
    case 'stripe_customer_id':
    case 'plan':
      return text(raw[column]);
    case 'meta':
      return raw.meta !== null && typeof raw.meta === 'object' && !Array.isArray(raw.meta) ? JSON.stringify(raw.meta) : null;
    case 'scopes':
      return Array.isArray(raw.scopes) ? JSON.stringify(raw.scopes) : null;
    case 'credits_refill_interval':
      return refill ? refill.interval : null;
    case 'credits_refill_amount':
      return refill ? refill.amount : null;
    default:
      return finite(raw[column]);
  }
}

/** The `extra` column of a raw record: its fields the layout does not know, or null. */
export function extraColumn(raw: RawRecord): string | null {
  const extra = Object.fromEntries(Object.entries(raw).filter(([name]) => !KNOWN.has(name)));
  return Object.keys(extra).length > 0 ? JSON.stringify(extra) : null;
}

/** The columns that hold a settings field (most are stored under their own name). */
export function columnsOf(field: string): string[] {
  if (field === 'credits_refill') return ['credits_refill_interval', 'credits_refill_amount', 'credits_period'];
  if (field === 'credits' || field === 'add_credits') return ['credits', 'credits_period'];
  return [field];
}

/** One flush's deltas, one entry per key, as the columns of `unnest` in the usage statement. */
export interface UsageColumns {
  hashes: string[];
  units: number[];
  lastUsed: number[];
  day: number[];
  dayUnits: number[];
  month: number[];
  monthUnits: number[];
}

/**
 * The deltas of a flush reduced to one row per key: the units, the last use, and the units of the
 * latest day and month among its days (a record keeps only its latest day's and month's counts:
 * an earlier day in the same delta is overtaken by the later one).
 */
export function usageColumns(deltas: UsageDelta[]): UsageColumns {
  const byKey = new Map<string, { units: number; last: number; day: number; dayUnits: number; month: number; monthUnits: number }>();
  for (const delta of deltas) {
    const row = byKey.get(delta.key_hash) ?? { units: 0, last: 0, day: 0, dayUnits: 0, month: 0, monthUnits: 0 };
    row.units += delta.units;
    row.last = Math.max(row.last, delta.last_used);
    for (const { day, units } of delta.days) {
      if (day > row.day) [row.day, row.dayUnits] = [day, units];
      else if (day === row.day) row.dayUnits += units;
      const month = Math.floor(day / 100);
      if (month > row.month) [row.month, row.monthUnits] = [month, units];
      else if (month === row.month) row.monthUnits += units;
    }
    byKey.set(delta.key_hash, row);
  }
  const out: UsageColumns = { hashes: [], units: [], lastUsed: [], day: [], dayUnits: [], month: [], monthUnits: [] };
  for (const [hash, row] of byKey) {
    out.hashes.push(hash);
    out.units.push(row.units);
    out.lastUsed.push(row.last);
    out.day.push(row.day);
    out.dayUnits.push(row.dayUnits);
    out.month.push(row.month);
    out.monthUnits.push(row.monthUnits);
  }
  return out;
}
