/**
 * Paddle mode through the official SDK against the local Paddle-like server: one-time charges
 * equal to the usage of each subscription and price, each made once across 5xx answers (before
 * and after Paddle made the charge), 429s with Retry-After and a renewal between a charge and
 * its check; bad settings are ConfigErrors naming the variable.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BillingRejection,
  ConfigError,
  daymindAuth,
  JsonFileKeyStore,
  PaddleBillingProvider,
  resolveConfig,
  type DaymindAuth,
  type DaymindOptions,
} from '../../src';
import { sleep } from '../helpers';
import { clock, endWindow, hit, ledgerOf, outboxIdle, start } from './harness';
import { startPaddleServer } from './paddle-server';
import { tempDir } from '../helpers';

/** Paddle ids: a prefix and 26 lowercase letters or digits. */
const paddleId = (prefix: string, name: string) => `${prefix}_${name.padEnd(26, '0')}`;
const SUB_A = paddleId('sub', '01alpha');
const SUB_B = paddleId('sub', '01beta');
const PRICE = paddleId('pri', '01usage');
const PRO_PRICE = paddleId('pri', '01usagepro');

type Server = Awaited<ReturnType<typeof startPaddleServer>>;
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function paddleServer(subscriptions = [SUB_A, SUB_B]): Promise<Server> {
  const server = await startPaddleServer({ subscriptions });
  servers.push(server);
  return server;
}

/** A store with keys: each with its subscription (or none) and plan (or none). */
async function keysIn(keys: Array<{ owner: string; subscription?: string; plan?: string }>) {
  const dir = tempDir();
  const store = new JsonFileKeyStore({ path: join(dir, 'api_keys.json') });
  const created = [];
  for (const k of keys) {
    created.push((await store.create({ owner: k.owner, paddle_subscription_id: k.subscription ?? null, plan: k.plan ?? null })).key);
  }
  await store.close();
  return { dir, keys: created };
}

const viaPaddle = (server: Server): DaymindOptions => ({
  billing: 'paddle',
  paddleApiKey: 'pdl_test_key',
  paddlePriceId: PRICE,
  paddleApiBase: server.url,
  paddleRecheckAfterMs: 1000,
  billingWindow: '1m',
  billingMaxCallsPerSecond: 100,
});

/** Delivery rounds, the clock moving on 2 s each (past the recheck delay), until the outbox is empty. */
async function deliverAll(auth: DaymindAuth, dir: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    await auth.deliverBilling();
    if (await outboxIdle(dir)) return;
    if (Date.now() > end) throw new Error('the outbox did not empty');
    clock.advance(2000);
    await sleep(100);
  }
}

