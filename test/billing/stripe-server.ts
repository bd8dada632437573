import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** One request the Stripe-like server received. */
export interface StripeRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  form: Record<string, string>;
  status: number;
  /** True when the answer was a replay of an earlier idempotent success. */
  replay: boolean;
  /** Unix ms (server clock) when it arrived. */
  at: number;
}

/** A meter event the server recorded (once per identifier). */
export interface MeterEvent {
  identifier: string;
  customer: string;
  value: number;
  timestamp: number;
}

export interface StripeServerOptions {
  /** Time before each answer, in ms. Default 0. */
  latencyMs?: number;
  /** Meter event calls accepted in any one second; past it 429 (Stripe: 1,000 in live mode). Default: no ceiling. */
  maxCallsPerSecond?: number;
  /** The Retry-After header (seconds) on a 429. Default: none. */
  retryAfterSeconds?: number;
  /** How long identifiers are remembered, in ms. Stripe: 24 h. */
  memoryMs?: number;
  /** How long idempotency keys are remembered, in ms. Stripe: at least 24 h. Default `memoryMs`. */
  idempotencyMemoryMs?: number;
  /** The server's clock, in ms: timestamps, and how long identifiers are remembered. */
  now?: () => number;
  /**
   * Called once an event is recorded and before it is answered: a test can kill its client
   * there (the event is Stripe's, the client never hears it).
   */
  onAccept?: (event: MeterEvent) => void | Promise<void>;
}

const DAY_MS = 86_400_000;

/**
 * A local HTTP server that answers the official SDK as Stripe documents Billing Meter Events
 * (POST /v1/billing/meter_events, form-encoded, JSON answers, errors in Stripe's shape):
 *
 * - an identifier is recorded once for `memoryMs` (24 h): the same idempotency key with the same
 *   parameters replays the first answer; the same key with other parameters is a 400
 *   idempotency_error; the identifier again under another key is a 400 "An event already exists";
 * - a request while another with the same idempotency key is under way is a 409;
 * - a second call at the same time for the same customer is a 429 (one concurrent call per
 *   customer and meter), as is any call past `maxCallsPerSecond` in a second;
 * - a timestamp more than 35 days old or more than 5 minutes ahead is a 400;
 * - `failNext(...)` queues error statuses for the next requests (5xx bursts, 400s).
 */
