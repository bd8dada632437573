import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashKey } from '../../src';
import { cli } from '../cli/run';
import { tempDir, waitFor } from '../helpers';
import { startApp, hit, type App } from './apps';
import { databaseForFile } from './harness';

const apps: App[] = [];
const file = databaseForFile(async () => {
  await Promise.all(apps.map((a) => a.stop()));
});

const PLANS = { metered: { limits: [{ name: 'minute', limit: 100_000, window: '1m' }], monthly_quota: 120 } };

async function row(schema: string, key: string): Promise<{ usage_count: string; credits: string | null }> {
  const result = await file.db.pool.query(`SELECT usage_count, credits FROM ${schema}.keys WHERE key_hash = $1`, [hashKey(key)]);
  return result.rows[0];
}

describe('three server processes on one PostgreSQL database', () => {
  test('usage, quota and credits are exact across them; the CLI beside them creates and revokes keys seen by all within a second', async () => {
    const schema = 'multi';
    const plansFile = join(tempDir(), 'plans.json');
    writeFileSync(plansFile, JSON.stringify(PLANS));
    const env = { DATABASE_SCHEMA: schema, DATABASE_URL: file.db.url, KEY_STORE: 'postgres' };
    const create = async (...args: string[]) => {
      const run = await cli(['create', ...args], { ...env, DAYMIND_PLANS_FILE: plansFile });
      expect(run.stderr).toMatch(/^Created dm_/);
      return run.stdout.trim();
    };
    const plain = await create('plain');
    const prepaid = await create('prepaid', '--credits', '150');
    const metered = await create('metered', '--plan', 'metered');
    const serverEnv = {
      ...env,
      DAYMIND_PLANS_FILE: plansFile,
      IP_RATE_LIMIT_PER_MINUTE: 'off',
      API_RATE_LIMIT_PER_MINUTE: '100000',
      BILLING_MODE: 'off',
    };
    apps.push(...(await Promise.all([startApp(serverEnv), startApp(serverEnv), startApp(serverEnv)])));
    // Every answer with every key, to compare the stored counts with.
    const allowed = new Map<string, number>();
    const track = async (app: App, key: string) => {
      const status = await hit(app, key);
      if (status === 200) allowed.set(key, (allowed.get(key) ?? 0) + 1);
      return status;
    };
    for (const app of apps) await waitFor(async () => (await track(app, plain)) === 200, 5000, 50);

    const statuses = new Map<string, number[]>([plain, prepaid, metered].map((k) => [k, []]));
    let next = 0;
    const lane = async () => {
      while (next < 900) {
        const i = next++;
        const key = [plain, prepaid, metered][i % 3]!;
        statuses.get(key)!.push(await track(apps[Math.floor(i / 3) % 3]!, key));
      }
    };
    await Promise.all(Array.from({ length: 9 }, lane));
    const count = (key: string, status: number) => statuses.get(key)!.filter((s) => s === status).length;
    expect(count(plain, 200)).toBe(300);
    expect(count(prepaid, 200)).toBe(150);
    expect(count(prepaid, 402)).toBe(150);
    expect(count(metered, 200)).toBe(120);
    expect(count(metered, 200) + count(metered, 429)).toBe(300);

    // The CLI beside the running servers: a new key works on all three at once, a revoked one is refused by all within a second.
    const late = await create('late');
    for (const app of apps) expect(await track(app, late)).toBe(200);
    expect((await cli(['revoke', late], env)).code).toBe(0);
    const revokedAt = Date.now();
    const seen = await Promise.all(apps.map((app) => waitFor(async () => (await track(app, late)) === 401, 1000, 10)));
    expect(Math.max(...seen)).toBeLessThan(1000);
    expect(Date.now() - revokedAt).toBeLessThan(1500);

    expect(await Promise.all(apps.splice(0).map((a) => a.stop()))).toEqual([0, 0, 0]);
    expect(await row(schema, plain)).toEqual({ usage_count: String(allowed.get(plain)), credits: null });
    expect(allowed.get(plain)).toBe(303); // and one per server before the traffic
    expect(await row(schema, prepaid)).toEqual({ usage_count: '150', credits: '0' });
    expect((await row(schema, metered)).usage_count).toBe('120');
    const list = JSON.parse((await cli(['--json', 'list'], env)).stdout) as Array<{ owner: string; usage_count: number }>;
    expect(Object.fromEntries(list.map((r) => [r.owner, r.usage_count]))).toEqual({
      plain: 303,
      prepaid: 150,
      metered: 120,
      late: allowed.get(late),
    });
  }, 120_000);
});
