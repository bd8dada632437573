import { createServer, type Server } from 'node:http';

/** One request the fake Stripe API received. */
export interface StripeRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  form: Record<string, string>;
  status: number;
  /** True when the answer was a replay of an earlier idempotent success. */
  replay: boolean;
}

/**
 * A local HTTP server that answers the Stripe SDK as Stripe does for Billing Meter Events:
 * form-encoded POST /v1/billing/meter_events, JSON answers, errors in Stripe's error shape, and
 * idempotency keys replaying the first successful answer. `failNext` queues error statuses.
 */
export async function startStripeServer(): Promise<{
  port: number;
  requests: StripeRequest[];
  failNext(...statuses: number[]): void;
  /** Forgets queued failures and recorded requests. */
  reset(): void;
  close(): Promise<void>;
}> {
  const requests: StripeRequest[] = [];
  const queue: number[] = [];
  const answered = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
      const record = (status: number, replay = false) =>
        requests.push({
          method: req.method!,
          path: req.url!,
          authorization: req.headers.authorization,
          idempotencyKey,
          form,
          status,
          replay,
        });
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Request-Id', `req_${requests.length}`);
      if (req.method !== 'POST' || req.url !== '/v1/billing/meter_events') {
        record(404);
        res
          .writeHead(404)
          .end(
            JSON.stringify({ error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.url})` } }),
          );
        return;
      }
      if (idempotencyKey && answered.has(idempotencyKey)) {
        record(200, true);
        res.setHeader('Idempotent-Replayed', 'true');
        res.writeHead(200).end(answered.get(idempotencyKey));
        return;
      }
      const fail = queue.shift();
      if (fail !== undefined) {
        record(fail);
        const type = fail === 429 ? 'rate_limit_error' : fail >= 500 ? 'api_error' : 'invalid_request_error';
        res.writeHead(fail).end(JSON.stringify({ error: { type, message: `simulated ${fail}` } }));
        return;
      }
      const answer = JSON.stringify({
        object: 'billing.meter_event',
        created: Math.floor(Date.now() / 1000),
        event_name: form.event_name,
        identifier: form.identifier,
        livemode: false,
        payload: { stripe_customer_id: form['payload[stripe_customer_id]'], value: form['payload[value]'] },
        timestamp: Number(form.timestamp),
      });
      if (idempotencyKey) answered.set(idempotencyKey, answer);
      record(200);
      res.writeHead(200).end(answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    failNext: (...statuses) => queue.push(...statuses),
    reset: () => {
      queue.length = 0;
      requests.length = 0;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
