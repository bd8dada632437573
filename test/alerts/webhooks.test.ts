import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import { Registry } from 'prom-client';
import request from 'supertest';
import { ConfigError, daymindAuth, metricsHandler, newWebhookSecret, verifyWebhook, type AlertEvent, type DaymindAuth } from '../../src';
import { appWith, closeAll, sleep, tempDir, testClock, TEST_NOW } from '../helpers';
import { startReceiver, tally, type TestReceiver } from './receiver';

const SECRET = newWebhookSecret();
const PLANS = { small: { limits: [], monthly_quota: 10 } };
const open: Array<{ close(): Promise<void> }> = [];
afterEach(() => closeAll(open));

async function setUp(
  receiverUrl: string,
  extra: Parameters<typeof daymindAuth>[0] = {},
  clock = testClock(),
): Promise<{ auth: DaymindAuth; storePath: string }> {
  const storePath = (extra.storePath as string | undefined) ?? join(tempDir(), 'api_keys.json');
  const auth = daymindAuth({
    env: {},
    storePath,
    plans: PLANS,
    webhooks: receiverUrl,
    webhookSecret: SECRET,
    alertIntervalMs: 3_600_000, // the tests run the checks themselves (deliverAlerts)
    ipRateLimitPerMinute: false,
    billing: false,
    now: clock.now,
    onError: () => undefined,
    ...extra,
  });
  open.push(auth);
  await auth.ready;
  return { auth, storePath };
}

async function hit(auth: DaymindAuth, key: string, times: number): Promise<number[]> {
  const app = appWith(auth);
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) statuses.push((await request(app).get('/v1/hello').set('x-api-key', key)).status);
  return statuses;
}

describe('Standard Webhooks signatures', () => {
  test('a signature made by the standard formula verifies; a changed body, id, timestamp or secret does not', () => {
    const id = 'evt_1';
    const stamp = Math.floor(TEST_NOW / 1000);
    const body = '{"type":"quota.threshold"}';
    const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
    const sig = `v1,${createHmac('sha256', key).update(`${id}.${stamp}.${body}`).digest('base64')}`;
    const headers = { 'webhook-id': id, 'webhook-timestamp': String(stamp), 'webhook-signature': `v1,bogus ${sig}` };
    const now = () => TEST_NOW;
    expect(verifyWebhook(SECRET, headers, body, { now })).toEqual({ type: 'quota.threshold' });
    expect(() => verifyWebhook(SECRET, headers, body + ' ', { now })).toThrow('no valid v1 signature');
    expect(() => verifyWebhook(SECRET, { ...headers, 'webhook-id': 'evt_2' }, body, { now })).toThrow('no valid v1 signature');
    expect(() => verifyWebhook(newWebhookSecret(), headers, body, { now })).toThrow('no valid v1 signature');
    expect(() => verifyWebhook(SECRET, headers, body, { now: () => TEST_NOW + 301_000 })).toThrow('too old or too new');
    expect(() => verifyWebhook(SECRET, { 'webhook-id': id }, body, { now })).toThrow('missing');
  });
});

