import { stillDetectable } from './detect';
import type { AlertEvent, AlertLog, PendingAlert } from './types';

/** Alerts claimed in this process only (keys held in memory, custom stores): once per process, not across restarts. */
export class MemoryAlertLog implements AlertLog {
  private readonly claims = new Map<string, { event: AlertEvent; deliveredTo: Set<string> }>();
  private delivering = false;

  async claim(events: AlertEvent[]): Promise<AlertEvent[]> {
    const fresh: AlertEvent[] = [];
    for (const event of events) {
      if (this.claims.has(event.id)) continue;
      this.claims.set(event.id, { event, deliveredTo: new Set() });
      fresh.push(event);
    }
    return fresh;
  }

  async pending(urls: readonly string[]): Promise<PendingAlert[]> {
    return [...this.claims.values()].filter((c) => urls.some((url) => !c.deliveredTo.has(url)));
  }

  async delivered(ids: string[], url: string, _urls: readonly string[]): Promise<void> {
    for (const id of ids) this.claims.get(id)?.deliveredTo.add(url);
  }

  async whileDelivering<T>(run: () => Promise<T>): Promise<T | undefined> {
    if (this.delivering) return undefined;
    this.delivering = true;
    try {
      return await run();
    } finally {
      this.delivering = false;
    }
  }

  async tidy(urls: readonly string[], nowMs: number): Promise<void> {
    for (const [id, c] of this.claims) {
      if (urls.every((url) => c.deliveredTo.has(url)) && !stillDetectable(c.event, nowMs)) this.claims.delete(id);
    }
  }

  async close(): Promise<void> {}
}
