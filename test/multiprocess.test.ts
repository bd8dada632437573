import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import * as lockfile from 'proper-lockfile';
import { daymindAuth, hashKey } from '../src';
import { journalHeader, journalLine } from '../src/store/json/leftover-journal';
import { appWith, seedStoreCopy, SEED_KEYS, waitFor } from './helpers';

const run = promisify(execFile);
const fixture = (name: string): string => join(__dirname, 'fixtures', name);

describe('several processes on one store file', () => {
  test('four app processes: the final usage_counts add up exactly', async () => {
    const path = seedStoreCopy();
    const { stdout: fresh } = await run(process.execPath, [fixture('store-op.js'), 'create', path, 'multi']);
    const keys = [SEED_KEYS.alpha, SEED_KEYS.beta, fresh];
    const before = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
    const perWorker = 300;
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(process.execPath, [fixture('worker.js'), path, String(perWorker), keys.join(',')], { timeout: 60_000 }),
      ),
    );
    const allowed = new Map<string, number>(keys.map((k) => [k, 0]));
    for (const { stdout } of outputs) {
      const result = JSON.parse(stdout) as { allowed: Record<string, number>; other: number };
      expect(result.other).toBe(0);
      for (const [k, n] of Object.entries(result.allowed)) allowed.set(k, allowed.get(k)! + n);
    }
    expect([...allowed.values()].reduce((a, b) => a + b)).toBe(4 * perWorker);

    const after = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
    const byHash = (doc: Array<Record<string, unknown>>, key: string) => doc.find((r) => r.key === key || r.key_hash === hashKey(key))!;
    for (const key of keys) {
      expect(byHash(after, key).usage_count).toBe((byHash(before, key).usage_count as number) + allowed.get(key)!);
      expect(byHash(after, key).requests_today).toBe(allowed.get(key));
    }
    expect(byHash(after, SEED_KEYS.revoked)).toEqual(byHash(before, SEED_KEYS.revoked));
  });

  test('four app processes starting on a usage journal an earlier version left: its counts are taken in once, and all add up exactly', async () => {
    const path = seedStoreCopy();
    const keys = [SEED_KEYS.alpha, SEED_KEYS.beta];
    const before = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
    const stat = statSync(path, { bigint: true });
    const leftover = keys.map((key) => ({ key_hash: hashKey(key), units: 7, last_used: 1795550000, days: [{ day: 20261125, units: 7 }] }));
    writeFileSync(`${path}.journal`, journalHeader(`${stat.ino}:${stat.size}:${stat.mtimeNs}`, 1795550000000) + journalLine(leftover));
    const perWorker = 300;
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(process.execPath, [fixture('worker.js'), path, String(perWorker), keys.join(',')], { timeout: 60_000 }),
      ),
    );
    const allowed = new Map<string, number>(keys.map((k) => [k, 0]));
    for (const { stdout } of outputs) {
      const result = JSON.parse(stdout) as { allowed: Record<string, number>; other: number };
      expect(result.other).toBe(0);
      for (const [k, n] of Object.entries(result.allowed)) allowed.set(k, allowed.get(k)! + n);
    }
    // The first write took the journal into the file and removed it: the file alone holds every count.
    expect(existsSync(`${path}.journal`)).toBe(false);
    const after = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
    const byKey = (doc: Array<Record<string, unknown>>, key: string) => doc.find((r) => r.key === key || r.key_hash === hashKey(key))!;
    for (const key of keys) {
      expect(allowed.get(key)).toBe(2 * perWorker);
      expect(byKey(after, key).usage_count).toBe((byKey(before, key).usage_count as number) + 7 + allowed.get(key)!);
    }
  });

  test('a key created or revoked by another process takes effect within a second', async () => {
    const path = seedStoreCopy();
    const auth = daymindAuth({ env: {}, storePath: path });
    const app = appWith(auth);
    try {
      const { stdout: key } = await run(process.execPath, [fixture('store-op.js'), 'create', path, 'newcomer']);
      const first = await request(app).get('/v1/hello').set('Authorization', `Bearer ${key}`);
      expect(first.status).toBe(200);
      expect(first.body.owner).toBe('newcomer');

      await run(process.execPath, [fixture('store-op.js'), 'revoke', path, hashKey(key)]);
      const elapsed = await waitFor(
        async () => (await request(app).get('/v1/hello').set('Authorization', `Bearer ${key}`)).status === 401,
        1000,
        25,
      );
      expect(elapsed).toBeLessThan(1000);
      const refused = await request(app).get('/v1/hello').set('Authorization', `Bearer ${key}`);
      expect(refused.body.error.code).toBe('revoked_api_key');

      // Another tool adding a plain old-format key: it takes the store's lock, as every writer must.
      const release = await lockfile.lock(path, { realpath: false, retries: 50 });
      const doc = JSON.parse(readFileSync(path, 'utf8'));
      doc.push({
        key: 'dm_HandAddedLegacyKey0000001',
        owner: 'by-hand',
        created_at: 1,
        usage_count: 0,
        requests_today: 0,
        requests_day: 0,
        last_used: null,
        revoked: false,
      });
      writeFileSync(path + '.hand', JSON.stringify(doc, null, 2));
      renameSync(path + '.hand', path);
      await release();
      const seen = await waitFor(
        async () => (await request(app).get('/v1/hello').set('X-API-Key', 'dm_HandAddedLegacyKey0000001')).status === 200,
        1000,
        25,
      );
      expect(seen).toBeLessThan(1000);
    } finally {
      await auth.close();
    }
  });
});
