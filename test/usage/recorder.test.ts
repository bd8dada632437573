import { MemoryKeyStore, MemoryUsageHistory, type KeyStore, type UsageBatch, type UsageDelta } from '../../src';
import { UsageRecorder } from '../../src/usage/recorder';
import { utcDay } from '../../src/usage/day';

describe('UsageRecorder', () => {
  test('counts in memory at once and flushes deltas to the store', async () => {
    const store = new MemoryKeyStore();
    const { record } = await store.create({ owner: 'a' });
    const recorder = new UsageRecorder(store, 1000, () => undefined);
    const now = Date.UTC(2026, 10, 24, 12);
    recorder.record(record.key_hash, 1, now);
    recorder.record(record.key_hash, 2, now + 1000);
    expect(recorder.live(store.get(record.key_hash)!, now + 1000)).toEqual({
      usage_count: 3,
      requests_today: 3,
      requests_day: 20261124,
      requests_this_month: 3,
      requests_month: 202611,
      last_used: (now + 1000) / 1000,
    });
    expect(store.get(record.key_hash)!.usage_count).toBe(0);
    await recorder.flush();
    expect(store.get(record.key_hash)!.usage_count).toBe(3);
    expect(recorder.unflushedUnits).toBe(0);
  });

  test('a failed flush keeps its usage, retries the same batch first, and reports it', async () => {
    const inner = new MemoryKeyStore();
    const { record } = await inner.create({ owner: 'a' });
    let failing = true;
    const attempts: Array<{ batchId: string; units: number; days: unknown }> = [];
    const store: KeyStore = Object.assign(Object.create(inner) as KeyStore, {
      applyUsage: async (deltas: UsageDelta[], batch?: UsageBatch) => {
        attempts.push({ batchId: batch!.batchId, units: deltas[0]!.units, days: deltas[0]!.days });
        if (failing) throw new Error('disk full');
        return inner.applyUsage(deltas, batch);
      },
    });
    const errors: Error[] = [];
    const recorder = new UsageRecorder(store, 1000, (e) => errors.push(e));
    const day1 = Date.UTC(2026, 10, 23, 23, 59);
    recorder.record(record.key_hash, 2, day1);
    await expect(recorder.flush()).rejects.toThrow(/disk full/);
    expect(errors[0]!.message).toMatch(/2 unit\(s\) kept in memory/);
    recorder.record(record.key_hash, 3, day1 + 120_000);
    expect(recorder.live(inner.get(record.key_hash)!, day1 + 120_000).usage_count).toBe(5);
    expect(recorder.unflushedUnits).toBe(5);
    failing = false;
    await recorder.flush();
    expect(attempts.map((a) => a.units)).toEqual([2, 2, 3]);
    expect(attempts[1]!.batchId).toBe(attempts[0]!.batchId);
    expect(attempts[2]!.batchId).not.toBe(attempts[0]!.batchId);
    expect(attempts[2]!.days).toEqual([{ day: 20261124, units: 3, requests: 1 }]);
    expect(inner.get(record.key_hash)).toMatchObject({ usage_count: 5, requests_today: 3, requests_day: 20261124 });
    expect(recorder.unflushedUnits).toBe(0);
  });

  test('a batch being flushed is never counted twice in the live view', async () => {
    const inner = new MemoryKeyStore();
    const { record } = await inner.create({ owner: 'a' });
    let release!: () => void;
    let calls = 0;
    const slow: KeyStore = Object.assign(Object.create(inner) as KeyStore, {
      applyUsage: async (deltas: UsageDelta[], batch?: UsageBatch) => {
        await inner.applyUsage(deltas, batch);
        if (calls++ === 0) await new Promise<void>((r) => (release = r)); // e.g. the lock being released
      },
    });
    const recorder = new UsageRecorder(slow, 1000, () => undefined);
    const now = Date.now();
    recorder.record(record.key_hash, 5, now);
    const flushing = recorder.flush();
    await new Promise((r) => setImmediate(r));
    expect(inner.get(record.key_hash)!.usage_count).toBe(5);
    expect(recorder.live(inner.get(record.key_hash)!, now).usage_count).toBe(5);
    recorder.record(record.key_hash, 1, now);
    expect(recorder.live(inner.get(record.key_hash)!, now).usage_count).toBe(6);
    release();
    await flushing;
    expect(recorder.live(inner.get(record.key_hash)!, now).usage_count).toBe(6);
  });

  test('a lasting flush failure is reported once, and again only when it changes', async () => {
    const inner = new MemoryKeyStore();
    const { record } = await inner.create({ owner: 'a' });
    let problem = 'disk full';
    const store: KeyStore = Object.assign(Object.create(inner) as KeyStore, {
      applyUsage: async () => {
        throw new Error(problem);
      },
    });
    const errors: Error[] = [];
    const recorder = new UsageRecorder(store, 1000, (e) => errors.push(e));
    for (let i = 0; i < 3; i++) {
      recorder.record(record.key_hash, 1, Date.now());
      await expect(recorder.flush()).rejects.toThrow('disk full');
    }
    expect(errors).toHaveLength(1);
    problem = 'permission denied';
    await expect(recorder.flush()).rejects.toThrow('permission denied');
    expect(errors).toHaveLength(2);
    expect(recorder.unflushedUnits).toBe(3);
  });

  test('requests_today reads 0 on a new day before the first request of that day', async () => {
    const store = new MemoryKeyStore();
    const { record } = await store.create({ owner: 'a' });
    const recorder = new UsageRecorder(store, 1000, () => undefined);
    recorder.record(record.key_hash, 4, Date.UTC(2026, 10, 23, 10));
    await recorder.flush();
    expect(recorder.live(store.get(record.key_hash)!, Date.UTC(2026, 10, 24, 0, 0, 1)).requests_today).toBe(0);
    expect(recorder.live(store.get(record.key_hash)!, Date.UTC(2026, 10, 23, 23)).requests_today).toBe(4);
  });

  test('a flush ends under steady traffic: usage counted during it waits for the next one', async () => {
    const inner = new MemoryKeyStore();
    const { record } = await inner.create({ owner: 'a' });
    let calls = 0;
    const traffic = { recorder: undefined as UsageRecorder | undefined };
    const busy: KeyStore = Object.assign(Object.create(inner) as KeyStore, {
      applyUsage: async (deltas: UsageDelta[], batch?: UsageBatch) => {
        calls++;
        traffic.recorder!.record(record.key_hash, 1, Date.now()); // traffic keeps coming while we write
        return inner.applyUsage(deltas, batch);
      },
    });
    const recorderRef = new UsageRecorder(busy, 1000, () => undefined);
    traffic.recorder = recorderRef;
    recorderRef.record(record.key_hash, 1, Date.now());
    await recorderRef.flush();
    expect(calls).toBe(1);
    expect(recorderRef.unflushedUnits).toBe(1);
  });

  test('a flush of many keys hands their history over in slices, and counts every request exactly once meanwhile', async () => {
    const store = new MemoryKeyStore();
    const hashes: string[] = [];
    for (let i = 0; i < 3_000; i++) hashes.push((await store.create({ owner: `o${i}` })).record.key_hash);
    const history = new MemoryUsageHistory();
    const recorder = new UsageRecorder(store, 60_000, () => undefined, undefined, history);
    recorder.sliceBudgetMs = 0; // a turn of the event loop after every key
    const now = Date.now();
    const day = utcDay(now);
    for (const hash of hashes) recorder.record(hash, 1, now);
    recorder.recordRateLimited(hashes[0]!, now);
    recorder.recordRateLimited(hashes[0]!, now);
    const sampled = [hashes[0]!, hashes[1_500]!, hashes[2_999]!];
    /** Stored plus not yet written, read as the usage route reads it. */
    const seen = (hash: string) =>
      recorder.readHistory(
        () => history.read(hash, [day]),
        ([stored]) => {
          const unwritten = recorder.unwrittenHistory(hash, day);
          return [{ allowed: stored!.allowed + unwritten.allowed, rate_limited: stored!.rate_limited + unwritten.rate_limited }];
        },
      );
    const wrong: unknown[] = [];
    let turns = 0;
    let running = true;
    const tick = async (): Promise<void> => {
      turns++;
      for (const hash of sampled) {
        const [counts] = await seen(hash);
        const expected = { allowed: 1, rate_limited: hash === hashes[0] ? 2 : 0 };
        if (counts!.allowed !== expected.allowed || counts!.rate_limited !== expected.rate_limited)
          wrong.push({ turn: turns, hash, counts });
      }
      if (running) setImmediate(() => void tick());
    };
    setImmediate(() => void tick());
    await recorder.flush();
    running = false;
    expect(wrong).toEqual([]);
    expect(turns).toBeGreaterThan(1_000); // the event loop ran between keys, not once for the whole batch
    expect(await history.read(hashes[0]!, [day])).toEqual([{ allowed: 1, rate_limited: 2 }]);
    expect(await history.read(hashes[2_999]!, [day])).toEqual([{ allowed: 1, rate_limited: 0 }]);
    expect(recorder.unwrittenHistory(hashes[1_500]!, day)).toEqual({ allowed: 0, rate_limited: 0 });
  });

  test('utcDay is the UTC calendar day as YYYYMMDD', () => {
    expect(utcDay(Date.UTC(2026, 0, 1, 0, 0, 0))).toBe(20260101);
    expect(utcDay(Date.UTC(2025, 11, 31, 23, 59, 59, 999))).toBe(20251231);
    expect(utcDay(Date.UTC(2026, 1, 28, 12))).toBe(20260228);
  });
});
