/** Requests of one key on one UTC day. */
export interface DayCounts {
  /** Requests allowed. */
  allowed: number;
  /** Requests refused with 429 (rate limits). */
  rate_limited: number;
}

/** Counts of one key on one day, as the usage recorder hands them to a {@link UsageHistory}. */
export interface HistoryEntry extends DayCounts {
  key_hash: string;
  /** The UTC day as `YYYYMMDD`. */
  day: number;
}

/** How many days of history are kept: 90 are served, a few more kept so a day never rolls off early. */
export const HISTORY_RETENTION_DAYS = 100;

/**
 * Per-key, per-UTC-day request counts, kept for {@link HISTORY_RETENTION_DAYS} days. The usage
 * recorder adds to it once per flush, off the request path; `/usage/history` reads it.
 */
export interface UsageHistory {
  /**
   * Adds the entries to the stored counts (never overwrites). `batchId` is unique per batch and
   * kept when a failed batch is offered again, so a store whose write can fail after being applied
   * can apply each batch once. Rejects when nothing was written.
   */
  add(entries: HistoryEntry[], batchId: string): Promise<void>;
  /** The counts of a key on each of `days` (`YYYYMMDD`), in the same order; zeros for none. */
  read(keyHash: string, days: readonly number[]): Promise<DayCounts[]>;
  /** Every key's counts on each of `days`, by day then key hash (reports). */
  readDays(days: readonly number[]): Promise<Map<number, Map<string, DayCounts>>>;
  close?(): Promise<void>;
}

/** `YYYYMMDD` of the UTC day `offset` days from the one of `ms`. */
export function dayOffset(ms: number, offset: number): number {
  const d = new Date(ms + offset * 86_400_000);
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

/** `YYYYMMDD` as `YYYY-MM-DD`. */
export function isoDay(day: number): string {
  const s = String(day);
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
}

/** The last `count` UTC days up to the one of `ms`, oldest first, as `YYYYMMDD`. */
export function lastDays(ms: number, count: number): number[] {
  const days: number[] = [];
  for (let i = count - 1; i >= 0; i--) days.push(dayOffset(ms, -i));
  return days;
}
