import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import request from 'supertest';
import { RedisKeyStore, RedisUsageHistory, daymindAuth, hashKey } from '../../src';
import { dayOffset } from '../../src/usage/history';
import { appWith, TEST_NOW } from '../helpers';
import { redisForFile } from './harness';

const run = promisify(execFile);
const WORKER = join(__dirname, '../fixtures/app-worker.js');
const DAY_MS = 86_400_000;
/** The injected clock of the test: the workers and the server are told this time. */
const today = (): number => TEST_NOW;
const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

const testRedis = redisForFile();

async function newKey(prefix: string): Promise<string> {
  const client = new Redis(testRedis.server.url);
  const store = new RedisKeyStore({ client, prefix, pollIntervalMs: 0 });
  await store.init();
  const { key } = await store.create({ owner: 'shared' });
  await store.close();
  await client.quit();
  return key;
}

describe('per-day usage history on Redis', () => {
  test('two app processes on one Redis, then a restart the next day: exact per-day numbers, 429s included', async () => {
    const prefix = 'hist1';
    const key = await newKey(prefix);
    const day1 = today() - DAY_MS;
    const day2 = today();
    // The Redis limiter is shared: 2 x 25 requests against one limit of 10 = 10 allowed, 40 refused in all.
    const results = await Promise.all([
      run(process.execPath, [WORKER, JSON.stringify({ redis: testRedis.server.url, prefix, nowMs: day1, key, requests: 25, limit: 10 })]),
      run(process.execPath, [WORKER, JSON.stringify({ redis: testRedis.server.url, prefix, nowMs: day1, key, requests: 25, limit: 10 })]),
    ]);
    const counts = results.map(({ stdout }) => {
      const { statuses } = JSON.parse(stdout) as { statuses: Record<string, number> };
      return {
        allowed: statuses[200] ?? 0,
        rate_limited: statuses[429] ?? 0,
        other: Object.keys(statuses).filter((s) => s !== '200' && s !== '429').length,
      };
    });
    expect(counts.reduce((n, c) => n + c.allowed, 0)).toBe(10);
    expect(counts.reduce((n, c) => n + c.rate_limited, 0)).toBe(40);
    expect(counts.every((c) => c.other === 0)).toBe(true);

    const auth = daymindAuth({
      env: {},
      redis: testRedis.server.url,
      redisPrefix: prefix,
      keyStore: 'redis',
      billing: false,
      now: () => day2,
    });
    try {
      await auth.ready;
      const res = await request(appWith(auth)).get('/v1/usage/history?days=2').set('authorization', `Bearer ${key}`);
      expect(res.status).toBe(200);
      expect(res.body.days).toEqual([
        { day: iso(day1), allowed: 10, rate_limited: 40 },
        { day: iso(day2), allowed: 0, rate_limited: 0 }, // the history call is not usage
      ]);
    } finally {
      await auth.close();
    }
    // One hash per day, expiring after the retention period.
    const ttl = await testRedis.admin.ttl(`{${prefix}}:history:${dayOffset(day1, 0)}`);
    expect(ttl).toBeGreaterThan(99 * 86_400);
    expect(ttl).toBeLessThanOrEqual(100 * 86_400);
  });

  test('a batch offered twice (a lost reply) is added once', async () => {
    const client = new Redis(testRedis.server.url);
    try {
      const history = new RedisUsageHistory({ client, prefix: 'hist2' });
      const at = Date.now();
      const day = dayOffset(at, 0);
      const entries = [{ key_hash: hashKey('k'), day, allowed: 4, rate_limited: 1 }];
      await history.add(entries, 'batch-1');
      await history.add(entries, 'batch-1');
      await history.add(entries, 'batch-2');
      expect(await history.read(hashKey('k'), [day, dayOffset(at, -1)])).toEqual([
        { allowed: 8, rate_limited: 2 },
        { allowed: 0, rate_limited: 0 },
      ]);
      const all = await history.readDays([day]);
      expect(all.get(day)).toEqual(new Map([[hashKey('k'), { allowed: 8, rate_limited: 2 }]]));
    } finally {
      await client.quit();
    }
  });
});
