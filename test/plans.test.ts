import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { ConfigError, JsonFileKeyStore, daymindAuth, hashKey, type DaymindAuth, type DaymindOptions } from '../src';
import { tempDir, waitFor } from './helpers';

/** An RFC 9651 List of Items with parameters, as the RateLimit fields use it. */
function parseList(field: string | undefined): Array<{ item: string; params: Record<string, string> }> {
  expect(field).toBeDefined();
  return field!.split(/,\s*/).map((member) => {
    const [item, ...params] = member.split(';');
    expect(item).toMatch(/^"[a-z0-9_-]+"$/i);
    return { item: JSON.parse(item!) as string, params: Object.fromEntries(params.map((p) => p.split('=') as [string, string])) };
  });
}

const PLANS = {
  free: {
    limits: [
      { name: 'second', limit: 3, window: '1s' },
      { name: 'day', limit: 5, window: '1d' },
    ],
    monthly_quota: null,
  },
  guarded: { limits: [{ name: 'burst', limit: 2, window: '1s', block_seconds: 3 }] },
  tight: {
    limits: [
      { name: 'second', limit: 3, window: '1s' },
      { name: 'day', limit: 1, window: '1d' },
    ],
  },
  metered: { limits: [{ name: 'minute', limit: 1000, window: '1m' }], monthly_quota: 5 },
  prepaid: { limits: [{ name: 'minute', limit: 1000, window: '1m' }], monthly_quota: null },
};

interface Setup {
  auth: DaymindAuth;
  app: express.Express;
  key(input: Parameters<JsonFileKeyStore['create']>[0]): Promise<string>;
}

/** An app on a fresh store: GET /v1/hello, POST /v1/write (scope write), GET /v1/costly (3 units), GET /v1/fail (500). */
async function setup(options: DaymindOptions = {}): Promise<Setup> {
  const storePath = join(tempDir(), 'api_keys.json');
  const auth = daymindAuth({ env: {}, storePath, billing: false, ipRateLimitPerMinute: false, plans: PLANS, ...options });
  await auth.ready;
  const app = express();
  app.use('/v1', auth.usageRouter());
  app.use('/v1', auth);
  app.get('/v1/hello', (req, res) => res.json({ ok: true }));
  app.post('/v1/write', auth.requireScope('write'), (req, res) => res.json({ written: true }));
  app.get('/v1/costly', auth.cost(3), (req, res) => res.json({ cost: req.daymind!.cost }));
  app.get('/v1/fail', (req, res) => res.status(500).json({ error: 'boom' }));
  return { auth, app, key: async (input) => (await auth.store.create(input)).key };
}

const get = (app: express.Express, path: string, key: string) => request(app).get(path).set('authorization', `Bearer ${key}`);

