'use strict';
// A Stripe-like server for the billing scenario, as a child on its own core: POST
// /v1/billing/meter_events answered after `latencyMs`, as Stripe documents it (the same as the
// suite's test/billing/stripe-server.ts, in plain JS): an identifier is recorded once (the same
// idempotency key replays the first answer), a second call at the same time for one customer is
// a 429, so is any call past 1,000 a second, a timestamp outside Stripe's window is a 400.
// `node bench/stripe-like.js LATENCY_MS`; messages: { type: 'stats' } -> { type: 'stats', ... }.
const http = require('node:http');
const { URLSearchParams } = require('node:url');
const { exitWithParent } = require('./proc');

const latencyMs = Number(process.argv[2] ?? 100);
const CEILING = 1000;
const DAY_MS = 86_400_000;

const answered = new Map(); // idempotency key -> { body, answer }
const identifiers = new Set();
const busy = new Set();
const recent = [];
const stats = { calls: 0, replays: 0, refused429: 0, refused400: 0, events: 0, units: 0, firstCallMs: null, lastAcceptMs: null };
/** Calls a second, by whole second of the wall clock. */
const perSecond = new Map();
/** Per window start (seconds, from the event timestamps): units, events and the last acceptance (ms). */
const windows = new Map();
let windowSeconds = 60;

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const now = Date.now();
    stats.calls++;
    stats.firstCallMs ??= now;
    const second = Math.floor(now / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    const key = req.headers['idempotency-key'];
    const form = Object.fromEntries(new URLSearchParams(body));
    if (key && answered.has(key)) {
      stats.replays++;
      return answer(res, 200, answered.get(key));
    }
    while (recent.length && recent[0] <= now - 1000) recent.shift();
    const customer = form['payload[stripe_customer_id]'];
    if (recent.length >= CEILING || busy.has(customer)) {
      stats.refused429++;
      return answer(res, 429, { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Request rate limit exceeded.' } });
    }
    recent.push(now);
    const timestamp = Number(form.timestamp);
    if (!(timestamp * 1000 >= now - 35 * DAY_MS && timestamp * 1000 <= now + 5 * 60_000) || identifiers.has(form.identifier)) {
      stats.refused400++;
      return answer(res, 400, { error: { type: 'invalid_request_error', message: `refused ${form.identifier}` } });
    }
    busy.add(customer);
    setTimeout(() => {
      busy.delete(customer);
      const value = Number(form['payload[value]']);
      identifiers.add(form.identifier);
      const event = {
        object: 'billing.meter_event',
        identifier: form.identifier,
        payload: { stripe_customer_id: customer, value: String(value) },
        timestamp,
      };
      if (key) answered.set(key, event);
      const accepted = Date.now();
      stats.events++;
      stats.units += value;
      stats.lastAcceptMs = accepted;
      const start = Math.floor(timestamp / windowSeconds) * windowSeconds;
      const w = windows.get(start) ?? { units: 0, events: 0, lastAcceptMs: 0 };
      w.units += value;
      w.events++;
      w.lastAcceptMs = Math.max(w.lastAcceptMs, accepted);
      windows.set(start, w);
      answer(res, 200, event);
    }, latencyMs);
  });
});
server.keepAliveTimeout = 60_000;

exitWithParent(() => server.close());
process.on('message', (msg) => {
  if (msg?.type === 'window') windowSeconds = msg.seconds;
  if (msg?.type !== 'stats') return;
  process.send({
    type: 'stats',
    ...stats,
    maxCallsPerSecond: Math.max(0, ...perSecond.values()),
    windows: Object.fromEntries(windows),
  });
});
server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }));
