import { DaymindError, describeError } from '../errors';
import { OnceReporter } from '../report-once';
import { coalesced } from '../store/coalesce';
import { acquireLock, type FileLock } from '../store/lock';
import { appendLines } from './jsonl';
import type { Outbox } from './outbox';
import { BillingRejection, type DeadLetter } from './rejection';
import type { BillingProvider, UsageReport } from './types';

export interface DispatcherOptions {
  /** How often pending reports are delivered, in ms. */
  intervalMs: number;
  deadLetterPath: string;
  onError: (err: Error) => void;
  /** Longest wait for one `deliver()`; past it the report is retried later. Default 30 s. */
  deliverTimeoutMs?: number;
  /** The clock, in ms, for the time stamped on dead letters. Default `Date.now`. */
  now?: () => number;
}

/** `promise`, or a rejection after `ms`: a provider that never answers must not stop delivery. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const MAX_BACKOFF_MS = 60_000;
const COMPACT_AFTER_SETTLED_LINES = 1000;

/**
 * Carries usage reports from the outbox to the billing provider, off the request path: one
 * process at a time delivers (a lock beside the outbox), a report failing for a passing reason is
 * retried with exponential backoff (0.5 s doubling up to 60 s), one rejected for good goes to the
 * dead-letter file and is reported through onError.
 */
export class BillingDispatcher {
  private unsaved: UsageReport[] = [];
  private readonly backoff = new Map<string, { attempts: number; next: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly problems: OnceReporter;
  private saving: Promise<void> = Promise.resolve();
  private readonly preparing = new Set<Promise<void>>();
  /** On close, a round waits for another process's round instead of leaving it the work. */
  private closing = false;
  /** Runs one delivery round; calls during a round share the next one. */
  readonly deliver = coalesced(() => this.round());

  constructor(
    private readonly outbox: Outbox,
    private readonly provider: BillingProvider,
    private readonly options: DispatcherOptions,
  ) {
    this.problems = new OnceReporter(options.onError);
  }

  /** Reports waiting for delivery: in the outbox and not yet saved to it. */
  async pendingCount(): Promise<number> {
    const { pending } = await this.outbox.read();
    return pending.length + this.unsaved.length;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.deliver(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Takes reports of applied usage; they reach the outbox at once and the provider in the next round. */
  enqueue(reports: UsageReport[]): Promise<void> {
    this.unsaved.push(...reports);
    return this.save();
  }

  /** Takes reports still being put together (record look-ups); close() waits for them. */
  enqueueLater(reports: Promise<UsageReport[]>): void {
    const queued = reports.then((r) => this.enqueue(r));
    this.preparing.add(queued);
    void queued.finally(() => this.preparing.delete(queued));
  }

  /** Stops the timer, writes unsaved reports and delivers what it can within `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.closing = true;
    await Promise.allSettled([...this.preparing]);
    await this.save();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.deliver(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.provider.close?.();
  }

  /** Writes unsaved reports to the outbox; saves run one after another. */
  private save(): Promise<void> {
    this.saving = this.saving.then(() => this.saveNow());
    return this.saving;
  }

  private async saveNow(): Promise<void> {
    if (this.unsaved.length === 0) return;
    const batch = this.unsaved.splice(0);
    try {
      await this.outbox.add(batch);
    } catch (err) {
      this.unsaved.unshift(...batch);
      // Once while the cause lasts, not again as the count grows: pendingCount() (stats) has it.
      const cause = describeError(err);
      this.problems.report(
        new DaymindError(
          'ERR_DAYMIND_BILLING',
          `cannot write the billing outbox ${this.outbox.path}; ${this.unsaved.length} report(s) kept in memory: ${cause}`,
          { cause: err },
        ),
        `outbox: ${cause}`,
      );
    }
  }

  private async round(): Promise<void> {
    await this.save();
    let lock: FileLock;
    try {
      // One try, or on close a wait of a few seconds. A lock left by a killed process is taken
      // over at once (see lock.ts), so billing is not held back by it.
      lock = await acquireLock(this.outbox.path + '.deliver', this.closing ? 5_000 : 0);
    } catch {
      return; // another process is delivering; what it has not seen waits for the next round
    }
    try {
      const { pending, settledLines } = await this.outbox.read();
      const delivered: string[] = [];
      let deadLettered = 0;
      const now = Date.now();
      for (const report of pending) {
        // Lost (held up past the lock's lease): another process may be delivering these now.
        if (!lock.held()) break;
        const wait = this.backoff.get(report.identifier);
        if (wait && wait.next > now) continue;
        try {
          await withTimeout(this.provider.deliver(report), this.options.deliverTimeoutMs ?? 30_000, `deliver() of "${this.provider.name}"`);
          delivered.push(report.identifier);
          this.backoff.delete(report.identifier);
          this.problems.clear();
        } catch (err) {
          if (err instanceof BillingRejection) {
            await this.deadLetter(report, err.message);
            deadLettered++;
            continue;
          }
          const attempts = (wait?.attempts ?? 0) + 1;
          this.backoff.set(report.identifier, { attempts, next: Date.now() + Math.min(500 * 2 ** (attempts - 1), MAX_BACKOFF_MS) });
          this.problems.report(
            new DaymindError(
              'ERR_DAYMIND_BILLING',
              `billing provider "${this.provider.name}" failed, retrying with backoff: ${describeError(err)}`,
              { cause: err },
            ),
          );
          break;
        }
      }
      if (delivered.length > 0) await this.outbox.settle(delivered, 'ack');
      const nothingLeft = pending.length > 0 && pending.length === delivered.length + deadLettered;
      if (nothingLeft || settledLines + delivered.length + deadLettered >= COMPACT_AFTER_SETTLED_LINES) {
        await this.outbox.compact();
      }
    } catch (err) {
      this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', `billing delivery round failed: ${describeError(err)}`, { cause: err }));
    } finally {
      await lock.release();
    }
  }

  private async deadLetter(report: UsageReport, reason: string): Promise<void> {
    const letter: DeadLetter = { report, reason, at: (this.options.now ?? Date.now)() / 1000 };
    await appendLines(this.options.deadLetterPath, [JSON.stringify(letter)]);
    await this.outbox.settle([report.identifier], 'dead');
    this.backoff.delete(report.identifier);
    this.options.onError(
      new DaymindError(
        'ERR_DAYMIND_BILLING',
        `usage report ${report.identifier} (${report.quantity} unit(s) of ${report.key_prefix}) was rejected for good and written to ${this.options.deadLetterPath}: ${reason}`,
      ),
    );
  }
}
