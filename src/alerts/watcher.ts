import { DaymindError, describeError } from '../errors';
import type { Plan } from '../limits/plans';
import { creditsAt, utcMonth } from '../store/record';
import { WorkSlicer } from '../internal/slicer';
import type { KeyRecord, KeyStore } from '../store/types';
import { utcDay } from '../usage/day';
import type { UsageRecorder } from '../usage/recorder';
import { WebhookSender } from './deliver';
import { detectAlerts } from './detect';
import type { AlertSettings } from './settings';
import type { AlertEvent, AlertListener, AlertLog } from './types';

export interface AlertWatcherOptions {
  store: KeyStore;
  recorder: UsageRecorder;
  /** The plans in force (the same map the middleware uses, so reloads apply). */
  plans: ReadonlyMap<string, Plan>;
  log: AlertLog;
  settings: AlertSettings;
  now: () => number;
  onError: (err: Error) => void;
}

/** The alert figures of stats(). */
export interface AlertStats {
  /** Alerts this process claimed (each alert is claimed by one process). */
  emitted: number;
  /** Webhook deliveries that reached a receiver. */
  delivered: number;
  /** Webhook deliveries that failed (retried later). */
  failed: number;
}

/**
 * Decides alerts off the request path: every `intervalMs` it reads the keys (store.list()) with
 * the usage counted here and not flushed yet, claims the alerts that hold (AlertLog: once per
 * id, whichever process sees it first), hands the ones it claimed to its listeners, and delivers
 * the outbox to the webhooks. The only request-path part is {@link noteRateLimited}, a map set.
 */
export class AlertWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly listeners: AlertListener[] = [];
  private readonly sender: WebhookSender;
  private emitted = 0;
  /** Keys refused by a rate limit, with the day (`YYYYMMDD`) of the last refusal seen. */
  private readonly limited = new Map<string, number>();

  constructor(private readonly options: AlertWatcherOptions) {
    this.sender = new WebhookSender(options.settings.webhooks, options.log, options.now, options.onError);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.run(), this.options.settings.intervalMs);
    this.timer.unref();
  }

  /** A request of the key was refused by a rate limit (called from a request listener: no I/O). */
  noteRateLimited(keyHash: string): void {
    this.limited.set(keyHash, utcDay(this.options.now()));
  }

  observe(listener: AlertListener): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  stats(): AlertStats {
    return { emitted: this.emitted, ...this.sender.counts };
  }

  /** Checks the keys and delivers now; concurrent calls share one run. Problems go to onError. */
  run(): Promise<void> {
    this.running ??= (async () => {
      try {
        await this.check();
      } catch (err) {
        this.options.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `usage alerts: ${describeError(err)}`, { cause: err }));
      }
      try {
        await this.sender.deliver();
        await this.options.log.tidy(
          this.options.settings.webhooks.map((w) => w.url),
          this.options.now(),
        );
      } catch (err) {
        this.options.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `webhook delivery: ${describeError(err)}`, { cause: err }));
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** A run that starts now: after the one in progress, which may have read the keys before the latest usage. */
  async runNow(): Promise<void> {
    await this.running;
    await this.run();
  }

  /** Stops the timer; a last run claims and delivers what is due. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.run();
    await this.options.log.close();
  }

  /** Detects the alerts of every key and claims them. */
  private async check(): Promise<void> {
    const { store, recorder, plans, settings } = this.options;
    const nowMs = this.options.now();
    const records = await store.list();
    const byHash = new Map<string, KeyRecord>();
    for (const record of records) byHash.set(record.key_hash, record);
    const today = utcDay(nowMs);
    const month = utcMonth(nowMs);
    const events: AlertEvent[] = [];
    const slicer = new WorkSlicer();
    for (const record of records) {
      const stored = creditsAt(record, nowMs);
      const unflushed = recorder.unflushed(record.key_hash, month);
      events.push(
        ...detectAlerts(
          {
            record,
            monthUsed: recorder.live(record, nowMs).requests_this_month,
            quota: (record.plan !== undefined ? plans.get(record.plan)?.monthlyQuota : undefined) ?? null,
            credits: stored === undefined ? undefined : Math.max(0, stored - unflushed.credits),
            rateLimitedToday: this.limited.get(record.key_hash) === today,
            replaced: record.rotated_from !== undefined ? byHash.get(record.rotated_from) : undefined,
          },
          settings,
          nowMs,
        ),
      );
      if (slicer.due()) await slicer.yield();
    }
    for (const [hash, day] of this.limited) if (day !== today) this.limited.delete(hash);
    const claimed = await this.options.log.claim(events);
    this.emitted += claimed.length;
    for (const event of claimed) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (err) {
          this.options.onError(
            new DaymindError('ERR_DAYMIND_UNAVAILABLE', `an alert listener threw: ${describeError(err)}`, { cause: err }),
          );
        }
      }
    }
  }
}
