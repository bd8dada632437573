import { loadPeer } from '../internal/peer';

/** How a Paddle price id looks: `pri_` and 26 lowercase letters or digits. */
export const PADDLE_PRICE_ID = /^pri_[a-z0-9]{26}$/;
/** How a Paddle subscription id looks: `sub_` and 26 lowercase letters or digits. */
export const PADDLE_SUBSCRIPTION_ID = /^sub_[a-z0-9]{26}$/;

/** What the Paddle SDK's ApiError carries (its public fields). */
export interface PaddleApiError {
  /** `request_error` (a 4xx: nothing was done) or `api_error` (a 5xx: Paddle failed on its side). */
  type: string;
  code: string;
  detail: string;
  /** Seconds, from a 429's Retry-After; null without one. */
  retryAfter: number | null;
}

/** The parts of the official SDK (@paddle/paddle-node-sdk) that billing uses. */
interface PaddleSdk {
  Paddle: new (apiKey: string, options: Record<string, unknown>) => PaddleLike;
}

interface LineItem {
  priceId: string;
  quantity: number;
}

interface PaddleLike {
  subscriptions: {
    get(
      id: string,
      query: { include: string[] },
    ): Promise<{ nextTransaction: { billingPeriod: { startsAt: string }; details: { lineItems: LineItem[] } } | null }>;
    createOneTimeCharge(id: string, body: { effectiveFrom: string; items: Array<{ priceId: string; quantity: number }> }): Promise<unknown>;
  };
  transactions: {
    list(
      query: Record<string, unknown>,
    ): AsyncIterable<{ billingPeriod: { startsAt: string } | null; details: { lineItems: LineItem[] } | null }>;
  };
}

function loadPaddle(): PaddleSdk {
  return loadPeer(
    '@paddle/paddle-node-sdk',
    (cause) =>
      `BILLING_MODE=paddle needs the optional peer dependency "@paddle/paddle-node-sdk", which cannot be loaded (${cause}); install it: npm install @paddle/paddle-node-sdk`,
  );
}

/** Whether `err` is an error answer of the Paddle API (the SDK's ApiError), as opposed to a network or parse failure. */
export function paddleApiError(err: unknown): PaddleApiError | undefined {
  const e = err as Partial<PaddleApiError> | null;
  return typeof e === 'object' && e !== null && typeof e.type === 'string' && typeof e.code === 'string'
    ? {
        type: e.type,
        code: e.code,
        detail: String(e.detail ?? ''),
        retryAfter: typeof e.retryAfter === 'number' && Number.isFinite(e.retryAfter) && e.retryAfter >= 0 ? e.retryAfter : null,
      }
    : undefined;
}

/** Units of `priceId` among line items. */
const unitsOf = (items: LineItem[] | undefined, priceId: string): number =>
  (items ?? []).reduce((sum, item) => sum + (item.priceId === priceId ? item.quantity : 0), 0);

/** What a subscription's next renewal will bill of one price. */
export interface NextCharges {
  /** Start of the billing period the next renewal bills (Paddle's RFC 3339 text); null when the subscription will not renew. */
  period: string | null;
  /** Units of the price on it: the one-time charges made for that renewal so far. */
  units: number;
}

/**
 * The Paddle API calls billing makes, through the official Node.js SDK. The SDK picks its server
 * from its `environment` option (`production`, `sandbox`, or, failing those names, the value
 * itself as the base URL): an API base (a local server in tests) is passed there.
 */
export class PaddleClient {
  private readonly paddle: PaddleLike;

  constructor(apiKey: string, options: { environment?: 'production' | 'sandbox'; apiBase?: string }) {
    const { Paddle } = loadPaddle();
    const environment = options.apiBase ? options.apiBase.replace(/\/+$/, '') : (options.environment ?? 'production');
    this.paddle = new Paddle(apiKey, { environment });
  }

  /** `POST /subscriptions/{id}/charge`: `units` of `priceId`, billed on the next renewal. */
  async charge(subscriptionId: string, priceId: string, units: number): Promise<void> {
    await this.paddle.subscriptions.createOneTimeCharge(subscriptionId, {
      effectiveFrom: 'next_billing_period',
      items: [{ priceId, quantity: units }],
    });
  }

  /** `GET /subscriptions/{id}?include=next_transaction`: the units of `priceId` its next renewal will bill. */
  async nextCharges(subscriptionId: string, priceId: string): Promise<NextCharges> {
    const subscription = await this.paddle.subscriptions.get(subscriptionId, { include: ['next_transaction'] });
    const next = subscription.nextTransaction;
    return { period: next?.billingPeriod.startsAt ?? null, units: unitsOf(next?.details.lineItems, priceId) };
  }

  /**
   * `GET /transactions?subscription_id=...&origin=subscription_recurring`: the units of `priceId`
   * on the renewal transaction of the billing period starting at `period`; undefined when there
   * is none (yet).
   */
  async renewalUnits(subscriptionId: string, priceId: string, period: string): Promise<number | undefined> {
    const list = this.paddle.transactions.list({ subscriptionId: [subscriptionId], origin: ['subscription_recurring'], perPage: 30 });
    for await (const transaction of list) {
      if (transaction.billingPeriod?.startsAt === period) return unitsOf(transaction.details?.lineItems, priceId);
    }
    return undefined;
  }
}
