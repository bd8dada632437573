import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, clearOfMidnight, startExampleServer, tempDir, waitFor } from '../helpers';
import { hashKey, JsonFileKeyStore, RedisKeyStore, type KeyStore, type NewKeyInput } from '../../src';
import { startRedis, type TestRedis } from '../redis/harness';

/** Small limits, so that every window and the quota can be reached in a few requests. */
const PLANS = {
  free: {
    description: 'test free',
    limits: [
      { name: 'second', limit: 3, window: '1s' },
      { name: 'day', limit: 5, window: '1d' },
    ],
    monthly_quota: 6,
  },
  pro: { limits: [{ name: 'minute', limit: 100, window: '1m' }], monthly_quota: null },
  metered: { limits: [{ name: 'minute', limit: 100, window: '1m' }], monthly_quota: 6 },
};

/** The keys of the flow, one per role. */
const KEYS = {
  free: { owner: 'free-team', plan: 'free', scopes: ['read', 'write'] },
  reader: { owner: 'reader', plan: 'pro', scopes: ['read'] },
  writer: { owner: 'writer', plan: 'pro', scopes: ['read', 'write'] },
  metered: { owner: 'metered', plan: 'metered', scopes: ['read', 'write'] },
  meteredReader: { owner: 'metered-reader', plan: 'metered', scopes: ['read'] },
} satisfies Record<string, NewKeyInput>;
type Keys = Record<keyof typeof KEYS, string>;
/** usage_count of each owner once the flow has run: refused requests are not usage, the echo counts 5. */
const USAGE_AFTER_FLOW = { 'free-team': 5, reader: 0, writer: 5, metered: 6, 'metered-reader': 0 };

async function createKeys(store: KeyStore): Promise<Keys> {
  await store.init?.();
  const keys: Partial<Keys> = {};
  for (const [role, input] of Object.entries(KEYS)) keys[role as keyof Keys] = (await store.create(input)).key;
  await store.close();
  return keys as Keys;
}

/** The example server in `cwd` with the test plans; stop() sends SIGTERM and waits for a clean exit. */
async function startServer(cwd: string, extraEnv: NodeJS.ProcessEnv): Promise<{ url: string; out: () => string; stop(): Promise<void> }> {
  const plansFile = join(cwd, 'plans.json');
  writeFileSync(plansFile, JSON.stringify(PLANS));
  const { url, out, exited, child } = await startExampleServer(cwd, {
    IP_RATE_LIMIT_PER_MINUTE: 'off',
    DAYMIND_PLANS_FILE: plansFile,
    ...extraEnv,
  });
  return {
    url,
    out,
    async stop() {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    },
  };
}

/** Seconds in the current UTC month: the `w` of the `"month"` policy. */
function monthSeconds(): number {
  const now = new Date();
  return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)) / 1000;
}

interface Answer {
  status: number;
  headers: Headers;
  body: { error?: { code: string; policy?: string; scope?: string }; usage_count?: number } & Record<string, unknown>;
}

function client(url: string) {
  const call = async (method: string, path: string, key: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
  };
  return {
    hello: (key: string) => call('GET', '/v1/hello', key),
    usage: (key: string) => call('GET', '/v1/usage', key),
    echo: (key: string, body: unknown) => call('POST', '/v1/echo', key, body),
  };
}

/**
 * The Free/Pro flow of docs/plans.md against a running example server: every window announced and
 * enforced, the refusing policy named, scopes checked before the cost is taken, the cost counted
 * as usage, the monthly quota.
 */
