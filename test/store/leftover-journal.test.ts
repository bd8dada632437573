import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore, StoreError, hashKey } from '../../src';
import type { UsageDelta } from '../../src';
import { journalHeader, journalLine, parseJournal } from '../../src/store/json/leftover-journal';
import { tempDir, waitFor } from '../helpers';

const delta = (key_hash: string, units: number, day = 20261125, last_used = 1795550000): UsageDelta => ({
  key_hash,
  units,
  last_used,
  days: [{ day, units }],
});

const HASHES = ['a', 'b', 'c'].map((k) => hashKey(`plain-key-${k}`));

/** A store file of three keys, one record a line, as the store writes it. */
function storeFile(): string {
  const path = join(tempDir(), 'keys.json');
  const records = HASHES.map((key_hash, i) => ({ owner: `o${i}`, created_at: 1795550000, usage_count: 10, key_hash, key_prefix: 'x' }));
  writeFileSync(path, '[\n' + records.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]\n');
  return path;
}

const open = (path: string, usageJournal?: object | false) => new JsonFileKeyStore({ path, reloadIntervalMs: 0, usageJournal });
const counts = (store: JsonFileKeyStore) => HASHES.map((h) => store.get(h)?.usage_count);
const onDisk = (path: string) => (JSON.parse(readFileSync(path, 'utf8')) as Array<{ usage_count: number }>).map((r) => r.usage_count);
const signature = (path: string) => {
  const s = statSync(path, { bigint: true });
  return `${s.ino}:${s.size}:${s.mtimeNs}`;
};
/** Appends a batch to the journal of the store file as it is now, as an earlier version's flush did. */
const appendAsEarlierVersion = (path: string, deltas: UsageDelta[]) => {
  const journalPath = `${path}.journal`;
  if (!existsSync(journalPath)) writeFileSync(journalPath, journalHeader(signature(path), 1795550000000));
  appendFileSync(journalPath, journalLine(deltas));
};

describe('parseJournal', () => {
  const header = journalHeader('1:2:3', 1795550000000);
  const line = journalLine([delta(HASHES[0]!, 2)]);

  test('reads the header and every complete line', () => {
    expect(parseJournal(header + line + line)).toEqual({ store: '1:2:3', batches: [[delta(HASHES[0]!, 2)], [delta(HASHES[0]!, 2)]] });
  });

  test.each([
    ['a last line without its newline', line.slice(0, 20)],
    ['a last line that does not parse', '{"deltas":[{"key_hash"\n'],
    ['a last line of the wrong shape', '{"deltas":[{"units":"two"}]}\n'],
  ])('ignores the torn end of an append: %s', (_, torn) => {
    expect(parseJournal(header + line + torn)).toEqual({ store: '1:2:3', batches: [[delta(HASHES[0]!, 2)]] });
  });

  test.each([
    ['no header', '', 'it has no header line'],
    ['a header that is not one', '{"store":"1:2:3"}\n', 'line 1 is not a usage journal header'],
    ['a bad line before a good one', header + 'garbage\n' + line, 'line 2 is not a batch of usage deltas'],
  ])('refuses %s', (_, text, problem) => {
    expect(parseJournal(text)).toEqual({ problem });
  });
});

