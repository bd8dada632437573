import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Redis from 'ioredis';
import { RedisKeyStore, hashKey } from '../../src';
import { PROBE_INTERVAL_MS } from '../../src/redis/health';
import { childEnv, sleep, waitFor } from '../helpers';
import { redisForFile } from './harness';

const SERVER = join(__dirname, '../fixtures/outage-server.js');
/** Small, so that a request that waited for it twice stands out from one that waited once. */
const COMMAND_TIMEOUT_MS = 200;
/** Room for a loaded two-core machine: scheduling, not waiting for Redis. */
const MARGIN_MS = 300;
/** The longest reconnect delay of the client daymind-auth builds (src/redis/connection.ts). */
const RECONNECT_BACKOFF_MS = 2000;
const LANES = 10;
const PLANS = { metered: { limits: [{ name: 'minute', limit: 1_000_000, window: '1m' }], monthly_quota: 1_000_000 } };

const redis = redisForFile();
let prefix = 0;

interface Keys {
  plain: string[];
  /** On a plan with a monthly quota: spent in Redis on every request, so refused (503) while Redis is down. */
  metered: string;
  /** Well formed, but from another namespace: a miss that makes the server look in Redis. */
  unknown: string;
}

async function createKeys(ns: string): Promise<Keys> {
  const client = new Redis(redis.server.url);
  const store = new RedisKeyStore({ client, prefix: ns, pollIntervalMs: 0 });
  const elsewhere = new RedisKeyStore({ client, prefix: `${ns}-elsewhere`, pollIntervalMs: 0 });
  try {
    await store.init();
    await elsewhere.init();
    return {
      plain: [(await store.create({ owner: 'plain-a' })).key, (await store.create({ owner: 'plain-b' })).key],
      metered: (await store.create({ owner: 'metered', plan: 'metered' })).key,
      unknown: (await elsewhere.create({ owner: 'elsewhere' })).key,
    };
  } finally {
    await store.close();
    await elsewhere.close();
    await client.quit();
  }
}

interface App {
  url: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

async function startApp(job: object): Promise<App> {
  const proc = spawn(process.execPath, [SERVER, JSON.stringify(job)], { env: childEnv() });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise<string>((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(String(d).trim()));
    proc.once('exit', (code) => reject(new Error(`app exited with ${code}: ${err}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/hit`,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill('SIGTERM');
      }),
  };
}

interface Hit {
  key: string;
  ms: number;
  status: number;
  body: unknown;
  retryAfter: string | null;
}

/** `total` requests over `lanes` concurrent connections, the keys taken in turn. */
async function load(url: string, keys: readonly string[], total: number): Promise<Hit[]> {
  const hits: Hit[] = [];
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const key = keys[next++ % keys.length]!;
      const started = performance.now();
      const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
      const body: unknown = await res.json();
      hits.push({ key, ms: performance.now() - started, status: res.status, body, retryAfter: res.headers.get('retry-after') });
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  return hits;
}

describe('a Redis outage under load: a request waits one command timeout at most, then the failure mode applies at once', () => {
  test.each([
    ['open', 'frozen'],
    ['closed', 'frozen'],
    ['open', 'killed'],
    ['closed', 'killed'],
  ] as const)(
    'failure mode %s, Redis %s: the first requests wait once, the rest not at all; back on Redis soon after it answers; counts exact',
    async (mode, outage) => {
      const ns = `outage${++prefix}`;
      const keys = await createKeys(ns);
      const mixed = [...keys.plain, keys.metered, keys.unknown];
      const app = await startApp({ redis: redis.server.url, prefix: ns, mode, commandTimeoutMs: COMMAND_TIMEOUT_MS, plans: PLANS });
      const allowed = new Map<string, number>();
      const count = (hits: Hit[]) => hits.forEach((h) => h.status === 200 && allowed.set(h.key, (allowed.get(h.key) ?? 0) + 1));
      const up = (key: string) => (key === keys.unknown ? 401 : 200);
      let frozen = false;
      try {
        const before = await load(app.url, mixed, 20);
        expect(before.filter((h) => h.status !== up(h.key))).toEqual([]);
        count(before);

        if (outage === 'frozen') {
          redis.server.pause();
          frozen = true;
        } else {
          await redis.server.stop();
        }
        const during = await load(app.url, mixed, 100);
        count(during);
        const down = (key: string) => (mode === 'closed' || key === keys.metered ? 503 : up(key));
        expect(during.filter((h) => h.status !== down(h.key))).toEqual([]);
        for (const hit of during.filter((h) => h.status === 503)) {
          expect(hit.body).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) } });
          expect(hit.retryAfter).toBe('1');
        }
        const times = during.map((h) => h.ms).sort((a, b) => a - b);
        // Only the requests sent before the first timeout waited for it (at most one a lane), and once.
        expect(times.at(-1)).toBeLessThan(2 * COMMAND_TIMEOUT_MS + MARGIN_MS);
        expect(times.filter((ms) => ms >= COMMAND_TIMEOUT_MS / 2).length).toBeLessThanOrEqual(LANES);
        expect(times[50]).toBeLessThan(COMMAND_TIMEOUT_MS / 2);

        if (outage === 'frozen') {
          redis.server.resume();
          frozen = false;
        } else {
          await redis.server.start();
        }
        const answering = performance.now();
        // A request of a plain key moves its window's counter in Redis once the server uses Redis
        // again. The commands sent before the outage was found were answered at the resume: after.
        const counter = `${ns}:rl:key:1000000:60:${hashKey(keys.plain[0]!)}`;
        await sleep(50);
        let last = Number(await redis.admin.get(counter));
        await waitFor(async () => {
          count(await load(app.url, [keys.plain[0]!], 1));
          const now = Number(await redis.admin.get(counter));
          const moved = now > last;
          last = now;
          return moved;
        }, 10_000);
        const backAfter = performance.now() - answering;
        // Frozen: the next PING, at most a probe interval after the resume. Killed: the client's reconnection, then one PING.
        expect(backAfter).toBeLessThan((outage === 'frozen' ? PROBE_INTERVAL_MS : RECONNECT_BACKOFF_MS) + MARGIN_MS);

        const after = await load(app.url, mixed, 20);
        expect(after.filter((h) => h.status !== up(h.key))).toEqual([]);
        count(after);
      } finally {
        if (frozen) redis.server.resume();
        expect(await app.stop()).toBe(0);
      }
      // Usage counted in memory during the outage was written after it, once: a flush that timed
      // out while Redis was frozen was applied at the resume, and its retry (same batch) was not.
      for (const key of [...keys.plain, keys.metered]) {
        expect(Number(await redis.admin.hget(`{${ns}}:key:${hashKey(key)}`, 'usage_count'))).toBe(allowed.get(key) ?? 0);
      }
      const quota = await redis.admin.keys(`{${ns}}:quota:${hashKey(keys.metered)}:*`);
      const spent = await Promise.all(quota.map(async (k) => Number(await redis.admin.get(k))));
      expect(spent.reduce((a, b) => a + b, 0)).toBe(allowed.get(keys.metered));
      expect(app.stderr()).toContain('Redis is unavailable');
      // Each failing part once an outage, not once a request (open: keys without a quota go on meanwhile).
      for (const part of ['key store look-up failed', 'rate limiter failed', 'quota and credits check failed']) {
        const times = app.stderr().split(`onError: ${part}:`).length - 1;
        expect(`${part}, reported ${times} time(s)`).toMatch(/reported [01] time/);
      }
    },
    60_000,
  );
});
