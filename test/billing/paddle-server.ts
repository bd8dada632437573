import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** One request the Paddle-like server received. */
export interface PaddleRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  authorization: string | undefined;
  status: number;
  /** Unix ms (server clock) when it arrived. */
  at: number;
}

/** A one-time charge the server recorded. */
export interface PaddleServerCharge {
  subscription: string;
  price: string;
  quantity: number;
}

/** What a test queues for the next charge calls. */
export type ChargeFault =
  /** A 5xx answer before anything is recorded. */
  | { status: 500 | 502 | 503; applied?: false }
  /** The charge is recorded, and answered with a 5xx anyway (Paddle failed after making it). */
  | { status: 500 | 502 | 503; applied: true }
  /** A 429 with its Retry-After, in seconds. */
  | { status: 429; retryAfterSeconds: number };

export interface PaddleServerOptions {
  /** Subscriptions that exist: `sub_...` ids. */
  subscriptions: string[];
  /** Calls accepted in any one second; past it 429 with Retry-After 1. Default: no ceiling. */
  maxCallsPerSecond?: number;
  /**
   * Called once a charge is recorded and before it is answered: a test can kill its client there
   * (the charge is Paddle's, the client never hears of it). Answered when it resolves.
   */
  onCharge?: (charge: PaddleServerCharge) => void | Promise<void>;
}

const SUB_PERIOD = '2026-12-01T00:00:00.000000Z';
const PRICE = /^pri_[a-z0-9]{26}$/;
const money = (amount: number) => String(amount);

interface SubscriptionState {
  /** Start of the billing period the next renewal bills. */
  period: string;
  /** One-time charges to bill on the next renewal. */
  next: PaddleServerCharge[];
}

/**
 * A local HTTP server that answers the official Paddle Node.js SDK as Paddle Billing documents:
 *
 * - `POST /subscriptions/{id}/charge` (`effective_from`, `items: [{ price_id, quantity }]`):
 *   with `next_billing_period` the items are added to the subscription's next renewal, and the
 *   answer is the subscription entity (the charges are not in it);
 * - `GET /subscriptions/{id}?include=next_transaction`: the next renewal's preview, with one line
 *   item per one-time charge;
 * - `GET /transactions?subscription_id=...&origin=...`: transactions, each renewal's with the
 *   charges it billed; `renew(id)` makes one (the next renewal happens) and starts the next period;
 * - errors in Paddle's shape (`{ error: { type, code, detail, documentation_url } }`): 403 without
 *   a bearer key, 404 for an unknown subscription, 400 for a bad body, 429 with Retry-After past
 *   `maxCallsPerSecond`; `failNext(...)` queues faults for the next charge calls.
 */
