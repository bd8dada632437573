import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeError } from '../errors';
import { appendLines, readJsonl } from './jsonl';
import type { BillingProvider, DeliveryOutcome, UsageReport } from './types';

/** One line of the usage ledger. */
export interface LedgerEntry {
  /** Unix seconds when the line was written. */
  time: number;
  window_start: number;
  window_end: number;
  key_prefix: string;
  key_hash: string;
  owner: string;
  customer_id: string | null;
  quantity: number;
  identifier: string;
}

/** `YYYY-MM` (UTC) of a Unix time in seconds. */
export function ledgerMonth(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 7);
}

export function ledgerPath(dir: string, month: string): string {
  return join(dir, `ledger-${month}.jsonl`);
}

/**
 * The local usage ledger: one JSON line per report in `ledger-YYYY-MM.jsonl` (the month of the
 * window's end), appended with fsync, never rewritten. Reports come in batches: one append and one
 * fsync per month file a batch touches, not one a report. A report delivered twice (a crash
 * between writing and acknowledging) appears twice with the same identifier; {@link readLedger}
 * keeps one.
 */
export class LocalLedgerProvider implements BillingProvider {
  readonly name = 'local';
  /** A whole delivery round in one call. */
  readonly batchSize = 100_000;

  constructor(
    readonly dir: string,
    /** The clock, in ms, for each line's `time`. */
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async deliver(report: UsageReport): Promise<void> {
    const [outcome] = await this.deliverBatch([report]);
    if (outcome) throw outcome;
  }

  async deliverBatch(reports: UsageReport[]): Promise<DeliveryOutcome[]> {
    const time = this.now() / 1000;
    const byMonth = new Map<string, string[]>();
    for (const report of reports) {
      const entry: LedgerEntry = {
        time,
        window_start: report.window_start,
        window_end: report.window_end,
        key_prefix: report.key_prefix,
        key_hash: report.key_hash,
        owner: report.owner,
        customer_id: report.customer_id,
        quantity: report.quantity,
        identifier: report.identifier,
      };
      const month = ledgerMonth(report.window_end);
      const lines = byMonth.get(month);
      if (lines) lines.push(JSON.stringify(entry));
      else byMonth.set(month, [JSON.stringify(entry)]);
    }
    const failed = new Map<string, Error>();
    for (const [month, lines] of byMonth) {
      const path = ledgerPath(this.dir, month);
      try {
        await appendLines(path, lines);
      } catch (err) {
        failed.set(month, new Error(`cannot write the usage ledger ${path}: ${describeError(err)}`, { cause: err }));
      }
    }
    return reports.map((report) => failed.get(ledgerMonth(report.window_end)) ?? null);
  }
}

/** The ledger entries of the given months, one per identifier. */
export async function readLedger(dir: string, months: string[], onBadLine?: (file: string, line: number) => void): Promise<LedgerEntry[]> {
  const seen = new Set<string>();
  const entries: LedgerEntry[] = [];
  for (const month of months) {
    const file = ledgerPath(dir, month);
    for (const entry of await readJsonl<LedgerEntry>(file, (line) => onBadLine?.(file, line))) {
      if (seen.has(entry.identifier)) continue;
      seen.add(entry.identifier);
      entries.push(entry);
    }
  }
  return entries;
}
