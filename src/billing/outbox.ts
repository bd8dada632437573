import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { acquireLock, writeAtomic } from '../store/file-io';
import { appendLines, readJsonl } from './jsonl';
import type { UsageReport } from './types';

type OutboxLine = { report: UsageReport } | { ack: string } | { dead: string };

/**
 * The durable outbox of usage reports: a JSONL file of reports and of their settlements
 * (delivered or dead-lettered), appended with fsync under a lock, so several processes can share
 * it. A report is pending until a settlement line names its identifier. Compaction rewrites the
 * file (atomically, under the lock) with only the pending reports.
 */
export class Outbox {
  constructor(
    readonly path: string,
    private readonly onBadLine: (line: number) => void = () => undefined,
  ) {
    mkdirSync(dirname(path), { recursive: true });
  }

  private async locked<T>(run: () => Promise<T>): Promise<T> {
    const release = await acquireLock(this.path, () => undefined);
    try {
      return await run();
    } finally {
      await release().catch(() => undefined);
    }
  }

  async add(reports: UsageReport[]): Promise<void> {
    await this.locked(() =>
      appendLines(
        this.path,
        reports.map((report) => JSON.stringify({ report })),
      ),
    );
  }

  async settle(identifiers: string[], how: 'ack' | 'dead'): Promise<void> {
    await this.locked(() =>
      appendLines(
        this.path,
        identifiers.map((id) => JSON.stringify({ [how]: id })),
      ),
    );
  }

  /** Reports not yet settled, oldest first, one per identifier; and how many lines are settled. */
  async read(): Promise<{ pending: UsageReport[]; settledLines: number }> {
    const lines = await readJsonl<OutboxLine>(this.path, this.onBadLine);
    const settled = new Set<string>();
    for (const line of lines) {
      if ('ack' in line) settled.add(line.ack);
      else if ('dead' in line) settled.add(line.dead);
    }
    const pending = new Map<string, UsageReport>();
    for (const line of lines) {
      if ('report' in line && !settled.has(line.report.identifier) && !pending.has(line.report.identifier)) {
        pending.set(line.report.identifier, line.report);
      }
    }
    return { pending: [...pending.values()], settledLines: lines.length - pending.size };
  }

  /** Rewrites the file with only the pending reports. */
  async compact(): Promise<void> {
    await this.locked(async () => {
      const { pending } = await this.read();
      await writeAtomic(this.path, pending.map((report) => JSON.stringify({ report }) + '\n').join(''));
    });
  }
}