export async function startPaddleServer(options: PaddleServerOptions): Promise<{
  server: Server;
  url: string;
  requests: PaddleRequest[];
  /** Every charge recorded, in order. */
  charges: PaddleServerCharge[];
  /** Units charged to a subscription (of every price, or of one), pending and billed. */
  units(subscription: string, price?: string): number;
  failNext(...faults: ChargeFault[]): void;
  renew(subscription: string): void;
  close(): Promise<void>;
}> {
  const subscriptions = new Map<string, SubscriptionState>(options.subscriptions.map((id) => [id, { period: SUB_PERIOD, next: [] }]));
  const transactions: Array<Record<string, unknown>> = [];
  const requests: PaddleRequest[] = [];
  const charges: PaddleServerCharge[] = [];
  const faults: ChargeFault[] = [];
  const calls = new Map<number, number>();

  const lineItem = (c: PaddleServerCharge) => ({
    id: 'txnitm_' + randomBytes(13).toString('hex'),
    price_id: c.price,
    quantity: c.quantity,
    tax_rate: '0',
    unit_totals: { subtotal: money(1), discount: '0', tax: '0', total: money(1) },
    totals: { subtotal: money(c.quantity), discount: '0', tax: '0', total: money(c.quantity) },
    product: {
      id: 'pro_01usage',
      name: 'API requests',
      tax_category: 'standard',
      status: 'active',
      created_at: SUB_PERIOD,
      updated_at: SUB_PERIOD,
    },
    proration: null,
  });
  const details = (items: PaddleServerCharge[]) => {
    const total = money(items.reduce((sum, c) => sum + c.quantity, 0));
    return {
      tax_rates_used: [],
      totals: { subtotal: total, discount: '0', tax: '0', total, credit: '0', balance: total, grand_total: total, currency_code: 'USD' },
      line_items: items.map(lineItem),
    };
  };
  const nextMonth = (iso: string) => {
    const d = new Date(iso);
    d.setUTCMonth(d.getUTCMonth() + 1);
    return d.toISOString();
  };
  const entity = (id: string, state: SubscriptionState, withNext: boolean) => ({
    id,
    status: 'active',
    customer_id: 'ctm_01test',
    address_id: 'add_01test',
    currency_code: 'USD',
    created_at: SUB_PERIOD,
    updated_at: SUB_PERIOD,
    next_billed_at: state.period,
    collection_mode: 'automatic',
    billing_cycle: { interval: 'month', frequency: 1 },
    items: [],
    ...(withNext
      ? {
          next_transaction: {
            billing_period: { starts_at: state.period, ends_at: nextMonth(state.period) },
            details: details(state.next),
            adjustments: [],
          },
        }
      : {}),
  });

  const send = (res: ServerResponse, request: PaddleRequest, status: number, body: unknown, headers: Record<string, string> = {}) => {
    request.status = status;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, request: PaddleRequest, status: number, code: string, detail: string, headers = {}) =>
    send(
      res,
      request,
      status,
      {
        error: {
          type: status >= 500 ? 'api_error' : 'request_error',
          code,
          detail,
          documentation_url: `https://developer.paddle.com/errors/shared/${code}`,
        },
        meta: { request_id: randomBytes(8).toString('hex') },
      },
      headers,
    );

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body: unknown;
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const request: PaddleRequest = {
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      authorization: req.headers.authorization,
      status: 0,
      at: Date.now(),
    };
    requests.push(request);
    if (!/^bearer \S+$/i.test(request.authorization ?? ''))
      return error(res, request, 403, 'authentication_missing', 'Authentication header missing');
    if (options.maxCallsPerSecond !== undefined) {
      const second = Math.floor(request.at / 1000);
      const count = (calls.get(second) ?? 0) + 1;
      calls.set(second, count);
      if (count > options.maxCallsPerSecond) {
        return error(res, request, 429, 'too_many_requests', 'Too many requests', { 'retry-after': '1' });
      }
    }
    const meta = { request_id: randomBytes(8).toString('hex') };
    const sub = /^\/subscriptions\/([^/]+)(\/charge)?$/.exec(url.pathname);
    if (sub) {
      const state = subscriptions.get(sub[1]!);
      if (!state) return error(res, request, 404, 'not_found', `Entity ${sub[1]} not found`);
      if (req.method === 'GET' && !sub[2]) {
        const withNext = (url.searchParams.get('include') ?? '').split(',').includes('next_transaction');
        return send(res, request, 200, { data: entity(sub[1]!, state, withNext), meta });
      }
      if (req.method === 'POST' && sub[2]) {
        const b = body as { effective_from?: unknown; items?: unknown } | undefined;
        const items = Array.isArray(b?.items) ? (b.items as Array<{ price_id?: unknown; quantity?: unknown }>) : [];
        const valid =
          (b?.effective_from === 'next_billing_period' || b?.effective_from === 'immediately') &&
          items.length > 0 &&
          items.every(
            (i) =>
              typeof i.price_id === 'string' && PRICE.test(i.price_id) && Number.isSafeInteger(i.quantity) && (i.quantity as number) >= 1,
          );
        if (!valid) return error(res, request, 400, 'bad_request', 'Invalid request body');
        if (b!.effective_from !== 'next_billing_period')
          return error(res, request, 400, 'bad_request', 'this server bills on the next renewal only');
        const fault = faults.shift();
        if (fault?.status === 429) {
          return error(res, request, 429, 'too_many_requests', 'Too many requests', { 'retry-after': String(fault.retryAfterSeconds) });
        }
        if (fault && !fault.applied) return error(res, request, fault.status, 'internal_error', 'Internal error');
        for (const item of items) {
          const charge = { subscription: sub[1]!, price: item.price_id as string, quantity: item.quantity as number };
          state.next.push(charge);
          charges.push(charge);
          await options.onCharge?.(charge);
        }
        if (fault) return error(res, request, fault.status, 'internal_error', 'Internal error');
        return send(res, request, 200, { data: entity(sub[1]!, state, false), meta });
      }
    }
    if (req.method === 'GET' && url.pathname === '/transactions') {
      const ids = (url.searchParams.get('subscription_id') ?? '').split(',');
      const origins = url.searchParams.get('origin')?.split(',');
      const data = transactions.filter(
        (t) => ids.includes(t.subscription_id as string) && (!origins || origins.includes(t.origin as string)),
      );
      return send(res, request, 200, {
        data,
        meta: {
          request_id: meta.request_id,
          pagination: { per_page: 30, next: `${base}/transactions?after=end`, has_more: false, estimated_total: data.length },
        },
      });
    }
    return error(res, request, 404, 'not_found', `no route ${req.method} ${url.pathname}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const base = `http://127.0.0.1:${port}`;
  return {
    server,
    url: base,
    requests,
    charges,
    units: (subscription, price) =>
      charges
        .filter((c) => c.subscription === subscription && (price === undefined || c.price === price))
        .reduce((sum, c) => sum + c.quantity, 0),
    failNext: (...queued) => faults.push(...queued),
    renew(subscription) {
      const state = subscriptions.get(subscription)!;
      transactions.push({
        id: 'txn_' + randomBytes(13).toString('hex'),
        status: 'billed',
        customer_id: 'ctm_01test',
        address_id: 'add_01test',
        currency_code: 'USD',
        origin: 'subscription_recurring',
        subscription_id: subscription,
        collection_mode: 'automatic',
        billing_period: { starts_at: state.period, ends_at: nextMonth(state.period) },
        items: [],
        details: details(state.next),
        payments: [],
        created_at: state.period,
        updated_at: state.period,
        billed_at: state.period,
      });
      state.period = nextMonth(state.period);
      state.next = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