describe('JsonFileKeyStore and a usage journal an earlier version left', () => {
  test('a new reader sees file + journal; the next flush rewrites the file with both and removes the journal', async () => {
    const path = storeFile();
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 2), delta(HASHES[1]!, 5)]);
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 1)]);
    const store = open(path);
    expect(counts(store)).toEqual([13, 15, 10]);
    expect(store.get(HASHES[0]!)?.requests_today).toBe(3);
    await store.applyUsage([delta(HASHES[2]!, 4)]);
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 15, 14]);
    expect(counts(store)).toEqual([13, 15, 14]);
    await store.close();
  });

  test('any other change takes it in too', async () => {
    const path = storeFile();
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 3)]);
    const store = open(path);
    await store.create({ owner: 'newcomer' });
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 10, 10, 0]);
    await store.close();
  });

  test('fold() takes it in without any other change; close() alone leaves it', async () => {
    const path = storeFile();
    appendAsEarlierVersion(path, [delta(HASHES[1]!, 2)]);
    const store = open(path);
    await store.close();
    expect(existsSync(`${path}.journal`)).toBe(true);
    const folder = open(path);
    await folder.fold();
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([10, 12, 10]);
    await folder.fold(); // nothing left: no write
    await folder.close();
  });

  test("an earlier version's appends while this one runs (a rolling upgrade) are picked up by a reload and kept by the next write", async () => {
    const path = storeFile();
    const reader = new JsonFileKeyStore({ path, reloadIntervalMs: 50 });
    await reader.init();
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 5)]);
    await waitFor(() => reader.get(HASHES[0]!)?.usage_count === 15, 2000);
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 1)]);
    await waitFor(() => reader.get(HASHES[0]!)?.usage_count === 16, 2000);
    await reader.applyUsage([delta(HASHES[0]!, 100)]);
    await reader.close();
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([116, 10, 10]);
  });

  test('the torn end of an append cut short is ignored', async () => {
    const path = storeFile();
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 2)]);
    appendFileSync(`${path}.journal`, '{"deltas":[{"key_hash":"');
    const store = open(path);
    expect(counts(store)).toEqual([12, 10, 10]);
    await store.applyUsage([delta(HASHES[0]!, 1)]);
    await store.close();
    expect(onDisk(path)).toEqual([13, 10, 10]);
  });

  test('a corrupt journal is a start-up error naming it, and neither file is written', async () => {
    const path = storeFile();
    const store = open(path);
    appendAsEarlierVersion(path, [delta(HASHES[0]!, 2)]);
    const journalPath = `${path}.journal`;
    const [header, line] = readFileSync(journalPath, 'utf8').split('\n');
    writeFileSync(journalPath, `${header}\nnot json\n${line}\n`);
    const [storeBytes, journalBytes] = [readFileSync(path), readFileSync(journalPath)];

    let error: StoreError | undefined;
    try {
      open(path);
    } catch (err) {
      error = err as StoreError;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect(error!.code).toBe('ERR_DAYMIND_STORE_CORRUPT');
    expect(error!.path).toBe(journalPath);
    expect(error!.message).toContain(journalPath);

    // The running store refuses to write onto it too.
    await expect(store.applyUsage([delta(HASHES[0]!, 1)])).rejects.toMatchObject({ code: 'ERR_DAYMIND_STORE_CORRUPT', path: journalPath });
    await expect(store.create({ owner: 'x' })).rejects.toMatchObject({ code: 'ERR_DAYMIND_STORE_CORRUPT' });
    expect(readFileSync(path)).toEqual(storeBytes);
    expect(readFileSync(journalPath)).toEqual(journalBytes);
    await store.close();
  });

  test('a journal naming another version of the file is ignored, and removed by the next write', async () => {
    const path = storeFile();
    const journalPath = `${path}.journal`;
    writeFileSync(journalPath, journalHeader('1:2:3', Date.now()) + journalLine([delta(HASHES[0]!, 50)]));
    const store = open(path);
    expect(counts(store)).toEqual([10, 10, 10]);
    await store.applyUsage([delta(HASHES[1]!, 1)]);
    expect(existsSync(journalPath)).toBe(false);
    await store.close();
    expect(onDisk(path)).toEqual([10, 11, 10]);
  });

  test('usage of keys no longer in the store is reported, not recorded', async () => {
    const path = storeFile();
    const errors: StoreError[] = [];
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0, onError: (err) => errors.push(err) });
    await store.applyUsage([delta(HASHES[0]!, 1), delta(hashKey('gone'), 9)]);
    expect(onDisk(path)).toEqual([11, 10, 10]);
    expect(errors.map((e) => e.code)).toEqual(['ERR_DAYMIND_USAGE_FLUSH']);
    await store.close();
  });
});

describe('the usageJournal option (deprecated: no effect)', () => {
  test('bad values are still refused', () => {
    const path = storeFile();
    expect(() => open(path, { minStoreBytes: -1 })).toThrow(/usageJournal.minStoreBytes/);
    expect(() => open(path, { foldAfterMs: 1.5 })).toThrow(/usageJournal.foldAfterMs/);
    // The same rules as daymindAuth()'s option (see config.test.ts), with the store's own error.
    expect(() => open(path, { every: 5 })).toThrow('usageJournal.every: is not an option of usageJournal');
    expect(() => open(path, 5 as never)).toThrow(/^usageJournal: must be false or/);
    expect(() => open(path, { minStoreBytes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_DAYMIND_INVALID_INPUT' }));
  });

  test('a valid value changes nothing: every flush rewrites the file', async () => {
    const path = storeFile();
    const store = open(path, { minStoreBytes: 0, foldAfterMs: 100 });
    await store.applyUsage([delta(HASHES[0]!, 3)]);
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 10, 10]);
    await store.close();
  });
});
