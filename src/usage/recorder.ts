import { randomUUID } from 'node:crypto';
import { DaymindError, describeError } from '../errors';
import type { DaymindStats } from '../http/observe';
import { OnceReporter } from '../internal/report-once';
import { addUsage, type RawRecord } from '../store/record';
import { SLICE_BUDGET_MS, WorkSlicer } from '../internal/slicer';
import type { KeyRecord, KeyStore, UsageDelta } from '../store/types';
import { utcDay } from './day';
import type { DayCounts, HistoryEntry, UsageHistory } from './history';

/** Per-day counts waiting for the history, by `day:keyHash`. */
type HistoryCounts = Map<string, HistoryEntry>;

function addToHistory(counts: HistoryCounts, keyHash: string, day: number, allowed: number, rateLimited: number): void {
  const id = `${day}:${keyHash}`;
  const entry = counts.get(id);
  if (entry) {
    entry.allowed += allowed;
    entry.rate_limited += rateLimited;
  } else {
    counts.set(id, { key_hash: keyHash, day, allowed, rate_limited: rateLimited });
  }
}

/** The counters of a key as they stand now: stored values plus usage not yet flushed. */
export interface LiveUsage {
  usage_count: number;
  requests_today: number;
  requests_day: number;
  requests_this_month: number;
  requests_month: number;
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

  private windowStart: number;
  private lastFlushDurationSeconds: number | null = null;
  private lastFlushAt: number | null = null;
  private flushErrors = 0;

  /** Rate-limited requests not yet handed to the history. */
  private limited: HistoryCounts = new Map();
  /** Rate-limited counts being folded into the next history head (see nextHistoryHead). */
  private limitedFolding: HistoryCounts | undefined;
  /** History counts written or waiting for a retry (with the id they were first offered under). */
  private historyHead: { id: string; counts: HistoryCounts } | undefined;
  /**
   * Batches applied to the store whose per-day counts wait for the history. Kept as they are (a
   * batch joins in O(1) when the store applied it), folded into counts by nextHistoryHead.
   */
  private settled: Batch[] = [];
  /** How long the history fold runs before it yields to the event loop, in ms (tests set 0: a turn after each key). */
  sliceBudgetMs = SLICE_BUDGET_MS;

