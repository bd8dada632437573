import { randomBytes } from 'node:crypto';
import { DaymindError, describeError } from '../errors';
import { OnceReporter } from '../internal/report-once';
import { oneRunAtATime } from '../internal/one-run-at-a-time';
import { acquireLock, type FileLock } from '../internal/fs/lock';
import type { KeyRecord, UsageDelta } from '../store/types';
import { appendLines } from './jsonl';
import type { LocalLedgerProvider } from './ledger';
import type { Outbox } from './outbox';
import { BillingRejection, type DeadLetter } from './rejection';
import { DeliveryScheduler } from './scheduler';
import type { BillingProvider, DeliveryOutcome, UsageReport } from './types';
import { partOf, type UsagePart } from './windows';

export interface DispatcherOptions {
  /** How often a delivery round runs, in ms. */
  intervalMs: number;
  deadLetterPath: string;
  onError: (err: Error) => void;
  /** The billing window, in seconds (it divides a day). */
  windowSeconds: number;
  /** How long after a window's end its parts are closed, in ms: flushes of the window still under way. */
  closeAfterMs: number;
  /** Calls to the provider in flight at once. */
  concurrency: number;
  /** Most calls to the provider started a second. */
  callsPerSecond: number;
  /** Longest wait for one call; past it the reports are retried later. Default 30 s. */
  deliverTimeoutMs?: number;
  /**
   * Where delivered reports are also written (Stripe mode's ledger): one append a checkpoint,
   * before their acks, so a report is acknowledged only once its ledger line is on disk.
   */
  ledger?: LocalLedgerProvider;
  /** Reports the provider records without a remote call: they take no token of the ceiling. */
  unpaced?: (report: UsageReport) => boolean;
  /** The clock, in ms: windows, their closing, dead letters. Default `Date.now`. */
  now?: () => number;
  /** The account a key's usage is billed to (a report's `customer_id`). Default: its `stripe_customer_id`. */
  customerOf?: (record: KeyRecord) => string | null;
}

/** How long a round delivers before it ends (closing windows and compacting come between rounds). */
const ROUND_BUDGET_MS = 5_000;
/** How often a round writes what it delivered so far (ledger lines, acks, dead letters). */
const CHECKPOINT_MS = 1_000;

/** What the dispatcher reports to stats() and the metrics. */
export interface BillingStats {
  /** Reports waiting for the provider, and one a key and window of usage not yet closed into a report. */
  depth: number;
  /** Age in seconds of the oldest usage in a report waiting for the provider; null when none waits. */
  oldestPendingSeconds: number | null;
  /** Size of the outbox file. */
  outboxBytes: number;
}

/**
 * Billing off the request path. Each applied flush batch becomes a part in the outbox at once;
 * when a billing window has ended (plus closeAfterMs), the process that holds the delivery lock
 * closes the window's parts, of every process on the ledger directory, into one report per key
 * (and customer), and delivers reports through the DeliveryScheduler: calls in parallel, one at a
 * time per customer, under a ceiling of calls a second, a failing customer backing off alone.
 * A report rejected for good goes to the dead-letter file and to onError.
 */
export class BillingDispatcher {
  /** This process's id in the parts it writes: close() closes its own parts early. */
  readonly instance = randomBytes(6).toString('hex');
  private unsaved: UsagePart[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly problems: OnceReporter;
  private readonly scheduler: DeliveryScheduler;
  private readonly now: () => number;
  private saving: Promise<void> = Promise.resolve();
  private readonly preparing = new Set<Promise<void>>();
  /** On close, a round waits for another process's round instead of leaving it the work. */
  private closing = false;
  /** Runs one delivery round; calls during a round share the next one. */
  readonly deliver = oneRunAtATime(() => this.round());

  constructor(
    private readonly outbox: Outbox,
    private readonly provider: BillingProvider,
    private readonly options: DispatcherOptions,
  ) {
    this.problems = new OnceReporter(options.onError);
    this.now = options.now ?? Date.now;
    this.scheduler = new DeliveryScheduler(provider, {
      concurrency: options.concurrency,
      callsPerSecond: options.callsPerSecond,
      timeoutMs: options.deliverTimeoutMs ?? 30_000,
    });
  }

  async stats(): Promise<BillingStats> {
    await this.outbox.refresh();
    const state = this.outbox.state;
    const oldest = state.oldestReport();
    return {
      depth: state.depth(this.unsaved),
      oldestPendingSeconds: oldest === undefined ? null : Math.max(0, this.now() / 1000 - oldest),
      outboxBytes: this.outbox.bytes,
    };
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.deliver(), this.options.intervalMs);
    this.timer.unref();
  }

  /**
   * The recorder's hand-off: usage of a batch the store has applied, at `window.end` (Unix
   * seconds). It reaches the outbox at once, as one part; close() waits for record look-ups.
   */
  addBatch(
    batchId: string,
    deltas: UsageDelta[],
    window: { end: number },
    recordOf: (keyHash: string) => KeyRecord | undefined | Promise<KeyRecord | undefined>,
  ): void {
    const batch = { id: batchId, by: this.instance, windowSize: this.options.windowSeconds, at: window.end };
    const queued = partOf(batch, deltas, recordOf, this.options.customerOf).then((part) => {
      this.unsaved.push(part);
      return this.save();
    });
    this.preparing.add(queued);
    void queued.finally(() => this.preparing.delete(queued));
  }

