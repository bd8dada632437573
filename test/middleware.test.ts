import request from 'supertest';
import express from 'express';
import { join } from 'node:path';
import {
  daymindAuth,
  MemoryKeyStore,
  JsonFileKeyStore,
  type DaymindAuth,
  type KeyRecord,
  type KeyStore,
  type RateLimiterAdapter,
  MemoryRateLimiter,
  generateKey,
  hashKey,
} from '../src';
import { appWith, closeAll, expectRateLimitField, leastSecondsLeft, tempDir } from './helpers';

const open: DaymindAuth[] = [];
function auth(options: Parameters<typeof daymindAuth>[0]): DaymindAuth {
  const a = daymindAuth({ env: {}, onError: () => undefined, billing: false, ...options });
  open.push(a);
  return a;
}
afterEach(() => closeAll(open));

function expectJsonError(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe('string');
  expect(res.text).not.toMatch(/\bat .+\.(ts|js):\d+/);
}

describe('daymindAuth() answers', () => {
  let store: JsonFileKeyStore;
  let key: string;
  let a: DaymindAuth;

  beforeEach(async () => {
    store = new JsonFileKeyStore({ path: join(tempDir(), 'keys.json') });
    key = (await store.create({ owner: 'acme' })).key;
    a = auth({ store, rateLimitPerMinute: 3, ipRateLimitPerMinute: 1000 });
  });

  test('a valid key passes, with req.daymind and RateLimit headers', async () => {
    const since = Date.now();
    const res = await request(appWith(a)).get('/v1/hello').set('Authorization', `Bearer ${key}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ owner: 'acme', prefix: key.slice(0, 9) });
    expect(res.headers['ratelimit-policy']).toBe('"ip";q=1000;w=60, "key";q=3;w=60');
    expectRateLimitField(res.headers['ratelimit'], '"ip";r=999;t=60, "key";r=2;t=60', since);
  });

  test('X-API-Key is accepted; the query parameter only when enabled', async () => {
    expect((await request(appWith(a)).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
    expectJsonError(await request(appWith(a)).get(`/v1/hello?api_key=${key}`), 401, 'missing_api_key');
    const withQuery = auth({ store, queryParam: 'api_key' });
    expect((await request(appWith(withQuery)).get(`/v1/hello?api_key=${key}`)).status).toBe(200);
  });

  test('401 missing_api_key with a bare Bearer challenge', async () => {
    const res = await request(appWith(a)).get('/v1/hello');
    expectJsonError(res, 401, 'missing_api_key');
    expect(res.headers['www-authenticate']).toBe('Bearer');
    const basic = await request(appWith(a)).get('/v1/hello').set('Authorization', 'Basic dXNlcjpwYXNz');
    expectJsonError(basic, 401, 'missing_api_key');
  });

  test('401 malformed_api_key for a mistyped key, without a store look-up', async () => {
    let lookups = 0;
    const counting: KeyStore = Object.assign(Object.create(store) as KeyStore, {
      get: (hash: string) => {
        lookups++;
        return store.get(hash);
      },
    });
    const b = auth({ store: counting });
    const typo = key.slice(0, 12) + (key[12] === 'x' ? 'y' : 'x') + key.slice(13);
    const res = await request(appWith(b)).get('/v1/hello').set('Authorization', `Bearer ${typo}`);
    expectJsonError(res, 401, 'malformed_api_key');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    expect(lookups).toBe(0);
    expectJsonError(await request(appWith(b)).get('/v1/hello').set('X-API-Key', 'not a key'), 401, 'malformed_api_key');
  });

  test('401 invalid_api_key for a well-formed unknown key', async () => {
    const other = new MemoryKeyStore();
    const { key: unknown } = await other.create({ owner: 'x' });
    const res = await request(appWith(a)).get('/v1/hello').set('Authorization', `Bearer ${unknown}`);
    expectJsonError(res, 401, 'invalid_api_key');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
  });

  test('401 revoked_api_key and expired_api_key', async () => {
    await store.revoke((await store.list())[0]!.key_hash);
    expectJsonError(await request(appWith(a)).get('/v1/hello').set('X-API-Key', key), 401, 'revoked_api_key');
    const { key: old } = await store.create({ owner: 'acme', expires_at: Date.now() / 1000 - 1 });
    expectJsonError(await request(appWith(a)).get('/v1/hello').set('X-API-Key', old), 401, 'expired_api_key');
    const { key: fresh } = await store.create({ owner: 'acme', expires_at: Date.now() / 1000 + 3600 });
    expect((await request(appWith(a)).get('/v1/hello').set('X-API-Key', fresh)).status).toBe(200);
  });

  test('429 past the per-key limit, with Retry-After and the RateLimit fields', async () => {
    const app = appWith(a);
    const since = Date.now();
    for (let i = 0; i < 3; i++) expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
    const res = await request(app).get('/v1/hello').set('X-API-Key', key);
    expectJsonError(res, 429, 'rate_limited');
    expect(res.body.error.policy).toBe('key');
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(leastSecondsLeft(60, since));
    expect(res.headers['ratelimit-policy']).toBe('"ip";q=1000;w=60, "key";q=3;w=60');
    expectRateLimitField(res.headers['ratelimit'], '"ip";r=996;t=60, "key";r=0;t=60', since);
  });

  test("a record's rate_limit_per_minute overrides the default", async () => {
    const { key: vip } = await store.create({ owner: 'vip', rate_limit_per_minute: 5 });
    const app = appWith(a);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(app).get('/v1/hello').set('X-API-Key', vip)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  test('only allowed requests count as usage, and /v1/usage is live (and not usage itself)', async () => {
    const app = appWith(a);
    for (let i = 0; i < 5; i++) await request(app).get('/v1/hello').set('X-API-Key', key); // 3 allowed, 2 refused
    await a.flush();
    const b = auth({ store, rateLimitPerMinute: 100 });
    const res = await request(appWith(b)).get('/v1/usage').set('X-API-Key', key);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      key_prefix: key.slice(0, 9),
      owner: 'acme',
      usage_count: 3,
      requests_today: 3,
      revoked: false,
      expires_at: null,
      revoke_at: null,
    });
    expect(res.body.last_used).toBeGreaterThan(Date.now() / 1000 - 5);
    // b's window of the key is untouched: /v1/usage spends none of it.
    expect(res.body.rate_limits).toEqual([{ policy: 'key', limit: 100, remaining: 100, reset_seconds: 60, window_seconds: 60 }]);
    expect(res.body).not.toHaveProperty('key');
  });

  test('the usage router checks the key on its own, and counts /v1/usage neither alone nor behind the middleware', async () => {
    const b = auth({ store, rateLimitPerMinute: 100 });
    const standalone = express().use('/v1', b.usageRouter());
    expect((await request(standalone).get('/v1/usage')).status).toBe(401);
    const first = await request(standalone).get('/v1/usage').set('X-API-Key', key);
    expect(first.body.usage_count).toBe(0);
    await request(appWith(b)).get('/v1/hello').set('X-API-Key', key).expect(200);
    const second = await request(appWith(b)).get('/v1/usage').set('X-API-Key', key);
    expect(second.body.usage_count).toBe(1);
    expect(second.body.rate_limits[0].remaining).toBe(99);
  });
});

describe('per-IP limit', () => {
  test('counts failed guesses and throttles them, before the key is looked at', async () => {
    const store = new MemoryKeyStore();
    const { key } = await store.create({ owner: 'acme' });
    const a = auth({ store, ipRateLimitPerMinute: 5 });
    const app = appWith(a);
    for (let i = 0; i < 5; i++) {
      const guess = new MemoryKeyStore();
      const { key: wrong } = await guess.create({ owner: 'x' });
      expect((await request(app).get('/v1/hello').set('X-API-Key', wrong)).status).toBe(401);
    }
    const res = await request(app).get('/v1/hello').set('X-API-Key', key);
    expectJsonError(res, 429, 'rate_limited');
    expect(res.body.error.policy).toBe('ip');
    expect(res.headers['ratelimit-policy']).toBe('"ip";q=5;w=60');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  test('honours trust proxy and groups IPv6 by /64', async () => {
    const store = new MemoryKeyStore();
    const a = auth({ store, ipRateLimitPerMinute: 2 });
    const app = appWith(a);
    app.set('trust proxy', true);
    const from = (ip: string) => request(app).get('/v1/hello').set('X-Forwarded-For', ip);
    expect((await from('2001:db8:1:2::1')).status).toBe(401);
    expect((await from('2001:db8:1:2::ffff')).status).toBe(401);
    expect((await from('2001:db8:1:2:aaaa::9')).status).toBe(429);
    expect((await from('2001:db8:1:3::1')).status).toBe(401);
    expect((await from('198.51.100.1')).status).toBe(401);
  });

  test('without trust proxy, X-Forwarded-For changes nothing: every request counts on the socket address', async () => {
    const store = new MemoryKeyStore();
    const a = auth({ store, ipRateLimitPerMinute: 3 });
    const app = appWith(a);
    const since = Date.now();
    expect((await request(app).get('/v1/hello')).status).toBe(401);
    expect((await request(app).get('/v1/hello').set('X-Forwarded-For', '203.0.113.7')).status).toBe(401);
    expect((await request(app).get('/v1/hello').set('X-Forwarded-For', '198.51.100.9')).status).toBe(401);
    const res = await request(app).get('/v1/hello').set('X-Forwarded-For', '192.0.2.1');
    expectJsonError(res, 429, 'rate_limited');
    expectRateLimitField(res.headers['ratelimit'], '"ip";r=0;t=60', since);
  });
});

describe('failures answer 503, never crash or leak a stack', () => {
  test('a key store that throws', async () => {
    const errors: Error[] = [];
    const broken: KeyStore = {
      get: () => {
        throw new Error('connection refused at db.internal:5432');
      },
      create: async () => {
        throw new Error('down');
      },
      revoke: async () => undefined,
      list: async () => [],
      applyUsage: async () => undefined,
      close: async () => undefined,
    };
    const a = auth({ store: broken, onError: (e) => errors.push(e) });
    const { key } = await new MemoryKeyStore().create({ owner: 'x' });
    const res = await request(appWith(a)).get('/v1/hello').set('X-API-Key', key);
    expectJsonError(res, 503, 'service_unavailable');
    expect(res.text).not.toContain('db.internal');
    expect(res.headers['retry-after']).toBe('1');
    expect(errors.map((e) => e.message).join()).toContain('db.internal');
  });

  test('a store whose get() rejects', async () => {
    const store = new MemoryKeyStore();
    const { key } = await store.create({ owner: 'x' });
    const rejecting = Object.assign(Object.create(store) as KeyStore, {
      get: async (): Promise<KeyRecord> => Promise.reject(new Error('timeout')),
    });
    const a = auth({ store: rejecting });
    expectJsonError(await request(appWith(a)).get('/v1/hello').set('X-API-Key', key), 503, 'service_unavailable');
  });

  test('a rate limiter that fails', async () => {
    const store = new MemoryKeyStore();
    const { key } = await store.create({ owner: 'x' });
    const failing: RateLimiterAdapter = {
      consume: async () => {
        throw new Error('limiter backend down');
      },
      peek: async () => {
        throw new Error('limiter backend down');
      },
    };
    const a = auth({ store, rateLimiter: failing });
    expectJsonError(await request(appWith(a)).get('/v1/hello').set('X-API-Key', key), 503, 'service_unavailable');
    const b = auth({ store, rateLimiter: failing, ipRateLimitPerMinute: false });
    expectJsonError(await request(appWith(b)).get('/v1/hello').set('X-API-Key', key), 503, 'service_unavailable');
  });
});

describe('an asynchronous rate limiter (as Redis)', () => {
  /** The memory limiter without its synchronous consume, counting the consumes it gets. */
  function asyncLimiter(): { limiter: RateLimiterAdapter; calls: string[] } {
    const inner = new MemoryRateLimiter();
    const calls: string[] = [];
    const limiter: RateLimiterAdapter = {
      consume: async (window, id, cost) => {
        calls.push(window.name);
        return inner.consume(window, id, cost);
      },
      peek: (window, id) => inner.peek(window, id),
    };
    return { limiter, calls };
  }
  // Before the instances close (this runs before the file's afterEach): the store's close() needs
  // its own refresh, which a spy stands in for.
  afterEach(() => jest.restoreAllMocks());

  test('the IP limit answers before the key is checked further: a refused flood of unknown keys never refreshes the store', async () => {
    const store = new JsonFileKeyStore({ path: join(tempDir(), 'keys.json') });
    const { key } = await store.create({ owner: 'acme' });
    const refresh = jest.spyOn(store, 'refresh');
    const { limiter, calls } = asyncLimiter();
    const a = auth({ store, rateLimiter: limiter, ipRateLimitPerMinute: 2 });
    const app = appWith(a);
    const since = Date.now();
    const res = await request(app).get('/v1/hello').set('X-API-Key', key);
    expect(res.status).toBe(200);
    expectRateLimitField(res.headers['ratelimit'], '"ip";r=1;t=60, "key";r=119;t=60', since);
    expect(calls).toEqual(['ip', 'key']);

    expectJsonError(await request(app).get('/v1/hello').set('X-API-Key', generateKey()), 401, 'invalid_api_key');
    expect(refresh).toHaveBeenCalledTimes(1); // the unknown key, allowed by the IP limit, was looked for

    refresh.mockClear();
    calls.length = 0;
    for (let i = 0; i < 3; i++) expectJsonError(await request(app).get('/v1/hello').set('X-API-Key', generateKey()), 429, 'rate_limited');
    expect(refresh).not.toHaveBeenCalled();
    expect(calls).toEqual(['ip', 'ip', 'ip']);
    // A valid key from the refused IP: 429, and its own window is not spent.
    expectJsonError(await request(app).get('/v1/hello').set('X-API-Key', key), 429, 'rate_limited');
    expect((await limiter.peek!({ name: 'key', limit: 120, windowSeconds: 60 }, hashKey(key))).remaining).toBe(119);
  });
});

describe('keys from API_KEYS', () => {
  test('are accepted in any format and counted in memory', async () => {
    const a = auth({ env: { API_KEYS: 'first-key-0123456789, second-key-0123456789' } });
    const app = appWith(a);
    expect((await request(app).get('/v1/hello').set('X-API-Key', 'second-key-0123456789')).status).toBe(200);
    // Unchecksummed keys are in the store, so an unknown one is invalid rather than malformed.
    expectJsonError(await request(app).get('/v1/hello').set('X-API-Key', 'third-key-0123456789'), 401, 'invalid_api_key');
    const usage = await request(app).get('/v1/usage').set('X-API-Key', 'second-key-0123456789');
    expect(usage.body.usage_count).toBe(1);
    expect(usage.body.key_prefix).toBe('second');
  });
});
