import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeAtomic } from '../store/file-io';
import { LockLost, acquireLock, type FileLock } from '../store/lock';
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

  /**
   * Runs `run` under the outbox's lock; again from the lock when the lock was lost before `run`
   * wrote (the process was held up past the lock's lease: see lock.ts), up to three times.
   */
  private async locked<T>(run: (lock: FileLock) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const lock = await acquireLock(this.path);
      try {
        return await run(lock);
      } catch (err) {
        if (!(err instanceof LockLost) || attempt === 3) throw err;
      } finally {
        await lock.release();
      }
    }
  }

  async add(reports: UsageReport[]): Promise<void> {
    await this.locked((lock) =>
      appendLines(
        this.path,
        reports.map((report) => JSON.stringify({ report })),
        lock,
      ),
    );
  }

  async settle(identifiers: string[], how: 'ack' | 'dead'): Promise<void> {
    await this.locked((lock) =>
      appendLines(
        this.path,
        identifiers.map((id) => JSON.stringify({ [how]: id })),
        lock,
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
    await this.locked(async (lock) => {
      const { pending } = await this.read();
      await writeAtomic(this.path, pending.map((report) => JSON.stringify({ report }) + '\n').join(''), lock);
    });
  }
}
