import { DaymindError, describeError } from '../errors';
import { loadPeer } from '../internal/peer';
import type { LocalLedgerProvider } from './ledger';
import { BillingRejection, BillingRetryLater } from './rejection';
import type { BillingProvider, UsageReport } from './types';

export interface StripeBillingOptions {
  /** `STRIPE_SECRET_KEY`. */
  secretKey: string;
  /** The meter's event name. `STRIPE_METER_EVENT_NAME`; default `api_requests`. */
  meterEventName?: string;
  /** Another API server (stripe-mock, a test server): `STRIPE_API_BASE`, e.g. `http://localhost:12111`. */
  apiBase?: string;
  /**
   * Where each report accepted by Stripe is also written by deliver() (a script replaying dead
   * letters). Without it, whoever calls deliver() writes the ledger: in BILLING_MODE=stripe the
   * dispatcher does, one append a checkpoint for every report delivered.
   */
  ledger?: LocalLedgerProvider;
  /** Warnings (a key without a Stripe customer, once per key). */
  onError: (err: Error) => void;
  /** The clock, in ms, against which Stripe's 35-day window is checked. Default `Date.now`. */
  now?: () => number;
}

/** Stripe refuses meter events older than 35 days. */
const STRIPE_MAX_AGE_SECONDS = 35 * 86_400;

interface StripeLike {
  billing: {
    meterEvents: {
      create(params: Record<string, unknown>, options?: { idempotencyKey?: string }): Promise<unknown>;
    };
  };
}

function loadStripe(): new (key: string, config: Record<string, unknown>) => StripeLike {
  return loadPeer(
    'stripe',
    (cause) =>
      `BILLING_MODE=stripe needs the optional peer dependency "stripe", which cannot be loaded (${cause}); install it: npm install stripe`,
  );
}

/** host/port/protocol options of the Stripe SDK for an API base URL. */
export function stripeHostOptions(apiBase: string | undefined): Record<string, unknown> {
  if (!apiBase) return {};
  const url = new URL(apiBase);
  const protocol = url.protocol.replace(':', '');
  return { host: url.hostname, port: Number(url.port || (protocol === 'http' ? 80 : 443)), protocol };
}

/** Milliseconds of a Retry-After header in seconds, or undefined. */
function retryAfterMs(headers: unknown): number | undefined {
  const value = (headers as Record<string, unknown> | undefined)?.['retry-after'];
  const seconds = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : undefined;
  return seconds === undefined ? undefined : seconds * 1000;
}

/**
 * Stripe metered billing through the official SDK: one Billing Meter Event per report, with the
 * report's identifier as the event identifier and as the idempotency key, so a report delivered
 * again is recorded once. 429 (with its Retry-After), 5xx, 401/403 (a wrong or rotated secret key)
 * and network errors are retried from the outbox; "an event already exists with identifier" means
 * Stripe has it (identifiers are made from the usage they bill: the same identifier is the same
 * value), so it counts as delivered; other 4xx and events older than Stripe's 35-day window are
 * rejected for good. Keys without a Stripe customer make no call: their reports go to the ledger only.
 */
export class StripeBillingProvider implements BillingProvider {
  readonly name = 'stripe';
  private readonly stripe: StripeLike;
  private readonly eventName: string;
  private readonly warned = new Set<string>();

  constructor(private readonly options: StripeBillingOptions) {
    const Stripe = loadStripe();
    this.stripe = new Stripe(options.secretKey, {
      maxNetworkRetries: 0,
      timeout: 10_000,
      telemetry: false,
      ...stripeHostOptions(options.apiBase),
    });
    this.eventName = options.meterEventName ?? 'api_requests';
  }

  /** Whether a report makes a call to Stripe (it has a customer): the others take no place under the ceiling. */
  calls(report: UsageReport): boolean {
    return report.customer_id !== null;
  }

  async deliver(report: UsageReport): Promise<void> {
    if (report.customer_id) await this.send(report, report.customer_id);
    else if (!this.warned.has(report.key_hash)) {
      this.warned.add(report.key_hash);
      this.options.onError(
        new DaymindError(
          'ERR_DAYMIND_BILLING',
          `key ${report.key_prefix} (${report.owner}) has no stripe_customer_id: its usage goes to the local ledger only`,
        ),
      );
    }
    await this.options.ledger?.deliver(report);
  }

  private async send(report: UsageReport, customerId: string): Promise<void> {
    if (report.window_end < (this.options.now ?? Date.now)() / 1000 - STRIPE_MAX_AGE_SECONDS) {
      throw new BillingRejection("the usage window ended more than 35 days ago, outside Stripe's window for meter events");
    }
    try {
      await this.stripe.billing.meterEvents.create(
        {
          event_name: this.eventName,
          payload: { stripe_customer_id: customerId, value: String(report.quantity) },
          identifier: report.identifier,
          timestamp: Math.floor(report.window_end),
        },
        { idempotencyKey: report.identifier },
      );
    } catch (err) {
      const { statusCode: status, headers } = err as { statusCode?: number; headers?: unknown };
      if (status === 400 && /already exists with identifier/i.test(describeError(err))) return;
      if (status === 429) {
        const wait = retryAfterMs(headers);
        if (wait !== undefined) throw new BillingRetryLater(`Stripe answered 429: ${describeError(err)}`, wait);
      }
      // 401/403 are a key or permission problem on our side: kept and retried until it is fixed.
      const retryable = status === undefined || status === 429 || status === 401 || status === 403 || status >= 500;
      if (!retryable && status >= 400 && status < 500) {
        throw new BillingRejection(`Stripe answered ${status}: ${describeError(err)}`);
      }
      throw err;
    }
  }
}
