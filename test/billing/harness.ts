/** What the in-process billing tests share: a standing clock, a store with keys, daymindAuth on it, the outbox. */
import { join } from 'node:path';
import request from 'supertest';
import { daymindAuth, JsonFileKeyStore, readLedger, type DaymindAuth, type DaymindOptions, type UsageReport } from '../../src';
import { Outbox } from '../../src/billing/outbox';
import { appWith, closeAll, monthsBetween, tempDir, testClock, TEST_NOW } from '../helpers';

// Every instance runs on one clock that stands still until a test moves it past a billing window.
export const clock = testClock();
/** The ledger of every month the clock has been in. */
export const ledgerOf = (dir: string) => readLedger(dir, monthsBetween(TEST_NOW, clock.now()));
/**
 * Moves the clock past the end of the current billing window (1 minute) and past the time a
 * window waits for flushes still under way (2 flush intervals + 1 s: 121 s with these settings).
 */
export const endWindow = () => clock.advance(60_000 + 121_000 + 1000);
const open: DaymindAuth[] = [];
afterEach(() => closeAll(open));

export async function setup(keys: Array<{ owner: string; customer?: string }>) {
  const dir = tempDir();
  const path = join(dir, 'api_keys.json');
  const store = new JsonFileKeyStore({ path });
  const created = [];
  for (const k of keys) created.push((await store.create({ owner: k.owner, stripe_customer_id: k.customer ?? null })).key);
  return { dir, path, keys: created };
}

export function start(dir: string, options: DaymindOptions): DaymindAuth {
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
export const viaStripe = (port: number): DaymindOptions => ({
  billing: 'stripe',
  stripeSecretKey: 'sk_test_123',
  stripeApiBase: `http://127.0.0.1:${port}`,
});

export async function hit(auth: DaymindAuth, key: string, times: number): Promise<void> {
  const app = appWith(auth);
  for (let i = 0; i < times; i++) expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
}

/** Reports in the outbox not yet delivered or dead-lettered. */
export const outboxPending = async (dir: string): Promise<UsageReport[]> =>
  (await new Outbox(join(dir, 'billing-outbox.jsonl')).read()).pending;
/** Whether the outbox holds nothing: no report waiting, no usage of a window not closed yet. */
export const outboxIdle = async (dir: string): Promise<boolean> => {
  const { pending, parts } = await new Outbox(join(dir, 'billing-outbox.jsonl')).read();
  return pending.length === 0 && parts.length === 0;
};
