import { createHash } from 'node:crypto';
import type { KeyRecord, UsageDelta } from '../store/types';
import type { UsageReport } from './types';

/**
 * A key's usage in one part: units, then the key's display prefix, owner and Stripe customer as
 * the store had them when the usage was flushed.
 */
export type PartEntry = [units: number, keyPrefix: string, owner: string, customerId: string | null];

/**
 * The usage of one applied flush batch (or of several, folded together), per key, in one billing
 * window. Parts are written to the outbox as soon as the store has applied the batch, so a killed
 * process loses none of them; they become reports when their window is closed.
 */
export interface UsagePart {
  /** The flush batch's id; for a fold of several parts, `f_` and a hash of their ids. */
  id: string;
  /** The process that wrote it (a random id per dispatcher). */
  by: string;
  /** Unix seconds: the start of the billing window. */
  window: number;
  /** Unix seconds: when its (last) flush batch was formed, inside the window. */
  at: number;
  keys: Record<string, PartEntry>;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * The length in seconds of a billing window written `30s`, `1m`, `5m`, `1h`, `1d`..., or a
 * reason why not. Windows must divide a day, so that they start at the same times every UTC day
 * and none straddles a midnight (or a month's end).
 */
export function windowSeconds(text: unknown): number | string {
  const match = typeof text === 'string' ? /^\s*(\d{1,5})\s*([smhd])\s*$/.exec(text) : null;
  if (!match) return `must be a duration such as "1m", "5m" or "1h" (s, m, h or d), got ${JSON.stringify(text)}`;
  const seconds = Number(match[1]) * UNITS[match[2]!]!;
  if (seconds < 1 || seconds > 86_400 || 86_400 % seconds !== 0) {
    return `must divide a day evenly (1s to 1d: 30s, 1m, 5m, 15m, 1h, 6h, 1d...), got ${JSON.stringify(text)}`;
  }
  return seconds;
}

/** Start (Unix seconds) of the window of `size` seconds that holds `seconds`. */
export function windowOf(seconds: number, size: number): number {
  return Math.floor(seconds / size) * size;
}

/**
 * The part of one applied flush batch. A key the store no longer has (deleted before the flush)
 * is still billed, with an empty owner and prefix and no customer: its requests were served.
 * `customerOf` names the account billed (default: the key's Stripe customer).
 */
export async function partOf(
  batch: { id: string; by: string; windowSize: number; at: number },
  deltas: UsageDelta[],
  recordOf: (keyHash: string) => KeyRecord | undefined | Promise<KeyRecord | undefined>,
  customerOf: (record: KeyRecord) => string | null = (record) => record.stripe_customer_id ?? null,
): Promise<UsagePart> {
  const keys: Record<string, PartEntry> = {};
  for (const delta of deltas) {
    let record: KeyRecord | undefined;
    try {
      const found = recordOf(delta.key_hash);
      record = found instanceof Promise ? await found : found;
    } catch {
      record = undefined; // the store cannot answer: bill the units without an owner
    }
    keys[delta.key_hash] = [delta.units, record?.key_prefix ?? '', record?.owner ?? '', record ? customerOf(record) : null];
  }
  return { id: batch.id, by: batch.by, window: windowOf(batch.at, batch.windowSize), at: batch.at, keys };
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * The identifier of the report of one key and customer in one window, made of the given parts:
 * the same parts always give the same identifier, other parts another one.
 */
export function reportIdentifier(window: number, keyHash: string, customerId: string | null, partIds: string[]): string {
  return 'dmu_' + sha(`${window}:${keyHash}:${customerId ?? ''}:${[...partIds].sort().join(',')}`).slice(0, 40);
}

/**
 * Closes parts into reports: one per window, key and customer (a key whose customer changed
 * within the window has one report per customer). Owner and prefix are the latest seen.
 */
export function reportsOf(parts: UsagePart[]): UsageReport[] {
  const groups = new Map<string, { report: UsageReport; ids: string[]; at: number }>();
  for (const part of parts) {
    for (const [keyHash, [units, prefix, owner, customer]] of Object.entries(part.keys)) {
      const id = `${part.window}:${keyHash}:${customer ?? ''}`;
      const group = groups.get(id);
      if (!group) {
        const report: UsageReport = {
          identifier: '',
          key_hash: keyHash,
          key_prefix: prefix,
          owner,
          customer_id: customer,
          quantity: units,
          window_start: part.window,
          window_end: part.at,
        };
        groups.set(id, { report, ids: [part.id], at: part.at });
        continue;
      }
      group.report.quantity += units;
      group.ids.push(part.id);
      if (part.at >= group.at) {
        group.at = part.at;
        group.report.key_prefix = prefix;
        group.report.owner = owner;
        group.report.window_end = part.at;
      }
    }
  }
  const reports = [...groups.values()].map(({ report, ids }) => {
    report.identifier = reportIdentifier(report.window_start, report.key_hash, report.customer_id, ids);
    return report;
  });
  return reports.sort((a, b) => a.window_start - b.window_start || (a.key_hash < b.key_hash ? -1 : a.key_hash > b.key_hash ? 1 : 0));
}

/**
 * Folds parts of one process and window into one, to keep the outbox small: units added per key,
 * the latest owner and prefix kept. A part in which a key has another customer than in the fold
 * stays as it is (its units must go to that customer). Returns the parts to keep, folds first.
 */
export function foldParts(parts: UsagePart[]): UsagePart[] {
  const folds = new Map<string, { part: UsagePart; ids: string[] }>();
  const kept: UsagePart[] = [];
  for (const part of parts) {
    const id = `${part.window}:${part.by}`;
    const fold = folds.get(id);
    if (!fold) {
      folds.set(id, { part: { ...part, keys: { ...part.keys } }, ids: [part.id] });
      continue;
    }
    const into = fold.part.keys;
    if (Object.entries(part.keys).some(([hash, entry]) => into[hash] && into[hash][3] !== entry[3])) {
      kept.push(part);
      continue;
    }
    const later = part.at >= fold.part.at;
    for (const [hash, entry] of Object.entries(part.keys)) {
      const had = into[hash];
      if (!had) into[hash] = [...entry];
      else into[hash] = later ? [had[0] + entry[0], entry[1], entry[2], entry[3]] : [had[0] + entry[0], had[1], had[2], had[3]];
    }
    if (later) fold.part.at = part.at;
    fold.ids.push(part.id);
  }
  const folded = [...folds.values()].map(({ part, ids }) =>
    ids.length === 1 ? part : { ...part, id: 'f_' + sha(ids.sort().join(',')).slice(0, 32) },
  );
  return [...folded, ...kept];
}
