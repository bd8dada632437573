import { join } from 'node:path';
import type Redis from 'ioredis';
import request from 'supertest';
import { RedisRateLimiter, daymindAuth } from '../../src';
import type { RateLimitWindow } from '../../src';
import { appWith, expectRateLimitField, tempDir } from '../helpers';
import { redisForFile } from './harness';

const redis = redisForFile();
let prefix = 0;

async function connect(): Promise<Redis> {
  const client = redis.server.client();
  await client.ping();
  return client;
}

/** Script calls Redis has run so far (EVALSHA and EVAL), from INFO commandstats. */
async function scriptCalls(client: Redis): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
  return calls;
}

const ip: RateLimitWindow = { name: 'ip', limit: 3, windowSeconds: 60 };
const key: RateLimitWindow = { name: 'key', limit: 2, windowSeconds: 60 };
const day: RateLimitWindow = { name: 'day', limit: 100, windowSeconds: 86_400 };

describe('RedisRateLimiter.consumeAll', () => {
  test('spends several windows in one script call, in order, stopping at the first refusal; counters are the ones consume uses', async () => {
    const client = await connect();
    const limiter = new RedisRateLimiter({ client, prefix: `l${++prefix}` });
    const all = [
      { window: ip, id: '10.0.0.1', cost: 1 },
      { window: key, id: 'hash-a', cost: 1 },
      { window: day, id: 'hash-a', cost: 1 },
    ];
    const before = await scriptCalls(client);
    const first = await limiter.consumeAll(all);
    expect(await scriptCalls(client)).toBe(before + 1);
    expect(first.map((r) => [r.policy, r.allowed, r.remaining])).toEqual([
      ['ip', true, 2],
      ['key', true, 1],
      ['day', true, 99],
    ]);
    expect(first[2]!.resetMs).toBeGreaterThan(86_000_000);

    // consume() sees the same counter, and consumeAll sees what consume() spent.
    expect((await limiter.consume(key, 'hash-a', 1)).remaining).toBe(0);
    const refused = await limiter.consumeAll(all);
    expect(refused.map((r) => [r.policy, r.allowed])).toEqual([
      ['ip', true],
      ['key', false],
    ]);
    expect((await limiter.peek(day, 'hash-a')).remaining).toBe(99); // after the refusal: untouched
    expect((await limiter.peek(ip, '10.0.0.1')).remaining).toBe(1);

    // The first window refusing: nothing after it is spent.
    await limiter.consume(ip, '10.0.0.1', 1);
    const ipRefused = await limiter.consumeAll(all);
    expect(ipRefused.map((r) => [r.policy, r.allowed, r.remaining])).toEqual([['ip', false, 0]]);
    expect((await limiter.peek(key, 'hash-a')).remaining).toBe(0);
    // The key's refused attempt counted (3 for a limit of 2, as consume counts); the IP-refused one did not.
    expect(await client.get(`l${prefix}:rl:key:2:60:hash-a`)).toBe('3');
  });

  test('refund gives back to the window that took, in one step, and nothing to a window begun since', async () => {
    const client = await connect();
    const limiter = new RedisRateLimiter({ client, prefix: `l${++prefix}` });
    const second: RateLimitWindow = { name: 'second', limit: 3, windowSeconds: 1 };
    await limiter.consume(second, 'hash-a', 2);
    await limiter.refund(second, 'hash-a', 1);
    expect((await limiter.peek(second, 'hash-a')).remaining).toBe(2);
    await new Promise((r) => setTimeout(r, 1100)); // that window has ended
    await limiter.refund(second, 'hash-a', 1);
    expect(await client.exists(`l${prefix}:rl:second:3:1:hash-a`)).toBe(0);
    expect((await limiter.consume(second, 'hash-a', 1)).remaining).toBe(2); // a new window: 3, less this one
  });

  test('while Redis is unreachable, fail open counts in the insurance limiter and fail closed rejects', async () => {
    const client = await connect();
    client.disconnect(); // status is no longer ready
    const open = new RedisRateLimiter({ client, prefix: `l${++prefix}` });
    const results = await open.consumeAll([
      { window: ip, id: 'x', cost: 1 },
      { window: key, id: 'k', cost: 2 },
    ]);
    expect(results.map((r) => [r.policy, r.allowed, r.remaining])).toEqual([
      ['ip', true, 2],
      ['key', true, 0],
    ]);
    const closed = new RedisRateLimiter({ client, prefix: `l${++prefix}`, failureMode: 'closed' });
    await expect(
      closed.consumeAll([
        { window: ip, id: 'x', cost: 1 },
        { window: key, id: 'k', cost: 1 },
      ]),
    ).rejects.toThrow();
  });
});

describe('daymindAuth with Redis limiters', () => {
  test("a key's windows are spent in one script call after the IP's; the IP limit refuses first", async () => {
    const client = await connect();
    const auth = daymindAuth({
      env: {},
      storePath: join(tempDir(), 'api_keys.json'),
      redis: client,
      redisPrefix: `m${++prefix}`,
      ipRateLimitPerMinute: 3,
      flushIntervalMs: 60_000,
      billing: false,
      plans: {
        pro: {
          limits: [
            { name: 'key', limit: 120, window: '1m' },
            { name: 'day', limit: 1000, window: '1d' },
          ],
        },
      },
    });
    try {
      await auth.ready;
      const { key: apiKey, record } = await auth.store.create({ owner: 'one-call', plan: 'pro' });
      const app = appWith(auth);
      const since = Date.now(); // before the windows begin
      await request(app).get('/v1/hello').set('X-API-Key', apiKey); // loads the scripts
      const before = await scriptCalls(client);
      const ok = await request(app).get('/v1/hello').set('X-API-Key', apiKey);
      expect(ok.status).toBe(200);
      expectRateLimitField(ok.headers['ratelimit'], '"ip";r=1;t=60, "key";r=118;t=60, "day";r=998;t=86400', since);
      // One call for the IP's window, one for both of the key's.
      expect(await scriptCalls(client)).toBe(before + 2);

      // Third request from this IP is its last; the fourth is refused by the IP limit, and the key's window is not spent.
      expect((await request(app).get('/v1/hello').set('X-API-Key', apiKey)).status).toBe(200);
      const refused = await request(app).get('/v1/hello').set('X-API-Key', apiKey);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('rate_limited');
      expectRateLimitField(refused.headers['ratelimit'], '"ip";r=0;t=60', since);
      expect((await auth.limiter.peek!({ name: 'key', limit: 120, windowSeconds: 60 }, record.key_hash)).remaining).toBe(117);

      // No key, or an unknown one: the IP limit still answers 429 (it counts before authentication).
      expect((await request(app).get('/v1/hello')).status).toBe(429);
      expect((await request(app).get('/v1/hello').set('X-API-Key', 'dm_unknownunknownunknown000000')).status).toBe(429);
    } finally {
      await auth.close();
    }
  });
});
