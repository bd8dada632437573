import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync, statSync, mkdirSync, existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore, StoreError, hashKey } from '../../src';
import type { UsageDelta } from '../../src';
import { everyTurn, tempDir, waitFor } from '../helpers';

const delta = (key_hash: string, units: number, day = 20261124, last_used = 1795550000): UsageDelta => ({
  key_hash,
  units,
  last_used,
  days: [{ day, units }],
});

function startupError(path: string): StoreError {
  try {
    new JsonFileKeyStore({ path });
  } catch (err) {
    return err as StoreError;
  }
  throw new Error('expected the store to refuse the file');
}

describe('JsonFileKeyStore', () => {
  test('creates the directory and an empty store when missing', async () => {
    const path = join(tempDir(), 'nested', 'deeper', 'keys.json');
    const store = new JsonFileKeyStore({ path });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  test('stores only the hash and display prefix of a new key, in a 0600 file', async () => {
    const path = join(tempDir(), 'keys.json');
    const store = new JsonFileKeyStore({ path });
    const { key, record } = await store.create({ owner: 'acme', rate_limit_per_minute: 10, meta: { plan: 'pro' } });
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(key);
    const [raw] = JSON.parse(text);
    expect(raw).toMatchObject({
      owner: 'acme',
      usage_count: 0,
      requests_today: 0,
      requests_day: 0,
      last_used: null,
      revoked: false,
      key_hash: hashKey(key),
      key_prefix: key.slice(0, 9),
      rate_limit_per_minute: 10,
      meta: { plan: 'pro' },
    });
    expect(raw).not.toHaveProperty('key');
    expect(record.key_hash).toBe(hashKey(key));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(store.get(hashKey(key))?.owner).toBe('acme');
  });

  test('refuses bad owners and leaves the file alone', async () => {
    const path = join(tempDir(), 'keys.json');
    const store = new JsonFileKeyStore({ path });
    const before = readFileSync(path, 'utf8');
    await expect(store.create({ owner: '' })).rejects.toThrow(/owner/);
    await expect(store.create({ owner: 'a\u0007b' })).rejects.toThrow(/control/);
    await expect(store.create({ owner: 'x', rate_limit_per_minute: 0 })).rejects.toThrow(/rate_limit_per_minute/);
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  test('usage adds to what is in the file: two writers on one file lose nothing', async () => {
    const path = join(tempDir(), 'keys.json');
    const a = new JsonFileKeyStore({ path });
    const { record } = await a.create({ owner: 'acme' });
    const b = new JsonFileKeyStore({ path });
    await Promise.all([
      a.applyUsage([delta(record.key_hash, 3)]),
      b.applyUsage([delta(record.key_hash, 4)]),
      a.applyUsage([delta(record.key_hash, 5)]),
    ]);
    const [raw] = JSON.parse(readFileSync(path, 'utf8'));
    expect(raw.usage_count).toBe(12);
    expect(raw.requests_today).toBe(12);
    expect(raw.requests_day).toBe(20261124);
    expect(raw.last_used).toBe(1795550000);
  });

  test('a new UTC day restarts requests_today; an older day only counts in usage_count', async () => {
    const path = join(tempDir(), 'keys.json');
    const store = new JsonFileKeyStore({ path });
    const { record } = await store.create({ owner: 'acme' });
    await store.applyUsage([delta(record.key_hash, 7, 20261123)]);
    await store.applyUsage([
      {
        key_hash: record.key_hash,
        units: 5,
        last_used: 1795600000,
        days: [
          { day: 20261123, units: 2 },
          { day: 20261124, units: 3 },
        ],
      },
    ]);
    await store.applyUsage([delta(record.key_hash, 1, 20261122)]);
    const [raw] = JSON.parse(readFileSync(path, 'utf8'));
    expect(raw).toMatchObject({ usage_count: 13, requests_today: 3, requests_day: 20261124, last_used: 1795600000 });
  });

  test("keeps other writers' keys, revocations and unknown fields", async () => {
    const path = join(tempDir(), 'keys.json');
    const a = new JsonFileKeyStore({ path });
    const { record } = await a.create({ owner: 'acme' });
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc[0].custom_field = { anything: [1, 2] };
    doc[0].revoked = true;
    doc.push({
      key: 'dm_legacyKeyAddedByHand00000',
      owner: 'hand',
      created_at: 1,
      usage_count: 0,
      requests_today: 0,
      requests_day: 0,
      last_used: null,
      revoked: false,
    });
    writeFileSync(path, JSON.stringify(doc));
    await a.applyUsage([delta(record.key_hash, 2)]);
    const after = JSON.parse(readFileSync(path, 'utf8'));
    expect(after).toHaveLength(2);
    expect(after[0]).toMatchObject({ custom_field: { anything: [1, 2] }, revoked: true, usage_count: 2 });
    expect(after[1].key).toBe('dm_legacyKeyAddedByHand00000');
    expect(a.get(hashKey('dm_legacyKeyAddedByHand00000'))?.owner).toBe('hand');
    expect(a.get(record.key_hash)?.revoked).toBe(true);
  });

  test.each([
    ['not JSON', '[{"owner": "a",', /not valid JSON|JSON|Unexpected|Expected/],
    ['not an array', '{"keys": []}', /not a JSON array/],
    ['a record without a key', '[{"owner": "a"}]', /record 0 has neither "key" nor "key_hash"/],
    ['a counter of the wrong type', '[{"key": "dm_x", "usage_count": "12"}]', /record 0 has a non-numeric "usage_count"/],
    ['a key that is not a string', '[{"key": 1}]', /record 0 has a non-string "key"/],
    [
      'a per-key limit of 0',
      '[{"key": "dm_x"}, {"key": "dm_y", "rate_limit_per_minute": 0}]',
      /record 1 has a "rate_limit_per_minute" that is not a whole number/,
    ],
  ])('a corrupt file (%s) is a start-up error naming it, and is left untouched', (_what, text, detail) => {
    const path = join(tempDir(), 'keys.json');
    writeFileSync(path, text);
    const err = startupError(path);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.code).toBe('ERR_DAYMIND_STORE_CORRUPT');
    expect(err.path).toBe(path);
    expect(err.message).toContain(path);
    expect(err.message).toMatch(detail);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  test('an unreadable path is a start-up error naming it', () => {
    const path = join(tempDir(), 'keys.json');
    mkdirSync(path);
    const err = startupError(path);
    expect(err.code).toBe('ERR_DAYMIND_STORE_UNREADABLE');
    expect(err.message).toContain(path);
  });

  test('corrupted while running: serves the last good state, reports once, never overwrites, loses no usage', async () => {
    const path = join(tempDir(), 'keys.json');
    const errors: StoreError[] = [];
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 20, onError: (e) => errors.push(e) });
    await store.init();
    const { record } = await store.create({ owner: 'acme' });
    const good = readFileSync(path, 'utf8');
    const broken = good.slice(0, good.length / 2);
    writeFileSync(path, broken);
    await waitFor(() => errors.length > 0, 2000);
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('ERR_DAYMIND_STORE_CORRUPT');
    expect(errors[0]!.message).toContain(path);
    expect(store.get(record.key_hash)?.owner).toBe('acme');

    await expect(store.applyUsage([delta(record.key_hash, 4)])).rejects.toMatchObject({ code: 'ERR_DAYMIND_STORE_CORRUPT' });
    await expect(store.create({ owner: 'other' })).rejects.toMatchObject({ code: 'ERR_DAYMIND_STORE_CORRUPT' });
    expect(readFileSync(path, 'utf8')).toBe(broken);

    writeFileSync(path, good);
    await store.applyUsage([delta(record.key_hash, 4)]);
    expect(JSON.parse(readFileSync(path, 'utf8'))[0].usage_count).toBe(4);
    await store.close();
  });

  test('two writers on one file with fast reloads lose no count (a reload racing a write)', async () => {
    const path = join(tempDir(), 'keys.json');
    const a = new JsonFileKeyStore({ path, reloadIntervalMs: 1 });
    const b = new JsonFileKeyStore({ path, reloadIntervalMs: 1 });
    await a.init();
    await b.init();
    const { record } = await a.create({ owner: 'acme' });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      writes.push(a.applyUsage([delta(record.key_hash, 1)]), b.applyUsage([delta(record.key_hash, 1)]));
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(writes);
    await a.close();
    await b.close();
    expect(JSON.parse(readFileSync(path, 'utf8'))[0].usage_count).toBe(600);
  }, 60_000);

  test('a write of many keys shows all of them at once when applied, and the same records from then on', async () => {
    const path = join(tempDir(), 'keys.json');
    const keys = Array.from({ length: 20_000 }, (_, i) => `plain-key-${i}`);
    const now = 1795550000;
    writeFileSync(path, JSON.stringify(keys.map((key, i) => ({ key, owner: `o${i}`, created_at: now, usage_count: 0 }))));
    const store = new JsonFileKeyStore({ path });
    const hashes = keys.map((key) => hashKey(key));
    const counted = () => hashes.filter((hash) => store.get(hash)?.usage_count === 1).length;
    let atApply = -1;
    const during: number[] = [];
    let writing = true;
    const write = store.applyUsage(
      hashes.map((hash) => delta(hash, 1)),
      { batchId: 'b1', onApplied: () => ((atApply = counted()), void sample()) },
    );
    // From the moment the batch is applied, every turn of the event loop sees all of it.
    const sample = (): void => {
      during.push(counted());
      if (writing) setImmediate(sample);
    };
    await write;
    writing = false;
    expect(atApply).toBe(20_000);
    expect(during.every((n) => n === 20_000)).toBe(true);
    expect(counted()).toBe(20_000);
    expect(store.size()).toBe(20_000);
    expect((await store.list()).filter((r) => r.usage_count === 1)).toHaveLength(20_000);
    await store.close();
  }, 30_000);

  test('picks up changes by others on its own within a second', async () => {
    const path = join(tempDir(), 'keys.json');
    const store = new JsonFileKeyStore({ path });
    await store.init();
    const other = new JsonFileKeyStore({ path });
    const { record } = await other.create({ owner: 'late' });
    const elapsed = await waitFor(() => store.get(record.key_hash) !== undefined, 1000, 10);
    expect(elapsed).toBeLessThan(1000);
    await other.revoke(record.key_hash);
    await waitFor(() => store.get(record.key_hash)?.revoked === true, 1000, 10);
    await store.close();
    expect(lstatSync(path + '.lock', { throwIfNoEntry: false })).toBeUndefined(); // the lock, a symbolic link
  });
});

describe('JsonFileKeyStore, when another process rewrote a large store', () => {
  const KEYS = 10_000;
  const run = promisify(execFile);

  /** A store of KEYS keys as the store writes it (one record a line), and a sample of their hashes. */
  function largeStore(): { path: string; sample: string[] } {
    const path = join(tempDir(), 'keys.json');
    const hashes = Array.from({ length: KEYS }, (_, i) => hashKey(`plain-key-${i}`));
    const records = hashes.map((key_hash, i) => ({ owner: `o${i}`, created_at: 1795550000, usage_count: 0, key_hash, key_prefix: 'x' }));
    writeFileSync(path, '[\n' + records.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]\n');
    return { path, sample: hashes.filter((_, i) => i % 400 === 0 || i === KEYS - 1) };
  }

  test('a reload takes its file in whole: no turn of the event loop sees half of it', async () => {
    const { path, sample } = largeStore();
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
    const counted = () => sample.filter((hash) => store.get(hash)?.usage_count === 3).length;
    await run(process.execPath, [join(__dirname, '..', 'fixtures', 'store-usage.js'), path, '3']);
    const { seen } = await everyTurn(counted, () => store.refresh());
    expect(seen.every((n) => n === 0 || n === sample.length)).toBe(true);
    expect(counted()).toBe(sample.length);
    expect(store.size()).toBe(KEYS);
    await store.close();
  }, 30_000);

  test("a write re-reads it first, and keeps the other process's counts", async () => {
    const { path, sample } = largeStore();
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
    await run(process.execPath, [join(__dirname, '..', 'fixtures', 'store-usage.js'), path, '3']);
    const total = () => sample.reduce((sum, hash) => sum + (store.get(hash)?.usage_count ?? 0), 0);
    // Until the write installs, the old state (0 each); then the other's 3 each, plus our 2.
    const { seen } = await everyTurn(total, () => store.applyUsage([delta(sample[0]!, 2)]));
    expect(seen.every((n) => n === 0 || n === 3 * sample.length || n === 3 * sample.length + 2)).toBe(true);
    expect(total()).toBe(3 * sample.length + 2);
    // Written to the file itself (no journal beside it).
    expect(existsSync(`${path}.journal`)).toBe(false);
    await store.close();
    const onDisk = JSON.parse(readFileSync(path, 'utf8')) as Array<{ key_hash: string; usage_count: number }>;
    expect(onDisk.filter((r) => r.usage_count === 3)).toHaveLength(KEYS - 1);
    expect(onDisk.find((r) => r.key_hash === sample[0])?.usage_count).toBe(5);
  }, 30_000);
});
