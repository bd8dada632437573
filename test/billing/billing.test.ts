import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import {
  BillingRejection,
  daymindAuth,
  JsonFileKeyStore,
  LocalLedgerProvider,
  readLedger,
  StripeBillingProvider,
  type DaymindAuth,
  type DaymindOptions,
  type UsageReport,
} from '../../src';
import { Outbox } from '../../src/billing/outbox';
import { appWith, closeAll, isoMonth, tempDir, testClock, waitFor } from '../helpers';
import { startStripeServer } from './stripe-server';

// Every instance runs on one standing clock: windows, ledger lines and their month never move.
const clock = testClock();
const month = () => isoMonth(clock.now());
const open: DaymindAuth[] = [];
afterEach(() => closeAll(open));

async function setup(keys: Array<{ owner: string; customer?: string }>) {
  const dir = tempDir();
  const path = join(dir, 'api_keys.json');
  const store = new JsonFileKeyStore({ path });
  const created = [];
  for (const k of keys) created.push((await store.create({ owner: k.owner, stripe_customer_id: k.customer ?? null })).key);
  return { dir, path, keys: created };
}

function start(dir: string, options: DaymindOptions): DaymindAuth {
  const auth = daymindAuth({
    env: {},
    storePath: join(dir, 'api_keys.json'),
    rateLimitPerMinute: 10_000,
    ipRateLimitPerMinute: false,
    flushIntervalMs: 60_000,
    billingIntervalMs: 60_000,
    onError: () => undefined,
    now: clock.now,
    ...options,
  });
  open.push(auth);
  return auth;
}

/** Options for Stripe mode against the local Stripe-like server. */
const viaStripe = (port: number): DaymindOptions => ({
  billing: 'stripe',
  stripeSecretKey: 'sk_test_123',
  stripeApiBase: `http://127.0.0.1:${port}`,
});

async function hit(auth: DaymindAuth, key: string, times: number): Promise<void> {
  const app = appWith(auth);
  for (let i = 0; i < times; i++) expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
}

/** Reports in the outbox not yet delivered or dead-lettered. */
const outboxPending = async (dir: string): Promise<UsageReport[]> => (await new Outbox(join(dir, 'billing-outbox.jsonl')).read()).pending;

