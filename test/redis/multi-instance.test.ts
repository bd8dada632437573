import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Redis from 'ioredis';
import { RedisKeyStore, hashKey, readLedger } from '../../src';
import { childEnv, monthsBetween, tempDir } from '../helpers';
import { startRedis, type TestRedis } from './harness';

const SERVE = join(__dirname, '../fixtures/serve-env.js');

interface App {
  proc: ChildProcess;
  url: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

async function startApp(env: Record<string, string>): Promise<App> {
  const proc = spawn(process.execPath, [SERVE], { env: childEnv(env) });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const port = await new Promise<string>((resolve, reject) => {
    proc.stdout!.once('data', (d) => resolve(String(d).trim()));
    proc.once('exit', (code) => reject(new Error(`app exited with ${code}: ${err}`)));
  });
  return {
    proc,
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

let redis: TestRedis;
let admin: Redis;
let prefix = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = redis.client();
}, 20_000);
afterAll(async () => {
  await redis.close();
});

async function newKey(ns: string): Promise<string> {
  const client = new Redis(redis.url);
  const store = new RedisKeyStore({ client, prefix: ns, pollIntervalMs: 0 });
  await store.init();
  const { key } = await store.create({ owner: 'shared' });
  await store.close();
  await client.quit();
  return key;
}

async function usageOf(ns: string, key: string): Promise<number> {
  return Number(await admin.hget(`{${ns}}:key:${hashKey(key)}`, 'usage_count'));
}

describe('several app instances on one Redis', () => {
  test('three processes with a per-key limit of 100/min: 300 requests give exactly 100 allowed, counted exactly', async () => {
    const ns = `multi${++prefix}`;
    const key = await newKey(ns);
    const ledgerDir = tempDir();
    const started = Date.now();
    const env = {
      REDIS_URL: redis.url,
      KEY_STORE: 'redis',
      REDIS_PREFIX: ns,
      API_RATE_LIMIT_PER_MINUTE: '100',
      IP_RATE_LIMIT_PER_MINUTE: 'off',
      DAYMIND_LEDGER_DIR: ledgerDir,
    };
    const apps = await Promise.all([startApp(env), startApp(env), startApp(env)]);
    try {
      const statuses: number[] = [];
      let next = 0;
      const lane = async () => {
        while (next < 300) {
          const app = apps[next++ % 3]!;
          const res = await fetch(app.url, { headers: { authorization: `Bearer ${key}` } });
          await res.arrayBuffer();
          statuses.push(res.status);
        }
      };
      await Promise.all(Array.from({ length: 6 }, lane));
      expect(statuses.filter((s) => s === 200)).toHaveLength(100);
      expect(statuses.filter((s) => s === 429)).toHaveLength(200);
    } finally {
      expect(await Promise.all(apps.map((a) => a.stop()))).toEqual([0, 0, 0]);
    }
    expect(await usageOf(ns, key)).toBe(100);
    // The three processes share one billing outbox and ledger: the ledger bills the same 100.
    // Every month the servers' clocks may have been in (a run across a month's end writes to two).
    const ledger = await readLedger(ledgerDir, monthsBetween(started, Date.now()));
    expect(ledger.reduce((sum, e) => sum + e.quantity, 0)).toBe(100);
  }, 60_000);

  test.each([
    ['open', 200],
    ['closed', 503],
  ] as const)(
    'Redis stopped during traffic (failure mode %s): every request answered, no count lost',
    async (mode, duringOutage) => {
      const ns = `outage${++prefix}`;
      const key = await newKey(ns);
      const app = await startApp({
        REDIS_URL: redis.url,
        KEY_STORE: 'redis',
        REDIS_PREFIX: ns,
        REDIS_FAILURE_MODE: mode,
        API_RATE_LIMIT_PER_MINUTE: '100000',
        IP_RATE_LIMIT_PER_MINUTE: 'off',
        BILLING_MODE: 'off',
      });
      const seen = new Map<number, number>();
      let slowest = 0;
      let running = true;
      const traffic = (async () => {
        while (running) {
          const t0 = Date.now();
          const res = await fetch(app.url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer();
          slowest = Math.max(slowest, Date.now() - t0);
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      try {
        await new Promise((r) => setTimeout(r, 500));
        await redis.stop();
        const before = new Map(seen);
        await new Promise((r) => setTimeout(r, 1500));
        const during = (seen.get(duringOutage) ?? 0) - (before.get(duringOutage) ?? 0);
        expect(during).toBeGreaterThan(10);
        expect(app.proc.exitCode).toBeNull();
        await redis.start();
        await new Promise((r) => setTimeout(r, 2500));
        running = false;
        await traffic;
      } finally {
        running = false;
      }
      expect(await app.stop()).toBe(0);
      expect(slowest).toBeLessThan(2000);
      expect([...seen.keys()].every((s) => s === 200 || s === duringOutage)).toBe(true);
      expect(await usageOf(ns, key)).toBe(seen.get(200));
      expect(app.stderr()).toContain('Redis is unavailable');
    },
    60_000,
  );
});