describe('bad alert configuration is a ConfigError naming the variable', () => {
  const make = (env: Record<string, string>) => () => daymindAuth({ env: { API_KEY_STORE_PATH: join(tempDir(), 'k.json'), ...env } });
  test.each([
    [{ DAYMIND_WEBHOOK_URL: 'ftp://example.com/hook', DAYMIND_WEBHOOK_SECRET: SECRET }, 'DAYMIND_WEBHOOK_URL'],
    [{ DAYMIND_WEBHOOK_URL: 'not a url', DAYMIND_WEBHOOK_SECRET: SECRET }, 'DAYMIND_WEBHOOK_URL'],
    [{ DAYMIND_WEBHOOK_URL: 'https://example.com/hook' }, 'DAYMIND_WEBHOOK_SECRET'],
    [{ DAYMIND_WEBHOOK_URL: 'https://example.com/hook', DAYMIND_WEBHOOK_SECRET: 'secret' }, 'DAYMIND_WEBHOOK_SECRET'],
    [{ DAYMIND_ALERT_QUOTA_PERCENTS: '80,abc' }, 'DAYMIND_ALERT_QUOTA_PERCENTS'],
  ])('%j', (env, name) => {
    expect(make(env)).toThrow(ConfigError);
    expect(make(env)).toThrow(new RegExp(`^${name}: `));
  });
  test('the option is named when the URL came by option', () => {
    expect(() => daymindAuth({ env: {}, storePath: join(tempDir(), 'k.json'), webhooks: 'https://example.com/h' })).toThrow(
      /^webhookSecret: is required with webhooks/,
    );
  });
});

