import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BillingRetryLater, LocalLedgerProvider, StripeBillingProvider } from '../../src';
import { tempDir, waitFor } from '../helpers';
import { clock, endWindow, hit, ledgerOf, setup, start } from './harness';
import { startStripeServer } from './stripe-server';

describe('Stripe answers', () => {
  const report = (identifier: string, quantity = 3) => ({
    identifier,
    key_hash: 'a'.repeat(64),
    key_prefix: 'dm_abcdef',
    owner: 'alpha',
    customer_id: 'cus_A1',
    quantity,
    window_start: Math.floor(clock.now() / 60_000) * 60,
    window_end: clock.now() / 1000,
  });
  const provider = (port: number, dir = tempDir()) =>
    new StripeBillingProvider({
      secretKey: 'sk_test_123',
      apiBase: `http://127.0.0.1:${port}`,
      ledger: new LocalLedgerProvider(dir, clock.now),
      onError: () => undefined,
      now: clock.now,
    });

  test('an identifier Stripe already has, once the idempotency key is forgotten, counts as delivered: recorded once, in the ledger', async () => {
    const stripe = await startStripeServer({ now: clock.now, idempotencyMemoryMs: 60_000 });
    try {
      const dir = tempDir();
      const stripeProvider = provider(stripe.port, dir);
      await stripeProvider.deliver(report('dmu_seen'));
      clock.advance(120_000); // Stripe forgot the idempotency key, not the identifier
      await stripeProvider.deliver(report('dmu_seen'));
      expect(stripe.requests.map((r) => r.status)).toEqual([200, 400]);
      expect(stripe.events.map((e) => [e.identifier, e.value])).toEqual([['dmu_seen', 3]]);
      expect((await ledgerOf(dir)).map((e) => e.identifier)).toEqual(['dmu_seen']);
    } finally {
      await stripe.close();
    }
  });

  test("a 429 with Retry-After is a BillingRetryLater of that many ms; a timestamp outside Stripe's window is refused by the server", async () => {
    const stripe = await startStripeServer({ now: clock.now, retryAfterSeconds: 2 });
    try {
      stripe.failNext(429);
      const err = await provider(stripe.port)
        .deliver(report('dmu_throttled'))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BillingRetryLater);
      expect((err as BillingRetryLater).retryAfterMs).toBe(2000);
      const ahead = { ...report('dmu_ahead'), window_end: clock.now() / 1000 + 600 };
      await expect(provider(stripe.port).deliver(ahead)).rejects.toThrow(/^Stripe answered 400: Timestamp must be within/);
    } finally {
      await stripe.close();
    }
  });
});

describe('what is billed', () => {
  test('usage of a key deleted from the store before its flush is billed: the requests were served; owner and prefix are empty', async () => {
    const { dir, path, keys } = await setup([{ owner: 'alpha', customer: 'cus_Alpha1' }, { owner: 'beta' }]);
    const auth = start(dir, { reloadIntervalMs: 20 });
    await hit(auth, keys[0]!, 3);
    await hit(auth, keys[1]!, 1);
    const records = JSON.parse(readFileSync(path, 'utf8')) as Array<{ owner: string; key_hash: string }>;
    const gone = records.find((r) => r.owner === 'alpha')!.key_hash;
    writeFileSync(
      path,
      JSON.stringify(
        records.filter((r) => r.owner !== 'alpha'),
        null,
        2,
      ),
    ); // deleted by another program
    await waitFor(() => auth.store.get(gone) === undefined, 5000);
    await auth.flush();
    endWindow();
    await auth.deliverBilling();
    const ledger = await ledgerOf(dir);
    expect(ledger.map((e) => [e.key_hash === gone ? 'gone' : e.owner, e.owner, e.key_prefix, e.customer_id, e.quantity]).sort()).toEqual([
      ['beta', 'beta', expect.stringMatching(/^dm_/), null, 1],
      ['gone', '', '', null, 3],
    ]);
  });

  test('a damaged outbox line is moved to the quarantine file with one message naming both files; the other usage is billed', async () => {
    const { dir, keys } = await setup([{ owner: 'alpha' }]);
    const errors: Error[] = [];
    const auth = start(dir, { onError: (e) => errors.push(e) });
    await hit(auth, keys[0]!, 2);
    await auth.flush();
    const outboxPath = join(dir, 'billing-outbox.jsonl');
    const [line] = readFileSync(outboxPath, 'utf8').split('\n');
    writeFileSync(outboxPath, `${line}\n${line!.slice(0, 40)}#${line!.slice(40)}\n`); // a copy with one stray character
    await hit(auth, keys[0]!, 1);
    await auth.flush();
    endWindow();
    await auth.deliverBilling();
    await auth.deliverBilling();
    expect(errors.map((e) => e.message)).toEqual([
      `1 damaged line(s) of ${outboxPath} (line 2) moved byte for byte to ${outboxPath}.quarantine; they are not billed until you repair them and append them to the outbox again`,
    ]);
    expect(readFileSync(`${outboxPath}.quarantine`, 'utf8')).toBe(`${line!.slice(0, 40)}#${line!.slice(40)}\n`);
    expect((await ledgerOf(dir)).map((e) => e.quantity)).toEqual([3]);
  });
});
