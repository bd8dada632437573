import { DaymindError, describeError } from '../errors';
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

function mergeInto(target: Map<string, UsageDelta>, delta: UsageDelta): void {
  const existing = target.get(delta.key_hash);
  if (!existing) {
    target.set(delta.key_hash, { ...delta, days: delta.days.map((d) => ({ ...d })) });
    return;
  }
  existing.units += delta.units;
  existing.last_used = Math.max(existing.last_used, delta.last_used);
  for (const d of delta.days) {
    const same = existing.days.find((e) => e.day === d.day);
    if (same) same.units += d.units;
    else existing.days.push({ ...d });
  }
  existing.days.sort((a, b) => a.day - b.day);
}

/**
 * Counts allowed usage in memory at once and writes it behind to the store: every
 * `flushIntervalMs` the pending deltas are handed to `store.applyUsage` (off the request path).
 * A failed flush keeps its deltas for the next one, so a store outage loses no count.
 */
export class UsageRecorder {
  private pending = new Map<string, UsageDelta>();
  private inflight: Map<string, UsageDelta> | undefined;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastFailure: string | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly flushIntervalMs: number,
    private readonly onError: (err: Error) => void,
  ) {}

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
    const inflight = this.inflight?.get(record.key_hash);
    if (inflight) addUsage(view, inflight);
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
    for (const d of this.inflight?.values() ?? []) total += d.units;
    return total;
  }

  /**
   * Writes pending usage to the store. Concurrent calls share one flush. Rejects (after reporting
   * to onError) when the store refused; the usage stays pending.
   */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
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
    await this.flush();
  }

  private async flushOnce(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.inflight = batch;
    const applied = () => {
      if (this.inflight === batch) this.inflight = undefined;
    };
    try {
      await this.store.applyUsage([...batch.values()], applied);
      this.lastFailure = undefined;
    } catch (err) {
      applied();
      for (const delta of batch.values()) mergeInto(this.pending, delta);
      const cause = describeError(err);
      const error = new DaymindError(
        'ERR_DAYMIND_USAGE_FLUSH',
        `usage flush failed, ${this.unflushedUnits} unit(s) kept in memory for the next attempt: ${cause}`,
        { cause: err },
      );
      // While one problem lasts it is reported once, not on every flush.
      if (cause !== this.lastFailure) this.onError(error);
      this.lastFailure = cause;
      throw error;
    } finally {
      applied();
    }
  }
}