  constructor(
    private readonly store: KeyStore,
    private readonly flushIntervalMs: number,
    private readonly onError: (err: Error) => void,
    private readonly onBatchApplied?: BatchListener,
    /** Where per-day history goes; without one none is kept. */
    readonly history?: UsageHistory,
    /** The clock, in ms, for the times of flushes and billing windows and for "today". */
    private readonly now: () => number = Date.now,
  ) {
    this.failures = new OnceReporter(onError);
    this.windowStart = now() / 1000;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Units of requests allowed but not finished yet (counted or dropped when they finish), by key. */
  private readonly inFlight = new Map<string, { units: number; credits: number; requests: number }>();

  /**
   * Holds `units` (`credits` of them from prepaid credits) of a request in progress; `requests`
   * is 0 for more units of a request already held.
   */
  reserve(keyHash: string, units: number, credits: number, requests: number): void {
    const held = this.inFlight.get(keyHash);
    if (held) {
      held.units += units;
      held.credits += credits;
      held.requests += requests;
    } else this.inFlight.set(keyHash, { units, credits, requests });
  }

  /** Lets go of a reservation: the request counts (`record`) or does not. */
  release(keyHash: string, units: number, credits: number, requests: number): void {
    const held = this.inFlight.get(keyHash);
    if (!held) return;
    held.units -= units;
    held.credits -= credits;
    held.requests -= requests;
    if (held.units <= 0 && held.credits <= 0 && held.requests <= 0) this.inFlight.delete(keyHash);
  }

  /** Units and credits of a key counted here but not in the store yet, in-flight ones included. */
  unflushed(keyHash: string, month: number): { monthUnits: number; credits: number } {
    const held = this.inFlight.get(keyHash);
    let monthUnits = held?.units ?? 0;
    let credits = held?.credits ?? 0;
    for (const delta of [this.unsettled?.deltas.get(keyHash), this.pending.get(keyHash)]) {
      if (!delta) continue;
      credits += delta.credits ?? 0;
      for (const d of delta.days) if (Math.floor(d.day / 100) === month) monthUnits += d.units;
    }
    return { monthUnits, credits };
  }

  /**
   * Counts `units` for a key at `nowMs`, `credits` of them spent from its prepaid credits, as
   * `requests` requests (0 for more units of a request counted already). Memory only.
   */
  record(keyHash: string, units: number, nowMs: number, credits = 0, requests = 1): void {
    const day = utcDay(nowMs);
    const seconds = nowMs / 1000;
    const delta = this.pending.get(keyHash);
    if (!delta) {
      const fresh: UsageDelta = { key_hash: keyHash, units, last_used: seconds, days: [{ day, units, requests }] };
      if (credits) fresh.credits = credits;
      this.pending.set(keyHash, fresh);
      return;
    }
    if (credits) delta.credits = (delta.credits ?? 0) + credits;
    delta.units += units;
    if (seconds > delta.last_used) delta.last_used = seconds;
    const last = delta.days[delta.days.length - 1]!;
    if (last.day === day) {
      last.units += units;
      last.requests = (last.requests ?? 0) + requests;
    } else delta.days.push({ day, units, requests });
  }

  /** Counts a request of a key refused by a rate limit, for the per-day history. Memory only. */
  recordRateLimited(keyHash: string, nowMs: number): void {
    if (this.history) addToHistory(this.limited, keyHash, utcDay(nowMs), 0, 1);
  }

  /** A key's counts on `day` that are not in the history yet (pending usage included). */
  unwrittenHistory(keyHash: string, day: number): DayCounts {
    const counts: DayCounts = { allowed: 0, rate_limited: 0 };
    const id = `${day}:${keyHash}`;
    for (const source of [this.historyHead?.counts, this.limitedFolding, this.limited]) {
      const entry = source?.get(id);
      if (entry) {
        counts.allowed += entry.allowed;
        counts.rate_limited += entry.rate_limited;
      }
    }
    // Applied batches waiting for the history, the batch being written, and pending usage.
    const deltas = [
      ...this.settled.map((batch) => batch.deltas.get(keyHash)),
      this.unsettled?.deltas.get(keyHash),
      this.pending.get(keyHash),
    ];
    for (const delta of deltas) {
      for (const d of delta?.days ?? []) if (d.day === day) counts.allowed += d.requests ?? 0;
    }
    // Requests still in progress (this one, when asked from a route) count on today.
    if (day === utcDay(this.now())) counts.allowed += this.inFlight.get(keyHash)?.requests ?? 0;
    return counts;
  }

  /** The record's counters with unflushed usage added, `requests_today` as of `nowMs`. */
  live(record: KeyRecord, nowMs: number): LiveUsage {
    const view: LiveUsage = {
      usage_count: record.usage_count,
      requests_today: record.requests_today,
      requests_day: record.requests_day,
      requests_this_month: record.requests_this_month ?? 0,
      requests_month: record.requests_month ?? 0,
      last_used: record.last_used,
    };
    const unsettled = this.unsettled?.deltas.get(record.key_hash);
    if (unsettled) addUsage(view as unknown as RawRecord, unsettled);
    const pending = this.pending.get(record.key_hash);
    if (pending) addUsage(view as unknown as RawRecord, pending);
    const today = utcDay(nowMs);
    if (view.requests_day !== today) {
      view.requests_today = 0;
      view.requests_day = today;
    }
    const month = Math.floor(today / 100);
    if (view.requests_month !== month) {
      view.requests_this_month = 0;
      view.requests_month = month;
    }
    const held = this.inFlight.get(record.key_hash)?.units ?? 0;
    view.usage_count += held;
    view.requests_today += held;
    view.requests_this_month += held;
    return view;
  }

  /** The last successful flush (duration, Unix seconds), how many flushes failed, and the units not written yet. */
  flushStats(): Pick<DaymindStats, 'lastFlushDurationSeconds' | 'lastFlushAt' | 'flushErrors' | 'unflushedUnits'> {
    const { lastFlushDurationSeconds, lastFlushAt, flushErrors, unflushedUnits } = this;
    return { lastFlushDurationSeconds, lastFlushAt, flushErrors, unflushedUnits };
  }

  private historyWaiting(): boolean {
    return this.historyHead !== undefined || this.settled.length > 0 || this.limited.size > 0;
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
    if (this.pending.size === 0 && !this.unsettled && !this.historyWaiting()) {
      // Nothing to write is a successful flush too: the age of the last flush stays a liveness signal.
      this.lastFlushAt = this.now() / 1000;
      return Promise.resolve();
    }
    const started = performance.now();
    this.flushing = this.flushOnce()
      .then(
        () => {
          this.lastFlushDurationSeconds = (performance.now() - started) / 1000;
          this.lastFlushAt = this.now() / 1000;
        },
        (err: unknown) => {
          this.flushErrors++;
          throw err;
        },
      )
      .finally(() => {
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
    for (let i = 0; i < 5 && (this.pending.size > 0 || this.unsettled || this.historyWaiting()); i++) await this.flush();
  }

  /**
   * Writes a batch waiting for a retry, then what is pending now. Usage counted meanwhile waits
   * for the next flush: under steady traffic a flush must end.
   */
  private async flushOnce(): Promise<void> {
    const passes = this.unsettled ? 2 : 1;
    for (let pass = 0; pass < passes && (this.unsettled || this.pending.size > 0); pass++) {
      if (!this.unsettled) {
        const end = this.now() / 1000;
        this.unsettled = { id: randomUUID(), deltas: this.pending, window: { start: this.windowStart, end } };
        this.windowStart = end;
        this.pending = new Map();
      }
      const batch = this.unsettled;
      // Usage leaves `unsettled` and joins the history's queue in one step, so that live views
      // of today's history never miss it in between; the whole batch moves, whatever its size.
      const applied = () => {
        if (this.unsettled !== batch) return;
        this.unsettled = undefined;
        if (this.history) this.settled.push(batch);
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
    await this.flushHistory();
  }

  /** History writes started so far, and the one in progress. */
  private historyWrites = 0;
  private historyWriting: Promise<unknown> | undefined;

  /**
   * Reads stored history with `read` and adds what is not written yet, consistently: a read that
   * overlapped a history write (counts moving from memory to the store) is done again.
   */
  async readHistory<T>(read: () => Promise<T>, addUnwritten: (stored: T) => T): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      await this.historyWriting?.catch(() => undefined);
      const writes = this.historyWrites;
      const stored = await read();
      if ((writes === this.historyWrites && !this.historyWriting) || attempt >= 10) return addUnwritten(stored);
    }
  }

  /**
   * Hands per-day counts to the history: a batch waiting for a retry first (same id), then what
   * came since. A failure keeps them for the next flush.
   */
  private async flushHistory(): Promise<void> {
    const history = this.history;
    if (!history) return;
    for (let pass = 0; pass < 2 && this.historyWaiting(); pass++) {
      const head = this.historyHead ?? (await this.nextHistoryHead());
      try {
        this.historyWrites++;
        this.historyWriting = history.add([...head.counts.values()], head.id);
        await this.historyWriting;
      } catch (err) {
        const cause = describeError(err);
        this.failures.report(
          new DaymindError('ERR_DAYMIND_USAGE_FLUSH', `usage history write failed, counts kept in memory for the next attempt: ${cause}`, {
            cause: err,
          }),
          cause,
        );
        return;
      } finally {
        this.historyWriting = undefined;
      }
      this.historyHead = undefined;
    }
  }

  /**
   * Makes the settled batches and the rate-limited counts the next history head. A flush of many
   * keys has a count per key, so the counts are built in slices (WorkSlicer), with requests
   * going on meanwhile; the sources stay visible to live views until the head takes their place
   * in one step, so every request is counted exactly once throughout.
   */
  private async nextHistoryHead(): Promise<{ id: string; counts: HistoryCounts }> {
    const limited = this.limited;
    this.limited = new Map();
    this.limitedFolding = limited;
    const batches = this.settled.slice();
    const counts: HistoryCounts = new Map();
    const slicer = new WorkSlicer(this.sliceBudgetMs);
    for (const [id, entry] of limited) {
      counts.set(id, { ...entry }); // a copy: the batches add to it while live views still read `limited`
      if (slicer.due()) await slicer.yield();
    }
    for (const batch of batches) {
      for (const delta of batch.deltas.values()) {
        for (const d of delta.days) addToHistory(counts, delta.key_hash, d.day, d.requests ?? 0, 0);
        if (slicer.due()) await slicer.yield();
      }
    }
    const head = { id: randomUUID(), counts };
    this.historyHead = head;
    this.settled.splice(0, batches.length);
    this.limitedFolding = undefined;
    return head;
  }
}
