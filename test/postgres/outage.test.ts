import { PostgresKeyStore, hashKey } from '../../src';
import { sleep, waitFor } from '../helpers';
import { startApp, hit, type App } from './apps';
import { databaseForFile, startProxy, urlOf, type TestProxy } from './harness';

/** The store's query timeout (the default of databaseTimeoutMs) and its connection timeout. */
const QUERY_TIMEOUT_MS = 500;
const CONNECT_TIMEOUT_MS = 1000;
/** Room for a loaded two-core machine: scheduling, not waiting for the database. */
const MARGIN_MS = 700;
const CREDITS = 1_000_000;

const apps: App[] = [];
const proxies: TestProxy[] = [];
const file = databaseForFile(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await Promise.all(proxies.map((p) => p.close()));
});

async function createKeys(schema: string): Promise<{ plain: string; prepaid: string }> {
  const store = new PostgresKeyStore({ url: file.db.url, schema, pollIntervalMs: 0, listen: false });
  try {
    await store.init();
    return {
      plain: (await store.create({ owner: 'plain' })).key,
      prepaid: (await store.create({ owner: 'prepaid', credits: CREDITS })).key,
    };
  } finally {
    await store.close();
  }
}

describe('PostgreSQL unreachable and back under load', () => {
  test.each([
    ['open', 200],
    ['closed', 503],
  ] as const)(
    'failure mode %s: replies held back, then connections cut: no request hangs, no count lost or doubled',
    async (mode, plainDuringOutage) => {
      const schema = `outage_${mode}`;
      const keys = await createKeys(schema);
      const proxy = await startProxy();
      proxies.push(proxy);
      const env = {
        KEY_STORE: 'postgres',
        DATABASE_URL: urlOf(file.db.name, proxy.port),
        DATABASE_SCHEMA: schema,
        DATABASE_FAILURE_MODE: mode,
        API_RATE_LIMIT_PER_MINUTE: '1000000',
        IP_RATE_LIMIT_PER_MINUTE: 'off',
        BILLING_MODE: 'off',
      };
      const app = await startApp(env);
      apps.push(app);
      await waitFor(async () => (await hit(app, keys.plain)) === 200, 5000, 50);
      const seen = new Map<string, Map<number, number>>([
        [keys.plain, new Map([[200, 1]])],
        [keys.prepaid, new Map()],
      ]);
      let slowest = 0;
      let running = true;
      const lane = async (key: string) => {
        while (running) {
          const t0 = Date.now();
          const status = await hit(app, key, 10_000);
          slowest = Math.max(slowest, Date.now() - t0);
          const counts = seen.get(key)!;
          counts.set(status, (counts.get(status) ?? 0) + 1);
          await sleep(5);
        }
      };
      const count = (key: string, status: number) => seen.get(key)!.get(status) ?? 0;
      const traffic = Promise.all([lane(keys.plain), lane(keys.plain), lane(keys.prepaid), lane(keys.prepaid)]);
      try {
        await sleep(1500); // flushes go through before the outage
        proxy.freeze();
        await sleep(QUERY_TIMEOUT_MS + 500);
        const before = count(keys.plain, plainDuringOutage);
        await sleep(1500); // flushes time out meanwhile (their statements reach the server: applied, reply lost)
        expect(count(keys.plain, plainDuringOutage) - before).toBeGreaterThan(10);
        proxy.cut();
        await sleep(1500);
        expect(app.proc.exitCode).toBeNull();
        proxy.restore();
        // Back: prepaid requests are spent again and usage written.
        const prepaidBefore = count(keys.prepaid, 200);
        await waitFor(() => count(keys.prepaid, 200) > prepaidBefore + 10, 10_000, 50);
        await sleep(1500);
      } finally {
        running = false;
        await traffic;
      }
      expect(await app.stop()).toBe(0);
      expect(slowest).toBeLessThan(CONNECT_TIMEOUT_MS + MARGIN_MS);
      for (const statuses of seen.values()) expect([...statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true);
      const rows = await file.db.pool.query(`SELECT key_hash, usage_count, credits FROM ${schema}.keys`);
      const byHash = new Map(rows.rows.map((r) => [r.key_hash as string, r]));
      expect(byHash.get(hashKey(keys.plain))!.usage_count).toBe(String(count(keys.plain, 200)));
      expect(byHash.get(hashKey(keys.prepaid))!.usage_count).toBe(String(count(keys.prepaid, 200)));
      expect(byHash.get(hashKey(keys.prepaid))!.credits).toBe(String(CREDITS - count(keys.prepaid, 200)));
      expect(count(keys.prepaid, 503)).toBeGreaterThan(0);
      const history = await file.db.pool.query(`SELECT sum(allowed)::int AS allowed FROM ${schema}.history`);
      expect(history.rows[0].allowed).toBe(count(keys.plain, 200) + count(keys.prepaid, 200));
      const fallback = mode === 'open' ? 'answering from the keys in memory' : 'refusing requests \\(503\\)';
      expect(app.stderr()).toMatch(new RegExp(`onError: PostgreSQL is unavailable \\(.+\\); ${fallback} until it returns\\n`));
    },
    90_000,
  );

  test('an instance started while the database is unreachable answers 503, then serves as soon as it is back', async () => {
    const schema = 'start_down';
    const keys = await createKeys(schema);
    const proxy = await startProxy();
    proxies.push(proxy);
    proxy.cut();
    const app = await startApp({
      KEY_STORE: 'postgres',
      DATABASE_URL: urlOf(file.db.name, proxy.port),
      DATABASE_SCHEMA: schema,
      IP_RATE_LIMIT_PER_MINUTE: 'off',
      BILLING_MODE: 'off',
    });
    apps.push(app);
    await sleep(1000);
    const t0 = Date.now();
    expect(await hit(app, keys.plain)).toBe(503);
    expect(Date.now() - t0).toBeLessThan(CONNECT_TIMEOUT_MS + MARGIN_MS);
    proxy.restore();
    const back = await waitFor(async () => (await hit(app, keys.plain)) === 200, 5000, 50);
    expect(back).toBeLessThan(3000);
    expect(await app.stop()).toBe(0);
    const rows = await file.db.pool.query(`SELECT usage_count FROM ${schema}.keys WHERE key_hash = $1`, [hashKey(keys.plain)]);
    expect(rows.rows).toEqual([{ usage_count: '1' }]);
  }, 30_000);
});
