import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BillingRejection, LocalLedgerProvider, StripeBillingProvider } from '../../src';
import { tempDir, waitFor } from '../helpers';
import { clock, endWindow, hit, ledgerOf, outboxIdle, outboxPending, setup, start, viaStripe } from './harness';
import { startStripeServer } from './stripe-server';

describe('local mode: the usage ledger', () => {
  test('one line per key and billing window, however many flushes; close() bills its open window; totals equal the usage_count deltas', async () => {
    const { dir, path, keys } = await setup([{ owner: 'alpha' }, { owner: 'beta' }]);
    const auth = start(dir, {});
    await hit(auth, keys[0]!, 4);
    await hit(auth, keys[1]!, 2);
    await auth.flush();
    await hit(auth, keys[0]!, 3);
    await auth.flush();
    await auth.deliverBilling(); // the window has not ended: nothing is billed yet, nothing is lost
    expect(await ledgerOf(dir)).toEqual([]);
    expect((await auth.stats()).billingOutboxDepth).toBe(2); // one report to come per key
    endWindow();
    await auth.deliverBilling();
    const first = await ledgerOf(dir);
    expect(first.map((e) => [e.owner, e.quantity]).sort()).toEqual([
      ['alpha', 7],
      ['beta', 2],
    ]);
    await hit(auth, keys[0]!, 5); // the next window: closed by close(), before it ends
    await auth.close();
    const ledger = await ledgerOf(dir);
    const total = (owner: string) => ledger.filter((e) => e.owner === owner).reduce((s, e) => s + e.quantity, 0);
    const counts = Object.fromEntries(
      (JSON.parse(readFileSync(path, 'utf8')) as Array<{ owner: string; usage_count: number }>).map((r) => [r.owner, r.usage_count]),
    );
    expect(total('alpha')).toBe(12);
    expect(total('beta')).toBe(2);
    expect(counts).toEqual({ alpha: 12, beta: 2 });
    expect(ledger).toHaveLength(3);
    expect(new Set(ledger.map((e) => e.identifier)).size).toBe(3);
    for (const e of ledger) {
      expect(e.identifier).toMatch(/^dmu_[0-9a-f]{40}$/);
      expect(e.key_prefix).toMatch(/^dm_/);
      expect(e.window_start % 60).toBe(0); // the minute's start
      expect(e.window_end).toBeGreaterThanOrEqual(e.window_start);
      expect(e.window_end).toBeLessThan(e.window_start + 60); // inside its window
      expect(e.time).toBeGreaterThanOrEqual(e.window_end);
    }
    expect(await outboxPending(dir)).toEqual([]);
  });

  test('billingWindow: 5m windows start at the five minutes; a bad BILLING_WINDOW is a ConfigError naming it', async () => {
    expect(() => start(tempDir(), { env: { BILLING_WINDOW: '7m' } })).toThrow(/^BILLING_WINDOW: must divide a day evenly/);
    expect(() => start(tempDir(), { billingWindow: 'soon' })).toThrow(/^billingWindow: must be a duration such as "1m"/);
    expect(() => start(tempDir(), { env: { BILLING_CONCURRENCY: '0' } })).toThrow(
      /^BILLING_CONCURRENCY: must be a whole number from 1 to 1000/,
    );
    expect(() => start(tempDir(), { env: { BILLING_MAX_CALLS_PER_SECOND: 'fast' } })).toThrow(
      /^BILLING_MAX_CALLS_PER_SECOND: must be a whole number from 1 to 100000, got "fast"/,
    );
    const { dir, keys } = await setup([{ owner: 'alpha' }]);
    const auth = start(dir, { billingWindow: '5m' });
    const windowStart = Math.floor(clock.now() / 300_000) * 300;
    await hit(auth, keys[0]!, 2);
    await auth.flush();
    clock.advance(60_000); // the same 5-minute window, unless it ends within the minute
    await hit(auth, keys[0]!, 3);
    await auth.close();
    const ledger = await ledgerOf(dir);
    const inFirst = ledger.filter((e) => e.window_start === windowStart);
    expect(ledger.reduce((s, e) => s + e.quantity, 0)).toBe(5);
    expect(ledger.every((e) => e.window_start % 300 === 0 && e.window_end < e.window_start + 300)).toBe(true);
    expect(inFirst.length).toBeGreaterThanOrEqual(1);
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
    endWindow();
    await waitFor(() => delivered.size === 1, 5000);
    expect([...delivered.values()]).toEqual([5]);
    expect(errors.filter((e) => /biller down/.test(e.message))).toHaveLength(1);

    await hit(auth, keys[0]!, 13);
    await auth.flush();
    endWindow();
    await waitFor(() => errors.some((e) => /rejected for good/.test(e.message)), 3000);
    const [letter] = readFileSync(join(dir, 'billing-dead-letter.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(letter).toMatchObject({ reason: 'no such customer', report: { quantity: 13, owner: 'alpha' } });
    expect(errors.some((e) => /rejected for good/.test(e.message) && e.message.includes('billing-dead-letter.jsonl'))).toBe(true);
    await waitFor(() => outboxIdle(dir), 3000);
  });
});

describe('Stripe mode through the official SDK', () => {
  test('one meter event per customer and window, with the exact fields, identifier and idempotency key', async () => {
    const stripe = await startStripeServer({ now: clock.now });
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
      await hit(auth, keys[0]!, 2); // the same window: the same event
      await auth.flush();
      endWindow();
      await auth.deliverBilling();
      const ledger = await ledgerOf(dir);
      expect(ledger.map((e) => [e.owner, e.quantity]).sort()).toEqual([
        ['alpha', 5],
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
    const stripe = await startStripeServer({ now: clock.now });
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
        endWindow(); // one window each
      }
      await waitFor(() => outboxIdle(dir), 10_000);
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
    const stripe = await startStripeServer({ now: clock.now });
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
    const stripe = await startStripeServer({ now: clock.now });
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
      endWindow();
      await auth.deliverBilling();
      const letter = JSON.parse(readFileSync(join(dir, 'billing-dead-letter.jsonl'), 'utf8').trim());
      expect(letter.reason).toMatch(/^Stripe answered 400: simulated 400/);
      expect(letter.report.quantity).toBe(2);
      expect(errors.some((e) => /rejected for good/.test(e.message))).toBe(true);
      expect(await ledgerOf(dir)).toHaveLength(0);
    } finally {
      await stripe.close();
    }
  });

  test('restart with reports in the outbox: they are delivered after the restart, none twice', async () => {
    const stripe = await startStripeServer({ now: clock.now });
    try {
      const { dir, keys } = await setup([{ owner: 'alpha', customer: 'cus_Alpha1' }]);
      stripe.failNext(...Array(50).fill(503));
      const first = start(dir, viaStripe(stripe.port));
      await hit(first, keys[0]!, 3);
      await first.flush();
      endWindow();
      await hit(first, keys[0]!, 4);
      await first.close(); // closes its open window too
      expect(await outboxPending(dir)).toHaveLength(2);
      expect(stripe.requests.every((r) => r.status === 503)).toBe(true);

      stripe.reset();
      const second = start(dir, {
        ...viaStripe(stripe.port),
        billingIntervalMs: 50,
      });
      await second.ready;
      await waitFor(() => outboxIdle(dir), 20_000, 50);
      const accepted = stripe.requests.filter((r) => r.status === 200 && !r.replay);
      expect(new Set(accepted.map((r) => r.form.identifier)).size).toBe(accepted.length);
      expect(accepted.reduce((s, r) => s + Number(r.form['payload[value]']), 0)).toBe(7);
      const ledger = await ledgerOf(dir);
      expect(ledger.reduce((s, e) => s + e.quantity, 0)).toBe(7);
    } finally {
      await stripe.close();
    }
  }, 30_000);
});