export async function startStripeServer(options: StripeServerOptions = {}): Promise<{
  port: number;
  requests: StripeRequest[];
  /** Events recorded, once per identifier. */
  events: MeterEvent[];
  /** The sum of recorded values per customer. */
  totals(): Map<string, number>;
  failNext(...statuses: number[]): void;
  /** Forgets queued failures and recorded requests (not the events nor the identifiers). */
  reset(): void;
  close(): Promise<void>;
}> {
  const now = options.now ?? Date.now;
  const memoryMs = options.memoryMs ?? DAY_MS;
  const idempotencyMemoryMs = options.idempotencyMemoryMs ?? memoryMs;
  const requests: StripeRequest[] = [];
  const events: MeterEvent[] = [];
  const queue: number[] = [];
  /** Idempotency key -> the body of the request and its answer. */
  const answered = new Map<string, { body: string; answer: string; at: number }>();
  const identifiers = new Map<string, number>();
  const inFlightKeys = new Set<string>();
  const busyCustomers = new Set<string>();
  const recent: number[] = [];

  const error = (res: ServerResponse, status: number, type: string, message: string, code?: string) => {
    if (status === 429 && options.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(options.retryAfterSeconds));
    res.writeHead(status).end(JSON.stringify({ error: { type, message, ...(code ? { code } : {}) } }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string, record: (status: number, replay?: boolean) => void) => {
    const form = Object.fromEntries(new URLSearchParams(body));
    const key = req.headers['idempotency-key'] as string | undefined;
    const at = now();
    for (const [k, v] of answered) if (v.at < at - idempotencyMemoryMs) answered.delete(k);
    for (const [k, v] of identifiers) if (v < at - memoryMs) identifiers.delete(k);
    if (req.method !== 'POST' || req.url !== '/v1/billing/meter_events') {
      record(404);
      return error(res, 404, 'invalid_request_error', `Unrecognized request URL (${req.method}: ${req.url})`);
    }
    if (key && answered.has(key)) {
      const first = answered.get(key)!;
      if (first.body !== body) {
        record(400);
        return error(
          res,
          400,
          'idempotency_error',
          'Keys for idempotent requests can only be used with the same parameters they were first used with.',
        );
      }
      record(200, true);
      res.setHeader('Idempotent-Replayed', 'true');
      return res.writeHead(200).end(first.answer);
    }
    if (key && inFlightKeys.has(key)) {
      record(409);
      return error(res, 409, 'idempotency_error', 'There is currently another in-progress request using this Stripe-Idempotency-Key.');
    }
    const fail = queue.shift();
    if (fail !== undefined) {
      record(fail);
      return error(res, fail, fail === 429 ? 'rate_limit_error' : fail >= 500 ? 'api_error' : 'invalid_request_error', `simulated ${fail}`);
    }
    while (recent.length > 0 && recent[0]! <= at - 1000) recent.shift();
    if (options.maxCallsPerSecond !== undefined && recent.length >= options.maxCallsPerSecond) {
      record(429);
      return error(res, 429, 'invalid_request_error', 'Request rate limit exceeded.', 'rate_limit');
    }
    recent.push(at);
    const customer = form['payload[stripe_customer_id]'] ?? '';
    if (busyCustomers.has(customer)) {
      record(429);
      return error(res, 429, 'invalid_request_error', `Too many concurrent requests for customer ${customer} on this meter.`, 'rate_limit');
    }
    const timestamp = Number(form.timestamp);
    if (!(timestamp * 1000 >= at - 35 * DAY_MS && timestamp * 1000 <= at + 5 * 60_000)) {
      record(400);
      return error(
        res,
        400,
        'invalid_request_error',
        'Timestamp must be within the past 35 calendar days and not more than 5 minutes in the future.',
      );
    }
    if (form.identifier && identifiers.has(form.identifier)) {
      record(400);
      return error(res, 400, 'invalid_request_error', `An event already exists with identifier ${form.identifier}.`);
    }
    busyCustomers.add(customer);
    if (key) inFlightKeys.add(key);
    try {
      if (options.latencyMs) await new Promise((r) => setTimeout(r, options.latencyMs));
      const event: MeterEvent = { identifier: form.identifier ?? '', customer, value: Number(form['payload[value]']), timestamp };
      if (form.identifier) identifiers.set(form.identifier, at);
      events.push(event);
      const answer = JSON.stringify({
        object: 'billing.meter_event',
        created: Math.floor(at / 1000),
        event_name: form.event_name,
        identifier: form.identifier,
        livemode: false,
        payload: { stripe_customer_id: customer, value: form['payload[value]'] },
        timestamp,
      });
      if (key) answered.set(key, { body, answer, at });
      await options.onAccept?.(event);
      record(200);
      res.writeHead(200).end(answer);
    } finally {
      busyCustomers.delete(customer);
      if (key) inFlightKeys.delete(key);
    }
  };

  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const record = (status: number, replay = false) =>
        requests.push({
          method: req.method!,
          path: req.url!,
          authorization: req.headers.authorization,
          idempotencyKey: req.headers['idempotency-key'] as string | undefined,
          form: Object.fromEntries(new URLSearchParams(body)),
          status,
          replay,
          at: now(),
        });
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Request-Id', `req_${requests.length}`);
      handle(req, res, body, record).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500).end(JSON.stringify({ error: { type: 'api_error', message: err.message } }));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    events,
    totals: () => {
      const totals = new Map<string, number>();
      for (const e of events) totals.set(e.customer, (totals.get(e.customer) ?? 0) + e.value);
      return totals;
    },
    failNext: (...statuses) => queue.push(...statuses),
    reset: () => {
      queue.length = 0;
      requests.length = 0;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
