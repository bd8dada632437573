import { totalsByOwner } from '../billing/export';
import { ledgerMonth, type LedgerEntry } from '../billing/ledger';
import { keyStatus, type KeyStatus } from '../store/record';
import type { KeyRecord } from '../store/types';
import { ownerUsage, todayCount } from './commands';

/** How many keys the report lists, by units in the month. */
export const TOP_KEYS = 10;

/** One UTC day of an owner: units billed (ledger) and requests refused with 429 (history). */
export interface ReportDay {
  day: string;
  units: number;
  /** null when the per-day history has no counts for the day. */
  rate_limited: number | null;
}

/** The figures of an owner, or of all owners. */
export interface ReportFigures {
  /** Keys in the store, as `usage` counts them. */
  keys: number;
  /** Keys with units in the month, as `export` counts them. */
  keys_with_usage: number;
  /** Units in the month from the ledger: `export`'s quantity. */
  units: number;
  /** Requests refused with 429 in the month; null without per-day history. */
  rate_limited: number | null;
  /** All-time usage_count and requests today, from the store: the figures of `usage`. */
  usage_count: number;
  requests_today: number;
}

export interface ReportOwner extends ReportFigures {
  owner: string;
  days: ReportDay[];
}

export interface ReportKey {
  key_prefix: string;
  key_hash: string;
  owner: string;
  /** `unknown` for a key in the ledger that the store does not have. */
  status: KeyStatus | 'unknown';
  units: number;
  rate_limited: number | null;
  usage_count: number | null;
  requests_today: number | null;
}

export interface ReportTotals extends ReportFigures {
  owners: number;
}

export interface Report {
  month: string;
  generated_at: string;
  /** The `--owner` filter, or null. */
  owner: string | null;
  /** Which days' rate-limited counts are included: null when there is no per-day history. */
  history: { from: string; to: string; missing: string[] } | null;
  totals: ReportTotals;
  owners: ReportOwner[];
  top_keys: ReportKey[];
}

export interface ReportInput {
  month: string;
  nowMs: number;
  owner?: string;
  /** The store's records (already filtered by owner). */
  records: KeyRecord[];
  /** The month's ledger entries (already filtered by owner). */
  entries: LedgerEntry[];
  /** Rate-limited requests per key hash for each day (`YYYY-MM-DD`) the history could be read. */
  history?: { missing: string[]; counts: Map<string, Map<string, number>> };
}

/** The days of a month as `YYYY-MM-DD`. */
export function monthDays(month: string): string[] {
  const [year, mon] = month.split('-').map(Number) as [number, number];
  const count = new Date(Date.UTC(year, mon, 0)).getUTCDate();
  return Array.from({ length: count }, (_, i) => `${month}-${String(i + 1).padStart(2, '0')}`);
}

const isoDayOf = (seconds: number): string => new Date(seconds * 1000).toISOString().slice(0, 10);

function add<K>(map: Map<K, number>, key: K, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

/**
 * The month's report: units from the ledger (per owner exactly `export`'s totals, per UTC day of
 * the window's end), all-time and today's figures from the store (exactly `usage`'s), and
 * rate-limited requests from the per-day history where it has the day.
 */
export function buildReport(input: ReportInput): Report {
  const { month, nowMs, records, history } = input;
  const entries = input.entries.filter((e) => ledgerMonth(e.window_end) === month);
  const days = monthDays(month);
  const usage = ownerUsage(records, nowMs);
  const billed = new Map(totalsByOwner(entries).map((t) => [t.owner, t]));
  const byHash = new Map(records.map((r) => [r.key_hash, r]));

  const dailyUnits = new Map<string, Map<string, number>>();
  const keyUnits = new Map<string, { units: number; owner: string; prefix: string }>();
  for (const e of entries) {
    const owner = dailyUnits.get(e.owner) ?? new Map<string, number>();
    dailyUnits.set(e.owner, owner);
    add(owner, isoDayOf(e.window_end), e.quantity);
    const key = keyUnits.get(e.key_hash) ?? { units: 0, owner: e.owner, prefix: e.key_prefix };
    key.units += e.quantity;
    keyUnits.set(e.key_hash, key);
  }

  // Rate-limited counts can only be told apart by key, so they go to the owner the store names.
  const dailyLimited = new Map<string, Map<string, number>>();
  const keyLimited = new Map<string, number>();
  for (const [day, counts] of history?.counts ?? []) {
    for (const [hash, n] of counts) {
      const record = byHash.get(hash);
      if (!record || n === 0) continue;
      const owner = dailyLimited.get(record.owner) ?? new Map<string, number>();
      dailyLimited.set(record.owner, owner);
      add(owner, day, n);
      add(keyLimited, hash, n);
    }
  }
  const covered = new Set(history?.counts.keys() ?? []);
  const limitedOn = (owner: string, day: string): number | null => (covered.has(day) ? (dailyLimited.get(owner)?.get(day) ?? 0) : null);
  const sumOrNull = (values: Iterable<number>): number | null => (covered.size === 0 ? null : [...values].reduce((a, b) => a + b, 0));

  const names = new Set([...usage.keys(), ...billed.keys()]);
  const owners: ReportOwner[] = [...names].map((owner) => {
    const u = usage.get(owner);
    return {
      owner,
      keys: u?.keys ?? 0,
      keys_with_usage: billed.get(owner)?.keys ?? 0,
      units: billed.get(owner)?.quantity ?? 0,
      rate_limited: sumOrNull(dailyLimited.get(owner)?.values() ?? []),
      usage_count: u?.usage_count ?? 0,
      requests_today: u?.requests_today ?? 0,
      days: days.map((day) => ({ day, units: dailyUnits.get(owner)?.get(day) ?? 0, rate_limited: limitedOn(owner, day) })),
    };
  });
  owners.sort((a, b) => b.units - a.units || b.usage_count - a.usage_count || a.owner.localeCompare(b.owner));

  const topKeys: ReportKey[] = [...keyUnits]
    .filter(([, k]) => k.units > 0)
    .map(([hash, k]) => {
      const record = byHash.get(hash);
      return {
        key_prefix: record?.key_prefix || k.prefix,
        key_hash: hash,
        owner: k.owner,
        status: record ? keyStatus(record, nowMs) : 'unknown',
        units: k.units,
        rate_limited: covered.size === 0 ? null : (keyLimited.get(hash) ?? 0),
        usage_count: record?.usage_count ?? null,
        requests_today: record ? todayCount(record, nowMs) : null,
      } satisfies ReportKey;
    })
    .sort((a, b) => b.units - a.units || (b.usage_count ?? 0) - (a.usage_count ?? 0) || a.key_prefix.localeCompare(b.key_prefix))
    .slice(0, TOP_KEYS);

  const total = (pick: (o: ReportOwner) => number): number => owners.reduce((sum, o) => sum + pick(o), 0);
  const coveredDays = days.filter((d) => covered.has(d));
  return {
    month,
    generated_at: new Date(nowMs).toISOString(),
    owner: input.owner ?? null,
    history: history && coveredDays.length > 0 ? { from: coveredDays[0]!, to: coveredDays.at(-1)!, missing: history.missing } : null,
    totals: {
      owners: owners.length,
      keys: total((o) => o.keys),
      keys_with_usage: total((o) => o.keys_with_usage),
      units: total((o) => o.units),
      rate_limited: sumOrNull(owners.map((o) => o.rate_limited ?? 0)),
      usage_count: total((o) => o.usage_count),
      requests_today: total((o) => o.requests_today),
    },
    owners,
    top_keys: topKeys,
  };
}