describe('plans: several windows per key', () => {
  let s: Setup;
  beforeEach(async () => {
    s = await setup();
  });
  afterEach(() => s.auth.close());

  test('each window of a two-window plan refuses in turn, named in the error, the headers and Retry-After', async () => {
    const key = await s.key({ owner: 'free-co', plan: 'free' });
    const first = await get(s.app, '/v1/hello', key);
    expect(first.status).toBe(200);
    expect(parseList(first.headers['ratelimit-policy'])).toEqual([
      { item: 'second', params: { q: '3', w: '1' } },
      { item: 'day', params: { q: '5', w: '86400' } },
    ]);
    expect(parseList(first.headers['ratelimit']).map((m) => [m.item, m.params.r])).toEqual([
      ['second', '2'],
      ['day', '4'],
    ]);
    await get(s.app, '/v1/hello', key).expect(200);
    await get(s.app, '/v1/hello', key).expect(200);
    const bySecond = await get(s.app, '/v1/hello', key);
    expect(bySecond.status).toBe(429);
    expect(bySecond.body.error).toMatchObject({ code: 'rate_limited', policy: 'second' });
    expect(bySecond.headers['retry-after']).toBe('1');

    // Once the "second" window has ended (its counter is gone), it has room again.
    const second = { name: 'second', limit: 3, windowSeconds: 1 };
    await waitFor(async () => (await s.auth.limiter.peek!(second, hashKey(key))).remaining === 3, 5000, 10);
    await get(s.app, '/v1/hello', key).expect(200);
    await get(s.app, '/v1/hello', key).expect(200); // the 5th of the day
    const byDay = await get(s.app, '/v1/hello', key);
    expect(byDay.status).toBe(429);
    expect(byDay.body.error).toMatchObject({ code: 'rate_limited', policy: 'day' });
    expect(Number(byDay.headers['retry-after'])).toBeGreaterThan(3600);
    const day = parseList(byDay.headers['ratelimit']).find((m) => m.item === 'day')!;
    expect(day.params.r).toBe('0');
    // Refused by "day", the key still sees its usage: the window at 0, and /v1/usage spends nothing.
    const usage = await get(s.app, '/v1/usage', key);
    expect(usage.status).toBe(200);
    expect(usage.body.rate_limits.find((l: { policy: string }) => l.policy === 'day')).toMatchObject({ limit: 5, remaining: 0 });
  });

  test('a refusal by "day" gives back what "second" took: its answer, the next request and /v1/usage show nothing spent by it', async () => {
    const key = await s.key({ owner: 'tight-co', plan: 'tight' });
    const rate = (res: request.Response) => parseList(res.headers['ratelimit']).map((m) => [m.item, m.params.r]);
    expect(rate(await get(s.app, '/v1/hello', key).expect(200))).toEqual([
      ['second', '2'],
      ['day', '0'],
    ]);
    for (let i = 0; i < 3; i++) {
      const refused = await get(s.app, '/v1/hello', key);
      expect([refused.status, refused.body.error.policy]).toEqual([429, 'day']);
      // "second" as it is after the give-back: 2 left, the allowed request's unit only.
      expect(rate(refused)).toEqual([
        ['second', '2'],
        ['day', '0'],
      ]);
    }
    const usage = await get(s.app, '/v1/usage', key);
    expect(usage.body.rate_limits.map((l: { policy: string; remaining: number }) => [l.policy, l.remaining])).toEqual([
      ['second', 2],
      ['day', 0],
    ]);
    expect((await s.auth.limiter.peek!({ name: 'second', limit: 3, windowSeconds: 1 }, hashKey(key))).remaining).toBe(2);
  });

  test('block_seconds: a key past the limit is refused for that long, even in the next window', async () => {
    const key = await s.key({ owner: 'abuser', plan: 'guarded' });
    await get(s.app, '/v1/hello', key).expect(200);
    await get(s.app, '/v1/hello', key).expect(200);
    const blocked = await get(s.app, '/v1/hello', key);
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('3');
    // A new 1 s window has begun once a second of the 3 s block has passed (the block began with
    // the refusal, after the window did): without the block the next request would pass.
    const burst = { name: 'burst', limit: 2, windowSeconds: 1, blockSeconds: 3 };
    await waitFor(async () => (await s.auth.limiter.peek!(burst, hashKey(key))).resetMs <= 2000, 5000, 10);
    const still = await get(s.app, '/v1/hello', key);
    expect(still.status).toBe(429);
    expect(Number(still.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(still.headers['retry-after'])).toBeLessThanOrEqual(2);
  });

  test('a key without a plan keeps the single per-minute limit; its own rate_limit_per_minute overrides', async () => {
    const plain = await s.key({ owner: 'plain' });
    expect(parseList((await get(s.app, '/v1/hello', plain)).headers['ratelimit-policy'])).toEqual([
      { item: 'key', params: { q: '120', w: '60' } },
    ]);
    const own = await s.key({ owner: 'own', plan: 'metered', rate_limit_per_minute: 7 });
    expect(parseList((await get(s.app, '/v1/hello', own)).headers['ratelimit-policy'])[0]).toEqual({
      item: 'minute',
      params: { q: '7', w: '60' },
    });
  });
});

describe('plans: monthly quota', () => {
  test('refused whole at the edge (cost included), 429 quota_exceeded with the "month" policy; restarts on the 1st', async () => {
    let now = Date.UTC(2026, 10, 30, 23, 50); // 30 November, ten minutes before December
    const s = await setup({ now: () => now });
    try {
      const key = await s.key({ owner: 'metered-co', plan: 'metered' });
      await get(s.app, '/v1/hello', key).expect(200);
      await get(s.app, '/v1/hello', key).expect(200);
      const costly = await get(s.app, '/v1/costly', key); // 2 + 3 = 5: exactly the quota
      expect(costly.status).toBe(200);
      const month = parseList(costly.headers['ratelimit']).find((m) => m.item === 'month')!;
      expect(month.params.r).toBe('0');
      expect(parseList(costly.headers['ratelimit-policy']).find((m) => m.item === 'month')).toEqual({
        item: 'month',
        params: { q: '5', w: String(30 * 86400) },
      });
      const over = await get(s.app, '/v1/hello', key);
      expect(over.status).toBe(429);
      expect(over.body.error).toMatchObject({ code: 'quota_exceeded', policy: 'month' });
      expect(over.headers['retry-after']).toBe('600');
      await s.auth.flush();
      expect(s.auth.store.get(hashKey(key))).toMatchObject({ requests_this_month: 5, requests_month: 202611 });

      now = Date.UTC(2026, 11, 1, 0, 0, 1); // 1 December
      const fresh = await get(s.app, '/v1/hello', key);
      expect(fresh.status).toBe(200);
      expect(parseList(fresh.headers['ratelimit']).find((m) => m.item === 'month')!.params.r).toBe('4');
      const usage = await get(s.app, '/v1/usage', key);
      expect(usage.body.monthly_quota).toMatchObject({ limit: 5, used: 1, remaining: 4 }); // /v1/usage takes none
      expect(usage.body.plan).toBe('metered');
    } finally {
      await s.auth.close();
    }
  });

  test('a request costing more than what is left is refused whole, and a smaller one still passes', async () => {
    const s = await setup();
    try {
      const key = await s.key({ owner: 'edge', plan: 'metered' });
      await get(s.app, '/v1/costly', key).expect(200); // 3
      expect((await get(s.app, '/v1/costly', key)).body.error.code).toBe('quota_exceeded'); // 3 + 3 > 5
      await get(s.app, '/v1/hello', key).expect(200); // 4
      await get(s.app, '/v1/hello', key).expect(200); // 5
      expect((await get(s.app, '/v1/hello', key)).status).toBe(429);
    } finally {
      await s.auth.close();
    }
  });
});

describe('plans: prepaid credits', () => {
  test('spent by cost, 402 credits_exhausted at 0, refilled monthly', async () => {
    let now = Date.UTC(2026, 10, 20, 12);
    const s = await setup({ now: () => now });
    try {
      const key = await s.key({ owner: 'prepaid-co', plan: 'prepaid', credits: 7, credits_refill: { interval: 'monthly', amount: 6 } });
      expect((await get(s.app, '/v1/costly', key)).status).toBe(200); // 7 - 3 = 4
      expect((await get(s.app, '/v1/costly', key)).status).toBe(200); // 1
      const broke = await get(s.app, '/v1/costly', key);
      expect(broke.status).toBe(402);
      expect(broke.body.error).toMatchObject({ code: 'credits_exhausted', credits: 1 });
      const one = await get(s.app, '/v1/hello', key); // costs 1: still possible
      expect(one.status).toBe(200);
      const none = await get(s.app, '/v1/hello', key);
      expect(none.status).toBe(402);
      await s.auth.flush();
      const hash = hashKey(key);
      expect(s.auth.store.get(hash)).toMatchObject({ credits: 0, usage_count: 7 });

      now = Date.UTC(2026, 11, 1, 0, 0, 5); // refilled to 6 on the 1st
      const usage = await get(s.app, '/v1/usage', key);
      expect(usage.status).toBe(200);
      expect(usage.body.credits).toBe(6); // refilled; /v1/usage spends none
      await get(s.app, '/v1/hello', key).expect(200);
      await s.auth.flush();
      expect(s.auth.store.get(hash)).toMatchObject({ credits: 5, credits_period: 202612 });
    } finally {
      await s.auth.close();
    }
  });

  test('credits never go below 0 under concurrent requests in one process', async () => {
    const s = await setup();
    try {
      const key = await s.key({ owner: 'race', plan: 'prepaid', credits: 10 });
      const statuses = await Promise.all(Array.from({ length: 30 }, () => get(s.app, '/v1/hello', key).then((r) => r.status)));
      expect(statuses.filter((x) => x === 200)).toHaveLength(10);
      expect(statuses.filter((x) => x === 402)).toHaveLength(20);
      await s.auth.flush();
      expect(s.auth.store.get(hashKey(key))).toMatchObject({ credits: 0 });
    } finally {
      await s.auth.close();
    }
  });
});

describe('scopes and what counts', () => {
  test('requireScope: 403 insufficient_scope with the RFC 6750 header; a refused request is not usage', async () => {
    const s = await setup();
    try {
      const reader = await s.key({ owner: 'reader', scopes: ['read'], credits: 5 });
      const writer = await s.key({ owner: 'writer', scopes: ['read', 'write'] });
      const refused = await request(s.app).post('/v1/write').set('authorization', `Bearer ${reader}`);
      expect(refused.status).toBe(403);
      expect(refused.headers['www-authenticate']).toBe('Bearer error="insufficient_scope", scope="write"');
      expect(refused.body.error).toMatchObject({ code: 'insufficient_scope', scope: 'write' });
      await request(s.app).post('/v1/write').set('authorization', `Bearer ${writer}`).expect(200);
      await s.auth.flush();
      expect(s.auth.store.get(hashKey(reader))).toMatchObject({ usage_count: 0, credits: 5 });
      expect(s.auth.store.get(hashKey(writer))).toMatchObject({ usage_count: 1 });
      const usage = await get(s.app, '/v1/usage', reader);
      expect(usage.body.scopes).toEqual(['read']);
    } finally {
      await s.auth.close();
    }
  });

  test('billable: a 5xx is not usage (nor quota), a 2xx is', async () => {
    const s = await setup({ billable: (_req, res) => res.statusCode < 500 });
    try {
      const key = await s.key({ owner: 'flaky', plan: 'metered' });
      for (let i = 0; i < 4; i++) await get(s.app, '/v1/fail', key).expect(500);
      await get(s.app, '/v1/hello', key).expect(200);
      await s.auth.flush();
      expect(s.auth.store.get(hashKey(key))).toMatchObject({ usage_count: 1, requests_this_month: 1 });
      // The quota of 5 is not used up by the failures: 4 more pass.
      for (let i = 0; i < 4; i++) await get(s.app, '/v1/hello', key).expect(200);
      expect((await get(s.app, '/v1/hello', key)).body.error.code).toBe('quota_exceeded');
    } finally {
      await s.auth.close();
    }
  });
});

describe('a bad plans file', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown field', { free: { limits: [], quota: 5 } }, /plan "free": unknown field "quota"/],
    [
      'bad window',
      { pro: { limits: [{ name: 'minute', limit: 10, window: '1 minute' }] } },
      /plan "pro": limits\[0\] \("minute"\): "window"/,
    ],
    [
      'a limit of 0',
      { free: { limits: [{ name: 'second', limit: 0, window: '1s' }] } },
      /plan "free": limits\[0\] \("second"\): "limit" must be a whole number of at least 1/,
    ],
    [
      'reserved name',
      { free: { limits: [{ name: 'month', limit: 1, window: '1d' }] } },
      /plan "free": limits\[0\]: the name "month" is taken/,
    ],
  ];
  test.each(cases)('%s: a start-up error naming the file and the plan', (_what, plans, message) => {
    const file = join(tempDir(), 'plans.json');
    writeFileSync(file, JSON.stringify(plans));
    const start = () => daymindAuth({ env: { DAYMIND_PLANS_FILE: file }, storePath: join(tempDir(), 'api_keys.json') });
    expect(start).toThrow(ConfigError);
    expect(start).toThrow(new RegExp(`DAYMIND_PLANS_FILE: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
    expect(start).toThrow(message);
  });

  test('a file that is not JSON, or missing, names the file', () => {
    const file = join(tempDir(), 'plans.json');
    writeFileSync(file, '{ free: ');
    const storePath = join(tempDir(), 'api_keys.json');
    expect(() => daymindAuth({ env: { DAYMIND_PLANS_FILE: file }, storePath })).toThrow(
      /DAYMIND_PLANS_FILE: the plans file .*plans\.json is not valid JSON/,
    );
    expect(() => daymindAuth({ env: { DAYMIND_PLANS_FILE: join(tempDir(), 'nope.json') }, storePath })).toThrow(
      /cannot read the plans file .*nope\.json/,
    );
  });
});

describe('when usage is counted', () => {
  test('without route guards or billable, at once; a guard made later still charges its extra units', async () => {
    const storePath = join(tempDir(), 'api_keys.json');
    const auth = daymindAuth({ env: {}, storePath, billing: false, ipRateLimitPerMinute: false });
    try {
      const { key, record } = await auth.store.create({ owner: 'late', credits: 10 });
      const app = express();
      app.use(auth);
      app.get('/hello', (req, res) => res.json({ ok: true }));
      // A guard made only while a request is on its way (after the middleware let it through).
      app.get('/late', (req, res) => auth.cost(3)(req, res, () => res.json({ cost: req.daymind!.cost })));
      await request(app).get('/hello').set('x-api-key', key).expect(200);
      expect(auth.usage(auth.store.get(record.key_hash) as typeof record).usage_count).toBe(1);
      expect((await request(app).get('/late').set('x-api-key', key)).body).toEqual({ cost: 3 });
      await auth.flush();
      expect(auth.store.get(record.key_hash)).toMatchObject({ usage_count: 4, credits: 6 });
    } finally {
      await auth.close();
    }
  });
});
