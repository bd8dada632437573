import { randomUUID } from 'node:crypto';
import { DaymindError, describeError } from '../errors';
import { OnceReporter } from '../report-once';
import { addUsage } from '../store/record';
import type { KeyRecord, KeyStore, UsageDelta } from '../store/types';
import { utcDay } from './day';

/** The counters of a key as they stand now: stored values plus usage not yet flushed. */
export interface LiveUsage {
  usage_count: number;
  requests_today: number;
  requests_day: number;
  last_used: number | null;
}

/** Usage handed to the store as one unit, retried as the same unit (same id) until it is applied. */
interface Batch {
  id: string;
  deltas: Map<string, UsageDelta>;
  /** The flush window the usage was counted in, Unix seconds. */
  window: { start: number; end: number };
}

/** Called after a batch reached the store (billing hangs off this). */
export type BatchListener = (batchId: string, deltas: UsageDelta[], window: { start: number; end: number }) => void;

/**
 * Counts allowed usage in memory at once and writes it behind to the store: every
 * `flushIntervalMs` the pending deltas are handed to `store.applyUsage` (off the request path).
 * A failed flush keeps its deltas for the next one, so a store outage loses no count.
 */
export class UsageRecorder {
  private pending = new Map<string, UsageDelta>();
  /** The batch being written or waiting for a retry: at most one at a time, in order. */
  private unsettled: Batch | undefined;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** While one problem lasts it is reported once, not on every flush. */
  private readonly failures: OnceReporter;

  private windowStart = Date.now() / 1000;

  constructor(
    private readonly store: KeyStore,
    private readonly flushIntervalMs: number,
    private readonly onError: (err: Error) => void,
    private readonly onBatchApplied?: BatchListener,
  ) {
    this.failures = new OnceReporter(onError);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Counts `units` for a key at `nowMs`. Memory only. */
  record(keyHash: string, units: number, nowMs: number): void {
    const day = utcDay(nowMs);
    const seconds = nowMs / 1000;
    const delta = this.pending.get(keyHash);
    if (!delta) {
      this.pending.set(keyHash, { key_hash: keyHash, units, last_used: seconds, days: [{ day, units }] });
      return;
    }
    delta.units += units;
    if (seconds > delta.last_used) delta.last_used = seconds;
    const last = delta.days[delta.days.length - 1]!;
    if (last.day === day) last.units += units;
    else delta.days.push({ day, units });
  }

  /** The record's counters with unflushed usage added, `requests_today` as of `nowMs`. */
  live(record: KeyRecord, nowMs: number): LiveUsage {
    const view = {
      usage_count: record.usage_count,
      requests_today: record.requests_today,
      requests_day: record.requests_day,
      last_used: record.last_used,
    };
    const unsettled = this.unsettled?.deltas.get(record.key_hash);
    if (unsettled) addUsage(view, unsettled);
    const pending = this.pending.get(record.key_hash);
    if (pending) addUsage(view, pending);
    const today = utcDay(nowMs);
    if (view.requests_day !== today) {
      view.requests_today = 0;
    }
    return view;
  }

  /** Units counted but not yet written to the store. */
  get unflushedUnits(): number {
    let total = 0;
    for (const d of this.pending.values()) total += d.units;
    for (const d of this.unsettled?.deltas.values() ?? []) total += d.units;
    return total;
  }

  /**
   * Writes pending usage to the store. Concurrent calls share one flush. Rejects (after reporting
   * to onError) when the store refused; the usage stays in memory and the same batch, with the
   * same id, is offered again first, so a store that did apply it (a lost reply) can tell.
   */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0 && !this.unsettled) return Promise.resolve();
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Stops the timer and writes what is pending; rejects when it could not be written. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing?.catch(() => undefined);
    // Requests still finishing may count a little more; a few passes write that too.
    for (let i = 0; i < 5 && (this.pending.size > 0 || this.unsettled); i++) await this.flush();
  }

  /**
   * Writes a batch waiting for a retry, then what is pending now. Usage counted meanwhile waits
   * for the next flush: under steady traffic a flush must end.
   */
  private async flushOnce(): Promise<void> {
    const passes = this.unsettled ? 2 : 1;
    for (let pass = 0; pass < passes && (this.unsettled || this.pending.size > 0); pass++) {
      if (!this.unsettled) {
        const end = Date.now() / 1000;
        this.unsettled = { id: randomUUID(), deltas: this.pending, window: { start: this.windowStart, end } };
        this.windowStart = end;
        this.pending = new Map();
      }
      const batch = this.unsettled;
      const applied = () => {
        if (this.unsettled === batch) this.unsettled = undefined;
      };
      const deltas = [...batch.deltas.values()];
      try {
        await this.store.applyUsage(deltas, { batchId: batch.id, onApplied: applied });
        applied();
        this.failures.clear();
      } catch (err) {
        const cause = describeError(err);
        const error = new DaymindError(
          'ERR_DAYMIND_USAGE_FLUSH',
          `usage flush failed, ${this.unflushedUnits} unit(s) kept in memory for the next attempt: ${cause}`,
          { cause: err },
        );
        this.failures.report(error, cause);
        throw error;
      }
      this.onBatchApplied?.(batch.id, deltas, batch.window);
    }
  }
}