const journalOf = (dir: string) =>
  readFileSync(join(dir, 'paddle-charges.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('Paddle mode through the official SDK', () => {
  test('one charge per key and window on its subscription, at its plan price, billed with the next renewal', async () => {
    const paddle = await paddleServer();
    const { dir, keys } = await keysIn([
      { owner: 'alpha', subscription: SUB_A },
      { owner: 'beta', subscription: SUB_B, plan: 'pro' },
      { owner: 'gamma', subscription: SUB_A },
      { owner: 'nosub' },
    ]);
    const errors: Error[] = [];
    const auth = start(dir, {
      ...viaPaddle(paddle),
      plans: { pro: { limits: [], paddle_price_id: PRO_PRICE } },
      onError: (e) => errors.push(e),
    });
    await hit(auth, keys[0]!, 3);
    await hit(auth, keys[1]!, 2);
    await hit(auth, keys[2]!, 4);
    await hit(auth, keys[3]!, 1);
    await auth.flush();
    await hit(auth, keys[0]!, 2); // the same window: the same charge
    await auth.flush();
    endWindow();
    await auth.deliverBilling();

    const charges = paddle.requests.filter((r) => r.method === 'POST');
    const byText = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
    expect(charges.map((r) => [r.path, r.body, r.status]).sort(byText)).toEqual([
      [`/subscriptions/${SUB_A}/charge`, { effective_from: 'next_billing_period', items: [{ price_id: PRICE, quantity: 4 }] }, 200],
      [`/subscriptions/${SUB_A}/charge`, { effective_from: 'next_billing_period', items: [{ price_id: PRICE, quantity: 5 }] }, 200],
      [`/subscriptions/${SUB_B}/charge`, { effective_from: 'next_billing_period', items: [{ price_id: PRO_PRICE, quantity: 2 }] }, 200],
    ]);
    for (const r of paddle.requests) expect(r.authorization).toBe('bearer pdl_test_key');
    // Each charge is preceded by a look at the subscription's next renewal.
    expect(paddle.requests.filter((r) => r.method === 'GET').map((r) => r.query)).toEqual([
      { include: 'next_transaction' },
      { include: 'next_transaction' },
      { include: 'next_transaction' },
    ]);
    expect([paddle.units(SUB_A, PRICE), paddle.units(SUB_B, PRO_PRICE)]).toEqual([9, 2]);
    const ledger = await ledgerOf(dir);
    expect(ledger.map((e) => [e.owner, e.customer_id, e.quantity]).sort()).toEqual([
      ['alpha', `${SUB_A}/${PRICE}`, 5],
      ['beta', `${SUB_B}/${PRO_PRICE}`, 2],
      ['gamma', `${SUB_A}/${PRICE}`, 4],
      ['nosub', null, 1],
    ]);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/has no paddle_subscription_id: its usage goes to the local ledger only/),
    ]);
    // The journal: each charge recorded before its call and marked charged after it.
    const journal = journalOf(dir);
    expect(journal.filter((l) => l.charging)).toHaveLength(3);
    expect(
      journal
        .filter((l) => l.charged)
        .map((l) => l.charged)
        .sort(),
    ).toEqual(
      ledger
        .filter((e) => e.customer_id)
        .map((e) => e.identifier)
        .sort(),
    );
    expect(await outboxIdle(dir)).toBe(true);
  });

  test("a plan's new paddle_price_id in a re-read plans file applies to the usage counted from then on", async () => {
    const paddle = await paddleServer();
    const { dir, keys } = await keysIn([{ owner: 'beta', subscription: SUB_B, plan: 'pro' }]);
    const plansFile = join(dir, 'plans.json');
    const plansWith = (price: string) => JSON.stringify({ pro: { limits: [], paddle_price_id: price } });
    writeFileSync(plansFile, plansWith(PRO_PRICE));
    const auth = start(dir, { ...viaPaddle(paddle), env: { DAYMIND_PLANS_FILE: plansFile }, reloadIntervalMs: 50 });
    await hit(auth, keys[0]!, 2);
    await auth.flush();
    writeFileSync(plansFile, plansWith(PRICE) + '\n');
    await sleep(300); // the file is checked every 50 ms
    await hit(auth, keys[0]!, 3);
    await auth.flush();
    endWindow();
    await deliverAll(auth, dir);
    expect([paddle.units(SUB_B, PRO_PRICE), paddle.units(SUB_B, PRICE)]).toEqual([2, 3]);
  });

  test('5xx before and after Paddle made the charge, and a 429 with Retry-After: every unit charged once', async () => {
    const paddle = await paddleServer();
    paddle.failNext({ status: 500 }, { status: 429, retryAfterSeconds: 1 }, { status: 500, applied: true }, { status: 503, applied: true });
    const { dir, keys } = await keysIn([{ owner: 'alpha', subscription: SUB_A }]);
    const errors: Error[] = [];
    const auth = start(dir, { ...viaPaddle(paddle), onError: (e) => errors.push(e) });
    for (const n of [4, 6, 1]) {
      await hit(auth, keys[0]!, n);
      await auth.flush();
      endWindow(); // one window each
    }
    await deliverAll(auth, dir);
    const posts = paddle.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.status)).toEqual([500, 429, 500, 503, 200]);
    // The 429's Retry-After (1 s) is waited out before that subscription is called again.
    const after429 = paddle.requests.find((r) => r.at > posts[1]!.at)!;
    expect(after429.at - posts[1]!.at).toBeGreaterThanOrEqual(950);
    // Made once each: the two 5xx answers after the charge were found at Paddle, not sent again.
    expect(paddle.charges.map((c) => c.quantity).sort()).toEqual([1, 4, 6]);
    expect(paddle.units(SUB_A)).toBe(11);
    expect((await ledgerOf(dir)).reduce((sum, e) => sum + e.quantity, 0)).toBe(11);
    expect(errors.some((e) => /has no answer/.test(e.message))).toBe(true);
  });

  test('a renewal between an unanswered charge and its check: found on the renewal transaction, or charged again once', async () => {
    const paddle = await paddleServer();
    const { dir, keys } = await keysIn([
      { owner: 'alpha', subscription: SUB_A },
      { owner: 'beta', subscription: SUB_B },
    ]);
    const auth = start(dir, viaPaddle(paddle));
    await hit(auth, keys[0]!, 3);
    await hit(auth, keys[1]!, 5);
    await auth.flush();
    endWindow();
    // A: made, then 500; B: 500 before anything was made. Both renew before they are checked.
    paddle.failNext({ status: 500, applied: true }, { status: 500 });
    await auth.deliverBilling();
    expect(paddle.charges.map((c) => [c.subscription, c.quantity])).toEqual([[expect.any(String), expect.any(Number)]]);
    paddle.renew(SUB_A);
    paddle.renew(SUB_B);
    await deliverAll(auth, dir);
    expect([paddle.units(SUB_A), paddle.units(SUB_B)]).toEqual([3, 5]);
    expect(paddle.charges).toHaveLength(2);
    const listed = paddle.requests.filter((r) => r.path === '/transactions');
    expect(listed.length).toBeGreaterThan(0);
    expect(listed[0]!.query).toMatchObject({ origin: 'subscription_recurring' });
  });

  test('units of the usage price the journal cannot explain stop that subscription and are reported, never guessed at', async () => {
    const paddle = await paddleServer();
    const { dir, keys } = await keysIn([{ owner: 'alpha', subscription: SUB_A }]);
    const errors: Error[] = [];
    const auth = start(dir, { ...viaPaddle(paddle), onError: (e) => errors.push(e) });
    await hit(auth, keys[0]!, 3);
    await auth.flush();
    endWindow();
    paddle.failNext({ status: 502 });
    await auth.deliverBilling();
    // Someone charges the same price to the subscription by hand meanwhile.
    const res = await fetch(`${paddle.url}/subscriptions/${SUB_A}/charge`, {
      method: 'POST',
      headers: { authorization: 'bearer other', 'content-type': 'application/json' },
      body: JSON.stringify({ effective_from: 'next_billing_period', items: [{ price_id: PRICE, quantity: 7 }] }),
    });
    expect(res.status).toBe(200);
    for (let i = 0; i < 3; i++) {
      clock.advance(2000);
      await sleep(600);
      await auth.deliverBilling();
    }
    expect(paddle.charges.map((c) => c.quantity)).toEqual([7]);
    expect(await outboxIdle(dir)).toBe(false);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/cannot tell whether the Paddle charge of 3 unit\(s\).*append \{"charged":/);
  });
});

