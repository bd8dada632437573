import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { FileUsageHistory, daymindAuth, hashKey, historyDirFor } from '../../src';
import { dayOffset } from '../../src/usage/history';
import { appWith, everyTurn, seedStoreCopy, SEED_KEYS, tempDir, TEST_NOW } from '../helpers';

const run = promisify(execFile);
const WORKER = join(__dirname, '../fixtures/app-worker.js');

const DAY_MS = 86_400_000;
/** The injected clock of every test here: days never move while a test runs. */
const today = (): number => TEST_NOW;
const now = today;
const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

interface HistoryBody {
  days: Array<{ day: string; allowed: number; rate_limited: number }>;
}

async function worker(job: Record<string, unknown>): Promise<{ allowed: number; rate_limited: number; other: number }> {
  const { stdout, stderr } = await run(process.execPath, [WORKER, JSON.stringify(job)], { timeout: 60_000 });
  expect(stderr).toBe('');
  const { statuses } = JSON.parse(stdout) as { statuses: Record<string, number> };
  const { 200: allowed = 0, 429: rateLimited = 0, ...rest } = statuses;
  return { allowed, rate_limited: rateLimited, other: Object.values(rest).reduce((a, b) => a + b, 0) };
}

describe('per-day usage history', () => {
  test('two processes on one store file, then a restart on the next day: exact per-day numbers, 429s included', async () => {
    const storePath = seedStoreCopy();
    const key = SEED_KEYS.alpha;
    const day1 = today() - DAY_MS;
    const day2 = today();
    // Each process has its own memory limiter: 25 requests against a limit of 10 = 10 allowed, 15 refused.
    const [a, b] = await Promise.all([
      worker({ storePath, nowMs: day1, key, requests: 25, limit: 10 }),
      worker({ storePath, nowMs: day1, key, requests: 25, limit: 10 }),
    ]);
    expect([a, b]).toEqual([
      { allowed: 10, rate_limited: 15, other: 0 },
      { allowed: 10, rate_limited: 15, other: 0 },
    ]);
    // A restart: a new process on the next day.
    const c = await worker({ storePath, nowMs: day2, key, requests: 7, limit: 5 });
    expect(c).toEqual({ allowed: 5, rate_limited: 2, other: 0 });

    const auth = daymindAuth({ env: {}, storePath, billing: false, now: () => day2 });
    try {
      const res = await request(appWith(auth)).get('/v1/usage/history?days=3').set('authorization', `Bearer ${key}`);
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect((res.body as HistoryBody).days).toEqual([
        { day: iso(day1 - DAY_MS), allowed: 0, rate_limited: 0 },
        { day: iso(day1), allowed: 20, rate_limited: 30 },
        // Today is live; this request is not usage, and not in it.
        { day: iso(day2), allowed: 5, rate_limited: 2 },
      ]);
    } finally {
      await auth.close();
    }
    // One small file per day beside the store; the key store itself holds no history.
    const dir = historyDirFor(storePath);
    expect(readdirSync(dir).sort()).toEqual([`${iso(day1)}.json`, `${iso(day2)}.json`]);
    expect(JSON.parse(readFileSync(join(dir, `${iso(day1)}.json`), 'utf8'))).toEqual({ [hashKey(key)]: [20, 30] });
    expect(JSON.parse(readFileSync(join(dir, `${iso(day2)}.json`), 'utf8'))).toEqual({ [hashKey(key)]: [5, 2] });
  });

  test('days: 1 to 90, default 30, oldest first with zeros; anything else is a 400 with a JSON error', async () => {
    const auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false, now });
    const app = appWith(auth);
    const get = (query: string) => request(app).get(`/v1/usage/history${query}`).set('x-api-key', SEED_KEYS.beta);
    try {
      const byDefault = (await get('')).body as HistoryBody;
      expect(byDefault.days).toHaveLength(30);
      expect(byDefault.days[29]).toEqual({ day: iso(now()), allowed: 0, rate_limited: 0 }); // the history calls are not usage
      expect(byDefault.days[0]!.day).toBe(iso(now() - 29 * DAY_MS));
      expect(byDefault.days.slice(0, 29).every((d) => d.allowed === 0 && d.rate_limited === 0)).toBe(true);
      expect(((await get('?days=90')).body as HistoryBody).days).toHaveLength(90);
      await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.beta).expect(200);
      expect(((await get('?days=1')).body as HistoryBody).days).toEqual([{ day: iso(now()), allowed: 1, rate_limited: 0 }]);
      for (const bad of ['0', '91', '-1', '1.5', 'abc', '', '1e1', '30&days=31']) {
        const res = await get(`?days=${bad}`);
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('bad_request');
        expect(res.body.error.message).toMatch(/days must be a whole number from 1 to 90/);
      }
      const noKey = await request(app).get('/v1/usage/history');
      expect(noKey.status).toBe(401);
    } finally {
      await auth.close();
    }
  });

  test('requests refused by the key limit and by the IP limit both count as rate-limited for the key', async () => {
    const auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false, rateLimitPerMinute: 3, ipRateLimitPerMinute: 6, now });
    const app = appWith(auth);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.alpha)).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      // The IP window (6) is now used up: the other key is refused by it before its own limit is checked.
      expect((await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.beta)).status).toBe(200);
      expect((await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.beta)).status).toBe(429);
      await auth.flush();
      const history = new FileUsageHistory({ dir: historyDirFor(auth.config.storePath) });
      const [alpha] = await history.read(hashKey(SEED_KEYS.alpha), [dayOffset(now(), 0)]);
      const [beta] = await history.read(hashKey(SEED_KEYS.beta), [dayOffset(now(), 0)]);
      expect(alpha).toEqual({ allowed: 3, rate_limited: 2 });
      expect(beta).toEqual({ allowed: 1, rate_limited: 1 });
    } finally {
      await auth.close();
    }
  });

  test('a corrupt day file is named in the error and never overwritten; counts wait in memory', async () => {
    const storePath = seedStoreCopy();
    const errors: Error[] = [];
    const auth = daymindAuth({ env: {}, storePath, billing: false, onError: (e) => errors.push(e), now });
    const app = appWith(auth);
    const file = join(historyDirFor(storePath), `${iso(now())}.json`);
    try {
      await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.alpha).expect(200);
      await auth.flush();
      writeFileSync(file, '{"oops": ');
      await request(app).get('/v1/hello').set('x-api-key', SEED_KEYS.alpha).expect(200);
      await auth.flush();
      expect(errors.map((e) => e.message).join('\n')).toContain(file);
      expect(readFileSync(file, 'utf8')).toBe('{"oops": ');
      const res = await request(app).get('/v1/usage/history?days=1').set('x-api-key', SEED_KEYS.alpha);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('service_unavailable');
      // Replaced by an empty day: the counts kept in memory (the second hello; the history call is not usage) are written.
      writeFileSync(file, '{}');
      await auth.flush();
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ [hashKey(SEED_KEYS.alpha)]: [1, 0] });
    } finally {
      await auth.close();
    }
  });

  test('days older than the retention period roll off', async () => {
    const dir = join(tempDir(), 'history');
    const at = today();
    const history = new FileUsageHistory({ dir, now: () => at });
    const entry = (offset: number) => ({ key_hash: 'ab', day: dayOffset(at, offset), allowed: 1, rate_limited: 0 });
    await history.add([entry(-120), entry(-100), entry(-99), entry(0)]);
    // Pruning runs once a day: a later flush on the same day removes nothing more.
    expect(readdirSync(dir).sort()).toEqual([`${iso(at - 99 * DAY_MS)}.json`, `${iso(at)}.json`]);
    expect(await history.read('ab', [dayOffset(at, -99), dayOffset(at, 0), dayOffset(at, -1)])).toEqual([
      { allowed: 1, rate_limited: 0 },
      { allowed: 1, rate_limited: 0 },
      { allowed: 0, rate_limited: 0 },
    ]);
    expect(existsSync(join(dir, `${iso(at - 120 * DAY_MS)}.json`))).toBe(false);
  });
  test('a large day file written by another writer is read in slices: the same counts, and a bad member still refused', async () => {
    const dir = join(tempDir(), 'history');
    const at = today();
    const day = dayOffset(at, 0);
    const hashes = Array.from({ length: 20_000 }, (_, i) => hashKey(`key-${i}`));
    const writer = new FileUsageHistory({ dir, now: () => at });
    await writer.add(hashes.map((key_hash, i) => ({ key_hash, day, allowed: i + 1, rate_limited: i % 3 })));
    const reader = new FileUsageHistory({ dir, now: () => at });
    reader.sliceBudgetMs = 0; // a turn after each step: one long synchronous parse would show as few turns
    const { seen: turns, result: days } = await everyTurn(
      () => 1,
      () => reader.readDays([day]),
    );
    expect(turns.length).toBeGreaterThan(20_000);
    const counts = days.get(day)!;
    expect(counts.size).toBe(20_000);
    expect(hashes.every((hash, i) => counts.get(hash)?.allowed === i + 1 && counts.get(hash)?.rate_limited === i % 3)).toBe(true);
    // The writer adds to it again; the reader sees the new version.
    await writer.add([{ key_hash: hashes[19_999]!, day, allowed: 5, rate_limited: 1 }]);
    expect(await reader.read(hashes[19_999]!, [day])).toEqual([{ allowed: 20_005, rate_limited: 1 + (19_999 % 3) }]);
    // A bad member deep in the file is refused as a whole parse refuses it, naming the file.
    const file = join(dir, `${iso(at)}.json`);
    writeFileSync(file, readFileSync(file, 'utf8').replace(`"${hashes[15_000]}":[15001,`, `"${hashes[15_000]}":[-1,`));
    await expect(reader.read(hashes[0]!, [day])).rejects.toThrow(`the usage history file ${file} has a bad entry for ${hashes[15_000]}`);
  }, 30_000);
});