describe('alerts by webhook', () => {
  let receiver: TestReceiver;
  /** The receiver's clock: the test's own, when it moves it. */
  let receiverNow = () => TEST_NOW;
  beforeEach(async () => {
    receiverNow = () => TEST_NOW;
    receiver = await startReceiver(SECRET, () => receiverNow());
    open.push(receiver);
  });

  test('quota at 80% and 100%: exactly one signed webhook each, however often it is checked', async () => {
    const { auth, storePath } = await setUp(receiver.url);
    const seen: AlertEvent[] = [];
    auth.observeAlerts((e) => seen.push(e));
    const { key, record } = await auth.store.create({ owner: 'acme', plan: 'small' });
    await hit(auth, key, 7);
    await auth.deliverAlerts();
    expect(receiver.taken).toEqual([]);
    await hit(auth, key, 1); // 8 of 10
    await auth.deliverAlerts();
    await auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1 });
    expect(await hit(auth, key, 3)).toEqual([200, 200, 429]);
    for (let i = 0; i < 3; i++) await auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
    expect(receiver.bad).toEqual([]);
    const full = receiver.taken[1]!;
    expect(full).toMatchObject({
      type: 'quota.threshold',
      timestamp: new Date(TEST_NOW).toISOString(),
      data: { key_prefix: record.key_prefix, owner: 'acme', threshold: 100, used: 10, limit: 10 },
    });
    expect(seen.map((e) => e.id)).toEqual(receiver.taken.map((e) => e.id));
    // docs/alerts.md shows the first one: the same fields, the same kinds of values.
    const doc = readFileSync(join(__dirname, '../../docs/alerts.md'), 'utf8');
    const shown = JSON.parse(/```json\n([\s\S]*?)```/.exec(doc)![1]!) as AlertEvent;
    const shape = (v: unknown): unknown =>
      v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)])) : typeof v;
    expect(shape(shown)).toEqual(shape(receiver.taken[0]));
    expect(shown.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(receiver.taken[0]!.id).toMatch(/^evt_[0-9a-f]{32}$/);
    const stats = await auth.stats();
    expect([stats.alertsEmitted, stats.alertsDelivered, stats.alertsFailed]).toEqual([2, 2, 0]);
    const app = express().get('/metrics', metricsHandler(auth, { registry: new Registry() }));
    const scraped = (await request(app).get('/metrics').expect(200)).text;
    expect(scraped).toContain('\ndaymind_alert_events_emitted_total 2\n');
    expect(scraped).toContain('\ndaymind_alert_webhooks_delivered_total 2\n');
    expect(scraped).toContain('\ndaymind_alert_webhooks_failed_total 0\n');
    // The claims are beside the store, in its own file.
    const lines = readFileSync(`${storePath}.alerts`, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('{"claim"'))).toHaveLength(2);
  });

  test('a receiver answering 500 for a while gets each alert once when it is back, with backoff meanwhile', async () => {
    const { auth } = await setUp(receiver.url);
    const { key } = await auth.store.create({ owner: 'acme', plan: 'small' });
    receiver.failing = true;
    await hit(auth, key, 10);
    await auth.deliverAlerts();
    expect(receiver.refused).toBe(1); // it backs off after the first failure: the second alert waits
    for (let i = 0; i < 2; i++) await auth.deliverAlerts();
    expect(receiver.refused).toBe(1); // still backing off (0.5 s)
    await sleep(600);
    await auth.deliverAlerts();
    expect(receiver.refused).toBe(2);
    receiver.failing = false;
    await sleep(1100);
    await auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
    expect((await auth.stats()).alertsFailed).toBe(2);
  });

  test('credits below the threshold and at 0, a rate-limit refusal, an expiring key, revocation and rotation', async () => {
    const clock = testClock();
    receiverNow = clock.now;
    const { auth } = await setUp(receiver.url, { alertCreditsBelow: 3, alertExpiringDays: 2 }, clock);
    const prepaid = await auth.store.create({ owner: 'prepaid', credits: 4 });
    const limited = await auth.store.create({ owner: 'limited', rate_limit_per_minute: 2 });
    const expiring = await auth.store.create({ owner: 'expiring', expires_at: TEST_NOW / 1000 + 3 * 86_400 });
    const old = await auth.store.create({ owner: 'rotating' });
    const revoked = await auth.store.create({ owner: 'revoked' });
    await hit(auth, prepaid.key, 2); // 2 left: below 3
    expect(await hit(auth, limited.key, 3)).toEqual([200, 200, 429]);
    await auth.store.revoke(revoked.record.key_hash);
    const rotated = await auth.store.rotate!(old.record.key_hash, 3600);
    await auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({ 'credits.low:3': 1, 'rate_limit.first_refusal:': 1, 'key.revoked:': 1, 'key.rotated:': 1 });
    const byType = Object.fromEntries(receiver.taken.map((e) => [e.type, e]));
    expect(byType['credits.low']!.data).toMatchObject({ owner: 'prepaid', credits: 2 });
    expect(byType['rate_limit.first_refusal']!.data).toMatchObject({ owner: 'limited' });
    expect(byType['key.rotated']!.data).toMatchObject({ key_prefix: old.record.key_prefix, replaced_by: rotated!.record.key_prefix });
    expect(await hit(auth, prepaid.key, 3)).toEqual([200, 200, 402]); // 0 left, then refused
    expect(await hit(auth, limited.key, 2)).toEqual([429, 429]); // same day: no second alert
    clock.advance(86_400_000 + 1000); // a day later: expiry within 2 days, and the rate limit may alert again
    await hit(auth, limited.key, 3);
    await auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({
      'credits.low:3': 1,
      'credits.exhausted:0': 1,
      'rate_limit.first_refusal:': 2,
      'key.revoked:': 2, // the revoked key, and the rotated one at the end of its grace period
      'key.rotated:': 1,
      'key.expiring:2': 1,
    });
    expect(receiver.taken.find((e) => e.type === 'key.expiring')!.data.owner).toBe(expiring.record.owner);
  });

  test('a restart between the crossing and the delivery loses nothing and sends nothing twice', async () => {
    const storePath = join(tempDir(), 'api_keys.json');
    await receiver.close();
    const down = receiver.url; // nothing listens there now
    const first = await setUp(down, { storePath });
    const { key } = await first.auth.store.create({ owner: 'acme', plan: 'small' });
    await hit(first.auth, key, 10);
    await first.auth.close(); // claimed, not delivered
    open.splice(open.indexOf(first.auth), 1);
    receiver = await startReceiver(SECRET, () => TEST_NOW, Number(new URL(down).port));
    open.push(receiver);
    const second = await setUp(down, { storePath });
    await second.auth.deliverAlerts();
    await second.auth.deliverAlerts();
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
    expect((await second.auth.stats()).alertsEmitted).toBe(0); // claimed by the first run, delivered by this one
  });
});
