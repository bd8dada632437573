import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import request from 'supertest';
import { RedisKeyStore, daymindAuth, hashKey } from '../../src';
import { appWith, waitFor } from '../helpers';
import { redisForFile } from './harness';

const run = promisify(execFile);
const WORKER = join(__dirname, '../fixtures/app-worker.js');
const testRedis = redisForFile();

const PLANS = {
  metered: { limits: [{ name: 'minute', limit: 100000, window: '1m' }], monthly_quota: 100 },
  prepaid: { limits: [{ name: 'minute', limit: 100000, window: '1m' }] },
};

async function withStore<T>(prefix: string, use: (store: RedisKeyStore) => Promise<T>): Promise<T> {
  const client = new Redis(testRedis.server.url);
  const store = new RedisKeyStore({ client, prefix, pollIntervalMs: 0 });
  try {
    await store.init();
    return await use(store);
  } finally {
    await store.close();
    await client.quit();
  }
}

/** Three app processes on one Redis, each sending `requests` with `key`; their answers by status, summed. */
async function threeProcesses(prefix: string, key: string, requests: number): Promise<Record<string, number>> {
  const job = JSON.stringify({ redis: testRedis.server.url, prefix, plans: PLANS, key, requests, lanes: 6 });
  const outputs = await Promise.all([0, 1, 2].map(() => run(process.execPath, [WORKER, job], { timeout: 60_000 })));
  const total: Record<string, number> = {};
  for (const { stdout, stderr } of outputs) {
    expect(stderr).toBe('');
    for (const [status, n] of Object.entries((JSON.parse(stdout) as { statuses: Record<string, number> }).statuses))
      total[status] = (total[status] ?? 0) + n;
  }
  return total;
}

describe('plans on Redis: exact across instances', () => {
  test('three processes, a monthly quota of 100: exactly 100 allowed', async () => {
    const key = await withStore('plans1', async (store) => (await store.create({ owner: 'metered', plan: 'metered' })).key);
    expect(await threeProcesses('plans1', key, 60)).toEqual({ 200: 100, 429: 80 });
    await withStore('plans1', async (store) => {
      expect((await store.fetch(hashKey(key)))!).toMatchObject({ usage_count: 100, requests_this_month: 100 });
    });
  });

  test('three processes, 50 prepaid credits: exactly 50 allowed, and credits never below 0', async () => {
    const key = await withStore('plans2', async (store) => (await store.create({ owner: 'prepaid', plan: 'prepaid', credits: 50 })).key);
    expect(await threeProcesses('plans2', key, 40)).toEqual({ 200: 50, 402: 70 });
    await withStore('plans2', async (store) => {
      expect((await store.fetch(hashKey(key)))!).toMatchObject({ usage_count: 50, credits: 0 });
    });
  });

  test('while Redis is down: a key with a quota is answered 503 (nothing can be spent safely), a plain key goes on (open mode)', async () => {
    const { metered, plain } = await withStore('plans3', async (store) => ({
      metered: (await store.create({ owner: 'metered', plan: 'metered' })).key,
      plain: (await store.create({ owner: 'plain' })).key,
    }));
    const errors: string[] = [];
    const auth = daymindAuth({
      env: {},
      redis: testRedis.server.url,
      keyStore: 'redis',
      redisPrefix: 'plans3',
      plans: PLANS,
      billing: false,
      onError: (e) => errors.push(e.message),
    });
    let down = false;
    try {
      await auth.ready;
      const app = appWith(auth);
      expect((await request(app).get('/v1/hello').set('x-api-key', metered)).status).toBe(200);
      await testRedis.server.stop();
      down = true;
      const refused = await request(app).get('/v1/hello').set('x-api-key', metered);
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('service_unavailable');
      expect((await request(app).get('/v1/hello').set('x-api-key', plain)).status).toBe(200);
      expect(errors.join('\n')).toMatch(/quota and credits check failed/);
      await testRedis.server.start();
      down = false;
      // Back up: close() writes what was counted meanwhile, once the client has reconnected.
      await waitFor(async () => (await auth.stats()).redisConnected === true, 10_000);
    } finally {
      if (down) await testRedis.server.start(); // a failure above must not leave the file's Redis down
      await auth.close();
    }
    // Nothing counted during the outage is lost, and the refused request is not usage.
    await withStore('plans3', async (store) => {
      expect(await store.fetch(hashKey(metered))).toMatchObject({ usage_count: 1, requests_this_month: 1 });
      expect(await store.fetch(hashKey(plain))).toMatchObject({ usage_count: 1 });
    });
  }, 30_000);
});

describe('plans on Redis: a refusal gives back what earlier windows took', () => {
  const GIVE_BACK_PLANS = {
    tight: {
      limits: [
        { name: 'second', limit: 3, window: '1s' },
        { name: 'day', limit: 1, window: '1d' },
      ],
    },
    metered: { limits: [{ name: 'minute', limit: 1000, window: '1m' }], monthly_quota: 2 },
  };
  const rate = (res: request.Response) => (res.headers['ratelimit'] as string).split(', ').map((item) => item.split(';t=')[0]);

  test('refused by "day" on one instance, the next request on another shows "second" as before it; a quota refusal gives back "minute"', async () => {
    const instances = [0, 1].map(() =>
      daymindAuth({
        env: {},
        redis: testRedis.server.url,
        keyStore: 'redis',
        redisPrefix: 'giveback',
        plans: GIVE_BACK_PLANS,
        billing: false,
        ipRateLimitPerMinute: false,
      }),
    );
    try {
      await Promise.all(instances.map((auth) => auth.ready));
      const [a, b] = instances.map((auth) => appWith(auth)) as [ReturnType<typeof appWith>, ReturnType<typeof appWith>];
      const tight = (await instances[0]!.store.create({ owner: 'tight', plan: 'tight' })).key;
      const metered = (await instances[0]!.store.create({ owner: 'metered', plan: 'metered' })).key;
      const hello = (app: typeof a, key: string) => request(app).get('/v1/hello').set('x-api-key', key);

      expect(rate(await hello(a, tight).expect(200))).toEqual(['"second";r=2', '"day";r=0']);
      for (const app of [a, b, a]) {
        const refused = await hello(app, tight);
        expect([refused.status, refused.body.error.policy]).toEqual([429, 'day']);
        expect(rate(refused)).toEqual(['"second";r=2', '"day";r=0']); // "second" after the give-back
      }
      const usage = await request(b).get('/v1/usage').set('x-api-key', tight);
      expect(usage.body.rate_limits.map((l: { remaining: number }) => l.remaining)).toEqual([2, 0]);

      await hello(a, metered).expect(200);
      expect(rate(await hello(b, metered).expect(200))).toEqual(['"minute";r=998', '"month";r=0']);
      for (const app of [a, b]) {
        const over = await hello(app, metered);
        expect([over.status, over.body.error.code]).toEqual([429, 'quota_exceeded']);
        expect(rate(over)).toEqual(['"minute";r=998', '"month";r=0']);
      }
    } finally {
      for (const auth of instances) await auth.close();
    }
  });
});
