import request from 'supertest';
import { PostgresKeyStore, daymindAuth, hashKey, type PostgresKeyStoreOptions, type UsageDelta } from '../../src';
import { appWith, waitFor, testClock, TEST_NOW } from '../helpers';
import { databaseForFile } from './harness';

const stores: PostgresKeyStore[] = [];
const file = databaseForFile(async () => {
  for (const s of stores) await s.close();
});
let schema = 0;

/** A store on a fresh schema; `same` reuses the previous schema (another instance). */
async function store(same = false, options: Partial<PostgresKeyStoreOptions> = {}): Promise<PostgresKeyStore> {
  if (!same) schema++;
  const s = new PostgresKeyStore({ url: file.db.url, schema: `t${schema}`, pollIntervalMs: 200, ...options });
  stores.push(s);
  await s.init();
  return s;
}

const delta = (key_hash: string, units: number, day = 20261124): UsageDelta => ({
  key_hash,
  units,
  last_used: 1795550000.5,
  days: [{ day, units }],
});
const batch = (batchId: string) => ({ batchId, onApplied: () => undefined });

describe('PostgresKeyStore', () => {
  test('creates its tables, lists, revokes and rotates keys; only hashes are stored', async () => {
    const s = await store();
    const { key, record } = await s.create({ owner: 'acme', rate_limit_per_minute: 9, meta: { plan: 'pro' } });
    expect(s.get(hashKey(key))).toMatchObject({ owner: 'acme', rate_limit_per_minute: 9, meta: { plan: 'pro' }, revoked: false });
    const rows = await file.db.pool.query(`SELECT * FROM t${schema}.keys`);
    expect(JSON.stringify(rows.rows)).not.toContain(key);
    expect(rows.rows[0]).toMatchObject({ owner: 'acme', usage_count: '0', revoked: false, key_hash: record.key_hash });
    const layout = await file.db.pool.query(`SELECT value FROM t${schema}.meta WHERE name = 'layout_version'`);
    expect(layout.rows).toEqual([{ value: '1' }]);
    const rotated = (await s.rotate(record.key_hash, 3600))!;
    expect(rotated.record).toMatchObject({ owner: 'acme', rate_limit_per_minute: 9, rotated_from: record.key_hash });
    expect(rotated.previous.revoke_at).toBeGreaterThan(Date.now() / 1000 + 3500);
    expect((await s.revoke(rotated.record.key_hash))!.revoked).toBe(true);
    expect(await s.revoke('0'.repeat(64))).toBeUndefined();
    expect(await s.rotate('0'.repeat(64), 0)).toBeUndefined();
    const fresh = await store(true);
    expect((await fresh.list()).length).toBe(2);
    expect(fresh.get(rotated.record.key_hash)!.revoked).toBe(true);
    expect(fresh.get(record.key_hash)!.revoke_at).toBeCloseTo(rotated.previous.revoke_at!, 3);
  });

  test('update changes settings and credits for this instance and another; credits never go below 0', async () => {
    const s = await store();
    const { record } = await s.create({ owner: 'acme', meta: { plan: 'pro', team: 'core' }, credits: 5 });
    expect(await s.update(record.key_hash, { owner: 'acme-eu', meta: { region: 'eu' }, add_credits: 10 })).toMatchObject({
      owner: 'acme-eu',
      meta: { region: 'eu' },
      credits: 15,
    });
    const other = await store(true);
    expect(other.get(record.key_hash)).toMatchObject({ owner: 'acme-eu', meta: { region: 'eu' }, credits: 15 });
    await s.update(record.key_hash, { meta: null, add_credits: -100 });
    const row = await file.db.pool.query(`SELECT meta, credits FROM t${schema}.keys`);
    expect(row.rows).toEqual([{ meta: null, credits: '0' }]);
    expect(await s.update('0'.repeat(64), { owner: 'x' })).toBeUndefined();
  });

  test('another instance sees new keys and revocations within a second', async () => {
    const a = await store();
    const b = await store(true);
    const { record } = await a.create({ owner: 'late' });
    await waitFor(() => b.get(record.key_hash) !== undefined, 1000, 10);
    await a.revoke(record.key_hash);
    const elapsed = await waitFor(() => b.get(record.key_hash)?.revoked === true, 1000, 10);
    expect(elapsed).toBeLessThan(1000);
  });

  test('another instance picks up thousands of keys imported at once (read in pages), none skipped', async () => {
    const a = await store();
    const b = await store(true, { listen: false, pollIntervalMs: 0 }); // reads only when told to
    await a.create({ owner: 'first' }); // one change of one row: the pages no longer end between changes
    const rows = Array.from({ length: 2600 }, (_, i) => {
      const hash = hashKey(`dm_imported_${i}`);
      return { raw: { owner: `o${i}`, key_prefix: 'dm_import', usage_count: i, created_at: 1 }, hash, legacy: true };
    });
    expect(await a.importRecords(rows)).toBe(2600);
    expect(await a.importRecords(rows.slice(0, 10))).toBe(0);
    await b.refresh();
    expect(b.size()).toBe(2601);
    expect(b.get(hashKey('dm_imported_2599'))).toMatchObject({ owner: 'o2599', usage_count: 2599 });
    expect(b.hasUnchecksummedKeys()).toBe(true);
  });

  test('usage is added in one statement per flush, and a batch retried with the same id counts once', async () => {
    const a = await store();
    const b = await store(true);
    const { record } = await a.create({ owner: 'acme' });
    await Promise.all([a.applyUsage([delta(record.key_hash, 3)], batch('one')), b.applyUsage([delta(record.key_hash, 4)], batch('two'))]);
    await a.applyUsage([delta(record.key_hash, 3)], batch('one'));
    const days = [
      { day: 20261124, units: 1 },
      { day: 20261125, units: 4 },
    ];
    await a.applyUsage([{ key_hash: record.key_hash, units: 5, last_used: 1795600000, days }], batch('three'));
    expect(await a.fetch(record.key_hash)).toMatchObject({
      usage_count: 12,
      requests_today: 4,
      requests_day: 20261125,
      requests_this_month: 12,
      requests_month: 202611,
      last_used: 1795600000,
    });
    // A day older than the record's counts in usage_count only.
    await a.applyUsage([delta(record.key_hash, 2, 20261120)], batch('four'));
    expect(await b.fetch(record.key_hash)).toMatchObject({ usage_count: 14, requests_today: 4, requests_day: 20261125 });
  });

  test('quota and credits are spent exactly by concurrent instances, never below 0', async () => {
    const clock = testClock();
    const a = await store(false, clock);
    const b = await store(true, clock);
    const { record } = await a.create({ owner: 'acme', credits: 50 });
    const spend = (s: PostgresKeyStore) => s.spend(record.key_hash, { units: 1, nowMs: TEST_NOW, monthlyQuota: 30 });
    const results = await Promise.all(Array.from({ length: 80 }, (_, i) => spend(i % 2 ? a : b)));
    expect(results.filter((r) => r.outcome === 'spent').length).toBe(30);
    expect(results.filter((r) => r.outcome === 'quota_exceeded').length).toBe(50);
    expect((await a.fetch(record.key_hash))!.credits).toBe(20);
    const { record: prepaid } = await a.create({ owner: 'prepaid', credits: 25 });
    const spends = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).spend(prepaid.key_hash, { units: 1, nowMs: TEST_NOW, monthlyQuota: null })),
    );
    expect(spends.filter((r) => r.outcome === 'spent').length).toBe(25);
    expect(spends.filter((r) => r.outcome === 'credits_exhausted').every((r) => r.credits === 0)).toBe(true);
    expect((await b.fetch(prepaid.key_hash))!.credits).toBe(0);
    // A refund gives back once what its spend took, from quota and credits.
    const i = results.findIndex((r) => r.outcome === 'spent');
    const spender = i % 2 ? a : b;
    await spender.refund(record.key_hash, { units: 1, nowMs: TEST_NOW, monthlyQuota: 30 }, results[i]!);
    await spender.refund(record.key_hash, { units: 1, nowMs: TEST_NOW, monthlyQuota: 30 }, results[i]!);
    expect((await a.fetch(record.key_hash))!.credits).toBe(21);
    expect((await spend(b)).outcome).toBe('spent');
    expect((await spend(a)).outcome).toBe('quota_exceeded');
  });

  test('a daily refill restores credits once per day', async () => {
    const clock = testClock();
    const s = await store(false, clock);
    const { record } = await s.create({ owner: 'acme', credits_refill: { interval: 'daily', amount: 3 } });
    const take = () => s.spend(record.key_hash, { units: 2, nowMs: clock.now(), monthlyQuota: null });
    expect(await take()).toMatchObject({ outcome: 'spent', credits: 1 });
    expect(await take()).toMatchObject({ outcome: 'credits_exhausted', credits: 1 });
    clock.advance(86_400_000);
    expect(await take()).toMatchObject({ outcome: 'spent', credits: 1 });
  });

  test('a layout written by a newer version is refused with a clear error, and left untouched', async () => {
    const s = await store();
    await s.close();
    await file.db.pool.query(`UPDATE t${schema}.meta SET value = 99 WHERE name = 'layout_version'`);
    const errors: Error[] = [];
    const again = new PostgresKeyStore({ url: file.db.url, schema: `t${schema}`, onError: (e) => errors.push(e) });
    stores.push(again);
    await expect(again.init()).rejects.toThrow(
      `the PostgreSQL schema "t${schema}" has table layout 99, written by a newer daymind-auth; this version knows layout 1 and leaves it untouched: upgrade daymind-auth`,
    );
    expect((await file.db.pool.query(`SELECT value FROM t${schema}.meta WHERE name = 'layout_version'`)).rows).toEqual([{ value: '99' }]);
    expect(errors).toEqual([]); // said once, by init(), not as an outage
  });

  test('behind the middleware: KEY_STORE=postgres from the environment, a key created on another instance works at once', async () => {
    schema++;
    const a = await store(true);
    const auth = daymindAuth({
      env: { KEY_STORE: 'postgres', DATABASE_URL: file.db.url, DATABASE_SCHEMA: `t${schema}` },
      flushIntervalMs: 50,
      billing: false,
    });
    try {
      await auth.ready;
      const { key } = await a.create({ owner: 'fresh' });
      const res = await request(appWith(auth)).get('/v1/hello').set('X-API-Key', key);
      expect(res.status).toBe(200);
      await auth.flush();
      const usage = await request(appWith(auth)).get('/v1/usage').set('X-API-Key', key);
      expect(usage.body.usage_count).toBe(1);
      expect((await a.fetch(hashKey(key)))!.usage_count).toBe(1);
      const history = await file.db.pool.query(`SELECT allowed FROM t${schema}.history WHERE key_hash = $1`, [hashKey(key)]);
      expect(history.rows).toEqual([{ allowed: '1' }]);
    } finally {
      await auth.close();
    }
  });
});