  /**
   * Stops the timer, writes unsaved parts, closes this process's parts (its open windows too:
   * nobody else would bill them before their window ends) and delivers what it can within
   * `timeoutMs`.
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.closing = true;
    await Promise.allSettled([...this.preparing]);
    await this.save();
    try {
      await this.outbox.close((part) => part.by === this.instance);
    } catch (err) {
      this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', `billing delivery round failed: ${describeError(err)}`, { cause: err }));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.deliver(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.provider.close?.();
  }

  /** Writes unsaved parts to the outbox; saves run one after another. */
  private save(): Promise<void> {
    this.saving = this.saving.then(() => this.saveNow());
    return this.saving;
  }

  private async saveNow(): Promise<void> {
    if (this.unsaved.length === 0) return;
    const parts = this.unsaved.splice(0);
    try {
      await this.outbox.addParts(parts);
    } catch (err) {
      this.unsaved.unshift(...parts);
      // Once while the cause lasts, not again as the count grows: stats() has it.
      const cause = describeError(err);
      this.problems.report(
        new DaymindError(
          'ERR_DAYMIND_BILLING',
          `${cause}; ${this.unsaved.length} flush batch(es) of usage kept in memory until it can be written`,
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
    } catch (err) {
      // ELOCKED: another process is delivering; what it has not seen waits for the next round.
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') {
        const message = `billing delivery round failed: cannot take the delivery lock ${this.outbox.path}.deliver.lock: ${describeError(err)}`;
        this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', message, { cause: err }));
      }
      return;
    }
    try {
      await this.outbox.refresh();
      const closeBefore = this.now() / 1000 - this.options.windowSeconds - this.options.closeAfterMs / 1000;
      const due = (part: UsagePart) => part.window <= closeBefore;
      if ([...this.outbox.state.parts.values()].some(due)) await this.outbox.close(due);
      await this.compactIfWorthIt();
      const pending = [...this.outbox.state.reports.values()];
      // Lost (held up past the lock's lease): another process may be delivering these now.
      if (pending.length > 0) await this.send(pending, () => lock.held());
      await this.outbox.refresh();
      await this.compactIfWorthIt();
    } catch (err) {
      this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', `billing delivery round failed: ${describeError(err)}`, { cause: err }));
    } finally {
      await lock.release();
    }
  }

  /** Compacts the outbox when it pays; damaged lines go to the quarantine file, with one message. */
  private async compactIfWorthIt(): Promise<void> {
    if (!this.outbox.wantsCompaction()) return;
    const damaged = await this.outbox.compact();
    if (damaged.length === 0) return;
    const lines = damaged.map((d) => d.line).join(', ');
    this.options.onError(
      new DaymindError(
        'ERR_DAYMIND_BILLING',
        `${damaged.length} damaged line(s) of ${this.outbox.path} (line ${lines}) moved byte for byte to ${this.outbox.quarantinePath}; ` +
          'they are not billed until you repair them and append them to the outbox again',
      ),
    );
  }

  /** Delivers `pending` for up to ROUND_BUDGET_MS, writing what was delivered at every checkpoint. */
  private async send(pending: UsageReport[], stillHeld: () => boolean): Promise<void> {
    const delivered: UsageReport[] = [];
    const dead: DeadLetter[] = [];
    let written = Promise.resolve();
    const checkpoint = () => (written = written.then(() => this.checkpoint(delivered.splice(0), dead.splice(0))));
    const timer = setInterval(checkpoint, CHECKPOINT_MS);
    const settled = (report: UsageReport, outcome: DeliveryOutcome) => {
      if (outcome === null) {
        delivered.push(report);
        this.problems.clear();
      } else if (outcome instanceof BillingRejection) {
        dead.push({ report, reason: outcome.message, at: this.now() / 1000 });
      } else {
        this.problems.report(
          new DaymindError(
            'ERR_DAYMIND_BILLING',
            `billing provider "${this.provider.name}" failed, retrying with backoff: ${describeError(outcome)}`,
            { cause: outcome },
          ),
        );
      }
    };
    try {
      await this.scheduler.run(pending, performance.now() + ROUND_BUDGET_MS, settled, this.options.unpaced, stillHeld);
    } finally {
      clearInterval(timer);
      await checkpoint();
    }
  }

  /** Writes delivered reports to the ledger (Stripe mode), then their acks; dead letters, then theirs. */
  private async checkpoint(delivered: UsageReport[], dead: DeadLetter[]): Promise<void> {
    try {
      if (delivered.length > 0 && this.options.ledger) {
        const outcomes = await this.options.ledger.deliverBatch(delivered);
        const failed = outcomes.find((o) => o !== null);
        if (failed) {
          // Not acknowledged: delivered again later (Stripe answers from the identifier), and the ledger line written then.
          this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', describeError(failed), { cause: failed }));
          delivered = delivered.filter((_, i) => outcomes[i] === null);
        }
      }
      await this.outbox.settle(
        delivered.map((r) => r.identifier),
        'ack',
      );
      if (dead.length > 0) {
        await appendLines(
          this.options.deadLetterPath,
          dead.map((letter) => JSON.stringify(letter)),
        );
        await this.outbox.settle(
          dead.map((letter) => letter.report.identifier),
          'dead',
        );
        for (const { report, reason } of dead) {
          this.options.onError(
            new DaymindError(
              'ERR_DAYMIND_BILLING',
              `usage report ${report.identifier} (${report.quantity} unit(s) of ${report.key_prefix}) was rejected for good and written to ${this.options.deadLetterPath}: ${reason}`,
            ),
          );
        }
      }
    } catch (err) {
      this.problems.report(new DaymindError('ERR_DAYMIND_BILLING', `billing delivery round failed: ${describeError(err)}`, { cause: err }));
    }
  }
}
