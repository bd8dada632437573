import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { daymindAuth, newWebhookSecret, type AlertEvent, type DaymindAuth } from '../../src';
import { appWith, closeAll, tempDir, testClock, type TestClock } from '../helpers';
import { startReceiver, type TestReceiver } from './receiver';

const SECRET = newWebhookSecret();
const PLANS = { small: { limits: [], monthly_quota: 10 } };
const open: Array<{ close(): Promise<void> }> = [];
afterEach(() => closeAll(open));

async function setUp(clock: TestClock, storePath = join(tempDir(), 'api_keys.json'), errors: Error[] = []) {
  const receiver: TestReceiver = await startReceiver(SECRET, clock.now);
  open.push(receiver);
  const auth: DaymindAuth = daymindAuth({
    env: {},
    storePath,
    plans: PLANS,
    webhooks: receiver.url,
    webhookSecret: SECRET,
    alertIntervalMs: 3_600_000,
    ipRateLimitPerMinute: false,
    billing: false,
    now: clock.now,
    onError: (err) => errors.push(err),
  });
  open.push(auth);
  await auth.ready;
  const hit = async (key: string, times: number) => {
    for (let i = 0; i < times; i++) expect((await request(appWith(auth)).get('/v1/hello').set('x-api-key', key)).status).toBe(200);
  };
  return { auth, receiver, hit, storePath };
}

const summary = (events: AlertEvent[]) => events.map((e) => `${e.type}:${e.data.threshold}:${e.data.period}`);

describe('alert periods at the ends of months and years', () => {
  test.each([
    ['a leap day', Date.UTC(2028, 1, 29, 23, 58), 202802, 202803],
    ['a year', Date.UTC(2026, 11, 31, 23, 58), 202612, 202701],
    ['a 30-day month', Date.UTC(2026, 3, 30, 23, 58), 202604, 202605],
  ])('80%% of the quota at the end of %s, and again in the next month', async (_name, start, first, second) => {
    const clock = testClock(start);
    const { auth, receiver, hit } = await setUp(clock);
    const { key } = await auth.store.create({ owner: 'acme', plan: 'small' });
    await hit(key, 8);
    await auth.deliverAlerts();
    clock.advance(3 * 60_000); // past midnight: a new month, a fresh quota
    await auth.deliverAlerts();
    expect(summary(receiver.taken)).toEqual([`quota.threshold:80:${first}`]);
    await hit(key, 7);
    await auth.deliverAlerts();
    expect(summary(receiver.taken)).toHaveLength(1);
    await hit(key, 1);
    await auth.deliverAlerts();
    expect(summary(receiver.taken)).toEqual([`quota.threshold:80:${first}`, `quota.threshold:80:${second}`]);
  });

  test('credits refilled daily alert again in the next day; a damaged line in the alerts file is reported and left as it is', async () => {
    const clock = testClock(Date.UTC(2026, 5, 30, 23, 58));
    const errors: Error[] = [];
    const { auth, receiver, hit, storePath } = await setUp(clock, undefined, errors);
    const { key } = await auth.store.create({ owner: 'acme', credits_refill: { interval: 'daily', amount: 150 } });
    await hit(key, 60); // 90 left: below 100
    await auth.deliverAlerts();
    appendFileSync(`${storePath}.alerts`, '{"claim": {"id": "evt_cut\n');
    const damaged = readFileSync(`${storePath}.alerts`);
    clock.advance(3 * 60_000);
    await hit(key, 60);
    await auth.deliverAlerts();
    expect(summary(receiver.taken)).toEqual(['credits.low:100:20260630', 'credits.low:100:20260701']);
    expect(errors.map((e) => e.message)).toEqual([
      `the alerts file ${storePath}.alerts has a damaged line 3; it is skipped and left as it is`,
    ]);
    expect(readFileSync(`${storePath}.alerts`).subarray(0, damaged.length)).toEqual(damaged);
  });
});