describe('local mode: the usage ledger', () => {
  test('one line per key and flush window; totals equal the usage_count deltas; nothing left in the outbox', async () => {
    const { dir, path, keys } = await setup([{ owner: 'alpha' }, { owner: 'beta' }]);
    const auth = start(dir, {});
    await hit(auth, keys[0]!, 4);
    await hit(auth, keys[1]!, 2);
    await auth.flush();
    await hit(auth, keys[0]!, 3);
    await auth.close();
    const ledger = await readLedger(dir, [month()]);
    const total = (owner: string) => ledger.filter((e) => e.owner === owner).reduce((s, e) => s + e.quantity, 0);
    const counts = Object.fromEntries(
      (JSON.parse(readFileSync(path, 'utf8')) as Array<{ owner: string; usage_count: number }>).map((r) => [r.owner, r.usage_count]),
    );
    expect(total('alpha')).toBe(7);
    expect(total('beta')).toBe(2);
    expect(counts).toEqual({ alpha: 7, beta: 2 });
    expect(ledger).toHaveLength(3);
    expect(new Set(ledger.map((e) => e.identifier)).size).toBe(3);
    for (const e of ledger) {
      expect(e.identifier).toMatch(/^dmu_[0-9a-f]{40}$/);
      expect(e.key_prefix).toMatch(/^dm_/);
      expect(e.window_end).toBeGreaterThanOrEqual(e.window_start);
      expect(e.time).toBeGreaterThanOrEqual(e.window_end);
    }
    expect(await outboxPending(dir)).toEqual([]);
  });

  test('a provider that fails is retried with backoff; a report rejected for good is dead-lettered', async () => {
    const { dir, keys } = await setup([{ owner: 'alpha' }]);
    const delivered = new Map<string, number>();
    let failures = 2;
    const errors: Error[] = [];
    const auth = start(dir, {
      billingIntervalMs: 50,
      onError: (e) => errors.push(e),
      billing: {
        name: 'flaky',
        async deliver(report) {
          if (report.quantity === 13) throw new BillingRejection('no such customer');
          if (failures-- > 0) throw new Error('biller down');
          delivered.set(report.identifier, (delivered.get(report.identifier) ?? 0) + report.quantity);
        },
      },
    });
    await hit(auth, keys[0]!, 5);
    await auth.flush();
    await waitFor(() => delivered.size === 1, 5000);
    expect([...delivered.values()]).toEqual([5]);
    expect(errors.filter((e) => /biller down/.test(e.message))).toHaveLength(1);

    await hit(auth, keys[0]!, 13);
    await auth.flush();
    await waitFor(() => errors.some((e) => /rejected for good/.test(e.message)), 3000);
    const [letter] = readFileSync(join(dir, 'billing-dead-letter.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(letter).toMatchObject({ reason: 'no such customer', report: { quantity: 13, owner: 'alpha' } });
    expect(errors.some((e) => /rejected for good/.test(e.message) && e.message.includes('billing-dead-letter.jsonl'))).toBe(true);
    await waitFor(async () => (await outboxPending(dir)).length === 0, 3000);
  });
});

describe('Stripe mode through the official SDK', () => {
  test('one meter event per customer and window, with the exact fields, identifier and idempotency key', async () => {
    const stripe = await startStripeServer();
    try {
      const { dir, keys } = await setup([
        { owner: 'alpha', customer: 'cus_Alpha1' },
        { owner: 'beta', customer: 'cus_Beta2' },
        { owner: 'nocust' },
      ]);
      const errors: Error[] = [];
      const auth = start(dir, {
        ...viaStripe(stripe.port),
        onError: (e) => errors.push(e),
      });
      await hit(auth, keys[0]!, 3);
      await hit(auth, keys[1]!, 2);
      await hit(auth, keys[2]!, 1);
      await auth.flush();
      await auth.deliverBilling();
      const ledger = await readLedger(dir, [month()]);
      expect(ledger.map((e) => [e.owner, e.quantity]).sort()).toEqual([
        ['alpha', 3],
        ['beta', 2],
        ['nocust', 1],
      ]);
      expect(stripe.requests).toHaveLength(2);
      for (const req of stripe.requests) {
        const entry = ledger.find((e) => e.customer_id === req.form['payload[stripe_customer_id]'])!;
        expect(req).toMatchObject({ method: 'POST', path: '/v1/billing/meter_events', authorization: 'Bearer sk_test_123', status: 200 });
        expect(req.form).toEqual({
          event_name: 'api_requests',
          'payload[stripe_customer_id]': entry.customer_id,
          'payload[value]': String(entry.quantity),
          identifier: entry.identifier,
          timestamp: String(Math.floor(entry.window_end)),
        });
        expect(req.idempotencyKey).toBe(entry.identifier);
      }
      expect(errors.filter((e) => /has no stripe_customer_id/.test(e.message))).toHaveLength(1);
    } finally {
      await stripe.close();
    }
  });

  test('500, 429 and 401 (a key being fixed) are retried: every report arrives once per identifier with the right total', async () => {
    const stripe = await startStripeServer();
    try {
      const { dir, keys } = await setup([{ owner: 'alpha', customer: 'cus_Alpha1' }]);
      stripe.failNext(500, 401, 429);
      const auth = start(dir, {
        ...viaStripe(stripe.port),
        billingIntervalMs: 50,
      });
      for (const n of [4, 6, 1]) {
        await hit(auth, keys[0]!, n);
        await auth.flush();
      }
      await waitFor(async () => (await outboxPending(dir)).length === 0, 10_000);
      const accepted = stripe.requests.filter((r) => r.status === 200 && !r.replay);
      expect(stripe.requests.filter((r) => r.status !== 200).map((r) => r.status)).toEqual([500, 401, 429]);
      expect(accepted).toHaveLength(3);
      expect(new Set(accepted.map((r) => r.form.identifier)).size).toBe(3);
      expect(accepted.reduce((s, r) => s + Number(r.form['payload[value]']), 0)).toBe(11);
    } finally {
      await stripe.close();
    }
  });

  test("a report older than Stripe's 35-day window is rejected for good without a request", async () => {
    const stripe = await startStripeServer();
    try {
      const ledger = new LocalLedgerProvider(tempDir());
      const provider = new StripeBillingProvider({
        secretKey: 'sk_test_123',
        apiBase: `http://127.0.0.1:${stripe.port}`,
        ledger,
        onError: () => undefined,
        now: clock.now,
      });
      const old = clock.now() / 1000 - 36 * 86_400;
      const report = {
        identifier: 'dmu_old',
        key_hash: 'a'.repeat(64),
        key_prefix: 'dm_abcdef',
        owner: 'alpha',
        customer_id: 'cus_A1',
        quantity: 3,
        window_start: old - 1,
        window_end: old,
      };
      await expect(provider.deliver(report)).rejects.toBeInstanceOf(BillingRejection);
      await expect(provider.deliver(report)).rejects.toThrow(/more than 35 days ago/);
      await provider.deliver({ ...report, identifier: 'dmu_new', window_start: old + 35 * 86_400, window_end: old + 35 * 86_400 + 1 });
      expect(stripe.requests.map((r) => r.form.identifier)).toEqual(['dmu_new']);
    } finally {
      await stripe.close();
    }
  });

  test('a 400 is dead-lettered with its reason', async () => {
    const stripe = await startStripeServer();
    try {
      const { dir, keys } = await setup([{ owner: 'alpha', customer: 'cus_Gone' }]);
      stripe.failNext(400);
      const errors: Error[] = [];
      const auth = start(dir, {
        ...viaStripe(stripe.port),
        onError: (e) => errors.push(e),
      });
      await hit(auth, keys[0]!, 2);
      await auth.flush();
      await auth.deliverBilling();
      const letter = JSON.parse(readFileSync(join(dir, 'billing-dead-letter.jsonl'), 'utf8').trim());
      expect(letter.reason).toMatch(/^Stripe answered 400: simulated 400/);
      expect(letter.report.quantity).toBe(2);
      expect(errors.some((e) => /rejected for good/.test(e.message))).toBe(true);
      expect(await readLedger(dir, [month()])).toHaveLength(0);
    } finally {
      await stripe.close();
    }
  });

  test('restart with reports in the outbox: they are delivered after the restart, none twice', async () => {
    const stripe = await startStripeServer();
    try {
      const { dir, keys } = await setup([{ owner: 'alpha', customer: 'cus_Alpha1' }]);
      stripe.failNext(...Array(50).fill(503));
      const first = start(dir, viaStripe(stripe.port));
      await hit(first, keys[0]!, 3);
      await first.flush();
      await hit(first, keys[0]!, 4);
      await first.close();
      expect(await outboxPending(dir)).toHaveLength(2);
      expect(stripe.requests.every((r) => r.status === 503)).toBe(true);

      stripe.reset();
      const second = start(dir, {
        ...viaStripe(stripe.port),
        billingIntervalMs: 50,
      });
      await second.ready;
      await waitFor(async () => (await outboxPending(dir)).length === 0, 20_000, 50);
      const accepted = stripe.requests.filter((r) => r.status === 200 && !r.replay);
      expect(new Set(accepted.map((r) => r.form.identifier)).size).toBe(accepted.length);
      expect(accepted.reduce((s, r) => s + Number(r.form['payload[value]']), 0)).toBe(7);
      const ledger = await readLedger(dir, [month()]);
      expect(ledger.reduce((s, e) => s + e.quantity, 0)).toBe(7);
    } finally {
      await stripe.close();
    }
  }, 30_000);
});