async function planFlow(url: string, keys: Keys): Promise<void> {
  const api = client(url);
  // The server counts the quota by the real clock's UTC month: the flow runs within one month.
  await clearOfMidnight(20_000);
  const month = monthSeconds();

  // Free: both windows and the quota announced as RFC 9651 list items.
  const first = await api.hello(keys.free);
  expect(first.status).toBe(200);
  expect(first.headers.get('ratelimit-policy')).toBe(`"second";q=3;w=1, "day";q=5;w=86400, "month";q=6;w=${month}`);
  expect(first.headers.get('ratelimit')).toMatch(/^"second";r=2;t=1, "day";r=4;t=86400, "month";r=5;t=\d+$/);
  for (let i = 2; i <= 3; i++) expect((await api.hello(keys.free)).status).toBe(200);
  // The 4th in the same second: refused by "second", which names itself and says when to retry.
  const fourth = await api.hello(keys.free);
  expect(fourth.status).toBe(429);
  expect(fourth.body.error).toMatchObject({ code: 'rate_limited', policy: 'second' });
  expect(fourth.headers.get('retry-after')).toBe('1');
  expect(fourth.headers.get('ratelimit')).toBe('"second";r=0;t=1');
  // Once its window has ended, "second" has room again: tried until then, each request is refused
  // by "second" alone (a refused request spends no other window, nor the quota). Then "day"
  // refuses the 6th allowed request.
  const tries: string[] = [];
  await waitFor(
    async () => {
      const res = await api.hello(keys.free);
      tries.push(res.status === 429 ? `429 ${res.body.error?.policy}` : String(res.status));
      return res.status !== 429;
    },
    5000,
    50,
  );
  expect(tries.filter((t) => t !== '429 second')).toEqual(['200']); // the 4th allowed
  expect((await api.hello(keys.free)).status).toBe(200); // the 5th
  const sixth = await api.hello(keys.free);
  expect(sixth.status).toBe(429);
  expect(sixth.body.error).toMatchObject({ code: 'rate_limited', policy: 'day' });
  expect(Number(sixth.headers.get('retry-after'))).toBeGreaterThan(86_000);

  // POST /v1/echo without the "write" scope: 403, and not usage (nor is /v1/usage).
  expect((await api.usage(keys.reader)).body.usage_count).toBe(0);
  const forbidden = await api.echo(keys.reader, { hello: 'world' });
  expect(forbidden.status).toBe(403);
  expect(forbidden.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="write"');
  expect(forbidden.body.error).toMatchObject({ code: 'insufficient_scope', scope: 'write' });
  expect((await api.usage(keys.reader)).body.usage_count).toBe(0);

  // With it: 200, 5 units on the window and in usage_count. A Pro key has only the minute window.
  expect((await api.usage(keys.writer)).body.usage_count).toBe(0);
  const echoed = await api.echo(keys.writer, { hello: 'world' });
  expect(echoed.status).toBe(200);
  expect(echoed.body).toEqual({ echo: { hello: 'world' }, cost: 5, owner: 'writer' });
  expect(echoed.headers.get('ratelimit-policy')).toBe('"minute";q=100;w=60');
  expect(echoed.headers.get('ratelimit')).toMatch(/^"minute";r=95;t=\d+$/);
  const after = await api.usage(keys.writer);
  expect(after.body).toMatchObject({ usage_count: 5, plan: 'pro', monthly_quota: null, scopes: ['read', 'write'] });
  expect(after.body.rate_limits).toMatchObject([{ policy: 'minute', limit: 100, remaining: 95 }]);

  // The monthly quota: a refused echo gives back what it took; 5 + 1 units reach the quota of 6.
  expect((await api.echo(keys.meteredReader, {})).status).toBe(403);
  expect((await api.usage(keys.meteredReader)).body.monthly_quota).toMatchObject({ limit: 6, used: 0, remaining: 6 });
  expect((await api.echo(keys.metered, { n: 1 })).status).toBe(200);
  const last = await api.hello(keys.metered);
  expect(last.status).toBe(200);
  expect(last.headers.get('ratelimit')).toMatch(/, "month";r=0;t=\d+$/);
  const over = await api.hello(keys.metered);
  expect(over.status).toBe(429);
  expect(over.body.error).toMatchObject({ code: 'quota_exceeded', policy: 'month' });
  expect(over.headers.get('ratelimit-policy')).toBe(`"minute";q=100;w=60, "month";q=6;w=${month}`);
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
}

describe('examples/server.ts with DAYMIND_PLANS_FILE', () => {
  test(
    'on the JSON file store: plan windows, scopes, cost and quota end to end; counters written on SIGTERM',
    async () => {
      const cwd = tempDir();
      mkdirSync(join(cwd, 'data'));
      const storePath = join(cwd, 'data', 'api_keys.json');
      const keys = await createKeys(new JsonFileKeyStore({ path: storePath }));
      const server = await startServer(cwd, {});
      try {
        expect(server.out()).toContain(`Plans in force (${join(cwd, 'plans.json')}):`);
        expect(server.out()).toContain('  free: "second" 3/1s, "day" 5/1d; monthly quota 6 (test free)');
        expect(server.out()).toContain('  pro: "minute" 100/1m; no monthly quota');
        await planFlow(server.url, keys);
      } finally {
        await server.stop();
      }
      const records = JSON.parse(readFileSync(storePath, 'utf8')) as Array<{ owner: string; usage_count: number }>;
      expect(Object.fromEntries(records.map((r) => [r.owner, r.usage_count]))).toEqual(USAGE_AFTER_FLOW);
    },
    CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
  );

  describe('on Redis (KEY_STORE=redis)', () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startRedis();
    }, 20_000);
    afterAll(async () => {
      await redis?.close();
    });

    test(
      'the same flow, with quota spent atomically in Redis',
      async () => {
        const prefix = 'plans';
        const storeClient = new Redis(redis.url);
        let keys: Keys;
        try {
          keys = await createKeys(new RedisKeyStore({ client: storeClient, prefix, pollIntervalMs: 0 }));
        } finally {
          await storeClient.quit();
        }
        const server = await startServer(tempDir(), { KEY_STORE: 'redis', REDIS_URL: redis.url, REDIS_PREFIX: prefix });
        try {
          await planFlow(server.url, keys);
        } finally {
          await server.stop();
        }
        const admin = redis.client();
        const counts: Record<string, number> = {};
        for (const [role, key] of Object.entries(keys)) {
          counts[KEYS[role as keyof Keys].owner] = Number(await admin.hget(`{${prefix}}:key:${hashKey(key)}`, 'usage_count'));
        }
        expect(counts).toEqual(USAGE_AFTER_FLOW);
      },
      CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
    );
  });
});
