import { describeError } from '../errors';
import { webhookHeaders } from './signature';
import type { AlertLog, PendingAlert, WebhookEndpoint } from './types';

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;
/** Longest wait for a receiver's answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/** Counts of deliveries since start. */
export interface DeliveryCounts {
  delivered: number;
  failed: number;
}

/**
 * Sends claimed alerts to the webhook receivers, oldest first, one POST per alert and receiver,
 * signed the Standard Webhooks way. A 2xx answer delivers it; anything else (or no answer in
 * 10 s) leaves it in the outbox and the receiver backs off alone (0.5 s doubling up to 60 s) while
 * the others go on. Waits are on the monotonic clock; `now` stamps the `webhook-timestamp`.
 */
export class WebhookSender {
  private readonly backoff = new Map<string, { attempts: number; until: number }>();
  readonly counts: DeliveryCounts = { delivered: 0, failed: 0 };

  constructor(
    private readonly endpoints: readonly WebhookEndpoint[],
    private readonly log: AlertLog,
    private readonly now: () => number,
    private readonly onError: (err: Error) => void,
  ) {}

  /** One delivery round, unless another process is delivering now. */
  async deliver(): Promise<void> {
    if (this.endpoints.length === 0) return;
    await this.log.whileDelivering(async () => {
      const pending = await this.log.pending(this.endpoints.map((e) => e.url));
      await Promise.all(this.endpoints.map((endpoint) => this.deliverTo(endpoint, pending)));
    });
  }

  private async deliverTo(endpoint: WebhookEndpoint, pending: PendingAlert[]): Promise<void> {
    const wait = this.backoff.get(endpoint.url);
    if (wait && wait.until > performance.now()) return;
    for (const { event, deliveredTo } of pending) {
      if (deliveredTo.has(endpoint.url)) continue;
      const body = JSON.stringify(event);
      try {
        const res = await fetch(endpoint.url, {
          method: 'POST',
          headers: webhookHeaders(endpoint.secret, event.id, Math.floor(this.now() / 1000), body),
          body,
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
          redirect: 'manual',
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status > 299) throw new Error(`answered ${res.status}`);
      } catch (err) {
        this.counts.failed++;
        const attempts = (wait?.attempts ?? 0) + 1;
        this.backoff.set(endpoint.url, {
          attempts,
          until: performance.now() + Math.min(FIRST_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS),
        });
        if (attempts === 1) {
          this.onError(
            new Error(`webhook ${endpoint.url} failed (${describeError(err)}); alert ${event.id} stays in the outbox and is retried`),
          );
        }
        return;
      }
      this.backoff.delete(endpoint.url);
      this.counts.delivered++;
      await this.log.delivered(
        [event.id],
        endpoint.url,
        this.endpoints.map((e) => e.url),
      );
    }
  }
}
