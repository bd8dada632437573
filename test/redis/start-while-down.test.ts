import Redis from 'ioredis';
import express from 'express';
import request from 'supertest';
import { daymindAuth, RedisKeyStore, type DaymindAuth } from '../../src';
import { waitFor } from '../helpers';
import { startRedis, type TestRedis } from './harness';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
}, 20_000);
afterAll(async () => {
  await redis?.close();
});

/** A key made while Redis is up, in namespace `prefix`. */
async function keyIn(prefix: string): Promise<string> {
  const client = new Redis(redis.url);
  try {
    const store = new RedisKeyStore({ client, prefix, pollIntervalMs: 0 });
    await store.init();
    return (await store.create({ owner: 'acme' })).key;
  } finally {
    await client.quit();
  }
}

describe('an instance started while Redis is down', () => {
  test.each(['open', 'closed'] as const)(
    "failure mode %s: 503 within the first load's wait (2 s) while no key is loaded, then served once Redis is back",
    async (mode) => {
      const prefix = `down-${mode}`;
      const key = await keyIn(prefix);
      await redis.stop();
      let stopped = true;
      const errors: Error[] = [];
      let auth: DaymindAuth | undefined;
      try {
        auth = daymindAuth({
          env: {},
          redis: redis.url,
          keyStore: 'redis',
          redisPrefix: prefix,
          redisFailureMode: mode,
          redisCommandTimeoutMs: 200,
          billing: false,
          onError: (e) => errors.push(e),
        });
        const app = express()
          .use(auth)
          .get('/', (req, res) => res.json({ owner: req.daymind!.owner }));
        const started = Date.now();
        const down = await request(app).get('/').set('x-api-key', key);
        // The store waits up to 2 s for its first load (readyTimeoutMs), then answers without Redis.
        expect(Date.now() - started).toBeLessThan(4000);
        expect([down.status, down.body.error.code, down.headers['retry-after']]).toEqual([503, 'service_unavailable', '1']);
        expect(errors.length).toBeGreaterThan(0);

        await redis.start();
        stopped = false;
        await waitFor(async () => (await request(app).get('/').set('x-api-key', key)).status === 200, 10_000, 100);
        expect((await request(app).get('/').set('x-api-key', key)).body).toEqual({ owner: 'acme' });
      } finally {
        if (stopped) await redis.start(); // for the next test, whatever happened
        await auth?.close();
      }
    },
    30_000,
  );
});

test('stats().redisConnected is false while Redis is frozen (a command timed out), true again once it answers', async () => {
  const prefix = 'frozen-stats';
  const key = await keyIn(prefix);
  const auth = daymindAuth({
    env: {},
    redis: redis.url,
    keyStore: 'redis',
    redisPrefix: prefix,
    redisCommandTimeoutMs: 200,
    billing: false,
    onError: () => undefined,
  });
  const app = express()
    .use(auth)
    .get('/', (req, res) => res.json({}));
  let frozen = false;
  try {
    await auth.ready;
    await request(app).get('/').set('x-api-key', key).expect(200);
    expect((await auth.stats()).redisConnected).toBe(true);
    redis.pause();
    frozen = true;
    await request(app).get('/').set('x-api-key', key); // its limiter call times out: Redis is marked down
    expect((await auth.stats()).redisConnected).toBe(false); // the connection itself still says ready
    redis.resume();
    frozen = false;
    await waitFor(async () => (await auth.stats()).redisConnected === true, 5000);
  } finally {
    if (frozen) redis.resume();
    await auth.close();
  }
}, 20_000);
