import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { JsonFileKeyStore, hashKey } from '../src';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, clearOfMidnight, tempDir } from './helpers';

const run = promisify(execFile);
const WORKER = join(__dirname, 'fixtures/app-worker.js');

describe('a monthly quota on the JSON store with several processes', () => {
  test(
    'two processes overshoot by at most the traffic of the other in two flush intervals plus one reload interval',
    async () => {
      // The workers count the quota by the real clock's UTC month: the run stays within one.
      await clearOfMidnight(20_000);
      const storePath = join(tempDir(), 'api_keys.json');
      const quota = 200;
      const plans = { metered: { limits: [{ name: 'minute', limit: 100000, window: '1m' }], monthly_quota: quota } };
      const store = new JsonFileKeyStore({ path: storePath });
      const { key } = await store.create({ owner: 'shared', plan: 'metered' });
      await store.close();
      const flushIntervalMs = 100;
      const reloadIntervalMs = 100;
      const job = JSON.stringify({ storePath, plans, key, requests: 300, lanes: 2, flushIntervalMs, reloadIntervalMs });
      const results = await Promise.all(
        [0, 1].map(async () => {
          const { stdout } = await run(process.execPath, [WORKER, job], { timeout: 60_000 });
          return JSON.parse(stdout) as { statuses: Record<string, number>; elapsedMs: number };
        }),
      );
      const allowed = results.reduce((n, r) => n + (r.statuses[200] ?? 0), 0);
      for (const r of results) expect(Object.keys(r.statuses).every((s) => s === '200' || s === '429')).toBe(true);
      // What one process may not see of the other: the other's requests not flushed yet (up to one
      // interval, plus the flush that is writing them) and flushed since this one last read the file.
      const unseen = (other: { elapsedMs: number }) =>
        Math.ceil((300 / Math.max(other.elapsedMs, 1)) * (2 * flushIntervalMs + reloadIntervalMs));
      const bound = unseen(results[1]!) + unseen(results[0]!) + 2 * 2; // + the requests in flight (lanes)
      expect(allowed).toBeGreaterThanOrEqual(quota);
      expect(allowed - quota).toBeLessThanOrEqual(bound);
      // Counting itself stays exact: the file holds every allowed request.
      const [record] = JSON.parse(readFileSync(storePath, 'utf8')) as Array<Record<string, unknown>>;
      expect(record).toMatchObject({ key_hash: hashKey(key), usage_count: allowed, requests_this_month: allowed });
    },
    CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
  );
});