test('usage recorded in another billing mode (a Stripe customer) is dead-lettered with its reason, not charged', async () => {
  const paddle = await paddleServer();
  const provider = new PaddleBillingProvider({
    apiKey: 'pdl_test_key',
    apiBase: paddle.url,
    journalPath: join(tempDir(), 'paddle-charges.jsonl'),
    onError: () => undefined,
  });
  const report = {
    identifier: 'dmu_stripe',
    key_hash: 'a'.repeat(64),
    key_prefix: 'dm_abcdef',
    owner: 'alpha',
    customer_id: 'cus_Alpha1',
    quantity: 3,
    window_start: 1_800_000_000,
    window_end: 1_800_000_030,
  };
  await expect(provider.deliver(report)).rejects.toThrow(
    new BillingRejection(
      'the usage was recorded for "cus_Alpha1", not a Paddle subscription and price (in another billing mode): it is not charged to Paddle',
    ),
  );
  expect(paddle.requests).toEqual([]);
});

describe('Paddle settings', () => {
  const base = { API_KEY_STORE_PATH: '/tmp/none/api.json', BILLING_MODE: 'paddle' };

  test('PADDLE_API_KEY and PADDLE_PRICE_ID are required and checked, each named in its ConfigError', () => {
    const problem = (env: Record<string, string>) => {
      try {
        resolveConfig({ env: { ...base, ...env } });
      } catch (err) {
        return err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}`;
      }
      return 'no error';
    };
    expect(problem({ PADDLE_PRICE_ID: PRICE })).toMatch(/^PADDLE_API_KEY: is required when BILLING_MODE is "paddle"/);
    expect(problem({ PADDLE_API_KEY: 'pdl_x' })).toMatch(/^PADDLE_PRICE_ID: is required when BILLING_MODE is "paddle"/);
    expect(problem({ PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: 'pri_123' })).toMatch(
      /^PADDLE_PRICE_ID: must be a Paddle price id.*"pri_123"/,
    );
    expect(problem({ PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: PRICE.toUpperCase() })).toMatch(/^PADDLE_PRICE_ID: /);
    expect(problem({ PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: PRICE, PADDLE_API_BASE: 'localhost:8080' })).toMatch(/^PADDLE_API_BASE: /);
    expect(problem({ PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: PRICE, PADDLE_ENVIRONMENT: 'live' })).toMatch(/^PADDLE_ENVIRONMENT: /);
    expect(() =>
      resolveConfig({
        env: { ...base, PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: PRICE },
        plans: { pro: { limits: [], paddle_price_id: 'pri_x' } },
      }),
    ).toThrow(/^plans: plan "pro": "paddle_price_id" must be a Paddle price id/);
  });

  test('Paddle mode bills hourly at one charge a second unless told otherwise', () => {
    const env = { ...base, PADDLE_API_KEY: 'pdl_x', PADDLE_PRICE_ID: PRICE };
    expect(resolveConfig({ env })).toMatchObject({
      billing: 'paddle',
      billingWindowSeconds: 3600,
      billingMaxCallsPerSecond: 1,
      paddle: { apiKey: 'pdl_x', priceId: PRICE, environment: 'production', apiBase: undefined, recheckAfterMs: 60_000 },
    });
    expect(resolveConfig({ env: { ...env, BILLING_WINDOW: '1d', BILLING_MAX_CALLS_PER_SECOND: '3' } })).toMatchObject({
      billingWindowSeconds: 86_400,
      billingMaxCallsPerSecond: 3,
    });
    expect(resolveConfig({ env: { ...env, PADDLE_ENVIRONMENT: 'sandbox' } }).paddle!.environment).toBe('sandbox');
  });

  test('a missing @paddle/paddle-node-sdk is an error naming the package and how to install it', () => {
    jest.isolateModules(() => {
      jest.doMock('@paddle/paddle-node-sdk', () => {
        throw new Error("Cannot find module '@paddle/paddle-node-sdk'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { daymindAuth: isolated } = require('../../src') as typeof import('../../src');
      expect(() =>
        isolated({
          env: {},
          storePath: join(tempDir(), 'api_keys.json'),
          billing: 'paddle',
          paddleApiKey: 'pdl_x',
          paddlePriceId: PRICE,
        }),
      ).toThrow(/BILLING_MODE=paddle needs the optional peer dependency "@paddle\/paddle-node-sdk".*npm install @paddle\/paddle-node-sdk/);
      jest.dontMock('@paddle/paddle-node-sdk');
    });
    expect(typeof daymindAuth).toBe('function');
  });
});
