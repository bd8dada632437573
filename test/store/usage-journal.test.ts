import { appendFileSync, closeSync, existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore, StoreError, hashKey } from '../../src';
import type { UsageDelta } from '../../src';
import { JournalMismatch, appendAt, journalHeader, journalLine, journalLineInSlices, parseJournal } from '../../src/store/usage-journal';
import { WorkSlicer } from '../../src/store/slicer';
import * as fileIo from '../../src/store/file-io';
import { everyTurn, tempDir, waitFor } from '../helpers';

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

const ALWAYS = { minStoreBytes: 0, foldAfterMs: 60_000 };
const open = (path: string, usageJournal: object | false = ALWAYS) => new JsonFileKeyStore({ path, reloadIntervalMs: 0, usageJournal });
const counts = (store: JsonFileKeyStore) => HASHES.map((h) => store.get(h)?.usage_count);
const onDisk = (path: string) => (JSON.parse(readFileSync(path, 'utf8')) as Array<{ usage_count: number }>).map((r) => r.usage_count);
const signature = (path: string) => {
  const s = statSync(path, { bigint: true });
  return `${s.ino}:${s.size}:${s.mtimeNs}`;
};

describe('parseJournal', () => {
  const header = journalHeader('1:2:3', 1795550000000);
  const line = journalLine([delta(HASHES[0]!, 2)]);

  test('reads the header and every complete line, and where the next line goes', () => {
    const text = header + line + line;
    expect(parseJournal(Buffer.from(text))).toEqual({
      store: '1:2:3',
      createdMs: 1795550000000,
      batches: [[delta(HASHES[0]!, 2)], [delta(HASHES[0]!, 2)]],
      length: Buffer.byteLength(text),
    });
  });

  test.each([
    ['a last line without its newline', line.slice(0, 20)],
    ['a last line that does not parse', '{"deltas":[{"key_hash"\n'],
    ['a last line of the wrong shape', '{"deltas":[{"units":"two"}]}\n'],
  ])('ignores the torn end of an append: %s', (_, torn) => {
    const content = parseJournal(Buffer.from(header + line + torn));
    expect(content.batches).toHaveLength(1);
    expect(content.length).toBe(Buffer.byteLength(header + line));
  });

  test.each([
    ['no header', ''],
    ['a header that is not one', '{"store":"1:2:3"}\n'],
    ['a bad line before a good one', header + 'garbage\n' + line],
  ])('refuses %s', (_, text) => {
    expect(() => parseJournal(Buffer.from(text))).toThrow(/header|line 2/);
  });
});

describe('JsonFileKeyStore usage journal', () => {
  test('a usage flush appends a line and leaves the store file alone; a new reader sees file + journal', async () => {
    const path = storeFile();
    const before = readFileSync(path);
    const store = open(path);
    await store.applyUsage([delta(HASHES[0]!, 2), delta(HASHES[1]!, 5)]);
    await store.applyUsage([delta(HASHES[0]!, 1)]);
    expect(readFileSync(path)).toEqual(before);
    expect(counts(store)).toEqual([13, 15, 10]);

    const journal = parseJournal(readFileSync(`${path}.journal`));
    expect(journal.store).toBe(signature(path));
    expect(journal.batches).toEqual([[delta(HASHES[0]!, 2), delta(HASHES[1]!, 5)], [delta(HASHES[0]!, 1)]]);

    const reader = open(path);
    expect(counts(reader)).toEqual([13, 15, 10]);
    expect(reader.get(HASHES[0]!)?.requests_today).toBe(3);
    await reader.close();
    await store.close();
  });

  test('close() folds the journal into the file and removes it', async () => {
    const path = storeFile();
    const store = open(path);
    await store.applyUsage([delta(HASHES[2]!, 4)]);
    expect(existsSync(`${path}.journal`)).toBe(true);
    await store.close();
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([10, 10, 14]);
  });

  test('any other change rewrites the file with the journal folded in', async () => {
    const path = storeFile();
    const store = open(path);
    await store.applyUsage([delta(HASHES[0]!, 3)]);
    await store.create({ owner: 'newcomer' });
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 10, 10, 0]);
    await store.close();
  });

  test('a store file under minStoreBytes is rewritten by every flush (the default for small stores)', async () => {
    const path = storeFile();
    const store = open(path, {});
    await store.applyUsage([delta(HASHES[0]!, 3)]);
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 10, 10]);
    await store.close();
  });

  test('a journal due is folded by the reload timer, without a close', async () => {
    const path = storeFile();
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 50, usageJournal: { minStoreBytes: 0, foldAfterMs: 200 } });
    await store.init();
    await store.applyUsage([delta(HASHES[1]!, 7)]);
    expect(existsSync(`${path}.journal`)).toBe(true);
    await waitFor(() => !existsSync(`${path}.journal`), 3000);
    expect(onDisk(path)).toEqual([10, 17, 10]);
    await store.close();
  });

  test("another store's appends are picked up by a reload", async () => {
    const path = storeFile();
    const reader = new JsonFileKeyStore({ path, reloadIntervalMs: 50, usageJournal: ALWAYS });
    await reader.init();
    const writer = open(path);
    await writer.applyUsage([delta(HASHES[0]!, 5)]);
    await waitFor(() => reader.get(HASHES[0]!)?.usage_count === 15, 2000);
    await writer.applyUsage([delta(HASHES[0]!, 1)]);
    await waitFor(() => reader.get(HASHES[0]!)?.usage_count === 16, 2000);
    // The reader's own flush goes on top of the writer's lines.
    await reader.applyUsage([delta(HASHES[0]!, 100)]);
    expect(parseJournal(readFileSync(`${path}.journal`)).batches).toHaveLength(3);
    await writer.close();
    await reader.close();
    expect(onDisk(path)).toEqual([116, 10, 10]);
  });

  test('the torn end of an append cut short is ignored, then cut off by the next append', async () => {
    const path = storeFile();
    const store = open(path);
    await store.applyUsage([delta(HASHES[0]!, 2)]);
    // Not closed (a closed store folds): the process dies here, with the end of an append half written.
    appendFileSync(`${path}.journal`, '{"deltas":[{"key_hash":"');
    const next = open(path);
    expect(counts(next)).toEqual([12, 10, 10]);
    await next.applyUsage([delta(HASHES[0]!, 1)]);
    const text = readFileSync(`${path}.journal`, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toContain('{"deltas":[{"key_hash":"{');
    expect(parseJournal(Buffer.from(text)).batches).toEqual([[delta(HASHES[0]!, 2)], [delta(HASHES[0]!, 1)]]);
    expect(counts(open(path))).toEqual([13, 10, 10]);
    await next.close();
    expect(onDisk(path)).toEqual([13, 10, 10]);
  });

  test('a corrupt journal is a start-up error naming it, and neither file is written', async () => {
    const path = storeFile();
    const store = open(path);
    await store.applyUsage([delta(HASHES[0]!, 2)]);
    const journalPath = `${path}.journal`;
    const text = readFileSync(journalPath, 'utf8');
    const [header, line] = text.split('\n');
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
  });

  test('a journal naming another version of the file is ignored, and replaced by the next append', async () => {
    const path = storeFile();
    const journalPath = `${path}.journal`;
    writeFileSync(journalPath, journalHeader('1:2:3', Date.now()) + journalLine([delta(HASHES[0]!, 50)]));
    const store = open(path);
    expect(counts(store)).toEqual([10, 10, 10]);
    await store.applyUsage([delta(HASHES[1]!, 1)]);
    const journal = parseJournal(readFileSync(journalPath));
    expect(journal.store).toBe(signature(path));
    expect(journal.batches).toEqual([[delta(HASHES[1]!, 1)]]);
    await store.close();
    expect(onDisk(path)).toEqual([10, 11, 10]);
  });

  test('usage of keys no longer in the store is not journaled', async () => {
    const path = storeFile();
    const errors: StoreError[] = [];
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0, usageJournal: ALWAYS, onError: (err) => errors.push(err) });
    await store.applyUsage([delta(HASHES[0]!, 1), delta(hashKey('gone'), 9)]);
    expect(parseJournal(readFileSync(`${path}.journal`)).batches).toEqual([[delta(HASHES[0]!, 1)]]);
    expect(errors.map((e) => e.code)).toEqual(['ERR_DAYMIND_USAGE_FLUSH']);
    await store.close();
  });

  test('bad journal options are refused', () => {
    const path = storeFile();
    expect(() => open(path, { minStoreBytes: -1 })).toThrow(/usageJournal.minStoreBytes/);
    expect(() => open(path, { foldAfterMs: 1.5 })).toThrow(/usageJournal.foldAfterMs/);
    // The same rules as daymindAuth()'s option (see config.test.ts), with the store's own error.
    expect(() => open(path, { every: 5 })).toThrow('usageJournal.every: is not an option of usageJournal');
    expect(() => open(path, 5 as never)).toThrow(/^usageJournal: must be false or/);
    expect(() => open(path, { minStoreBytes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_DAYMIND_INVALID_INPUT' }));
  });

  test('an option given as undefined takes its default (as daymindAuth() lets it through)', async () => {
    const path = storeFile();
    const store = open(path, { minStoreBytes: undefined, foldAfterMs: 100 });
    await store.applyUsage([delta(HASHES[0]!, 3)]);
    // The default threshold (1 MiB) applies: this small file is rewritten, not journaled.
    expect(existsSync(`${path}.journal`)).toBe(false);
    expect(onDisk(path)).toEqual([13, 10, 10]);
    await store.close();
  });
});

describe('journalLineInSlices', () => {
  test('gives the same line as journalLine, with turns of the event loop between deltas', async () => {
    const deltas = Array.from({ length: 50 }, (_, i) => ({ ...delta(hashKey(`k${i}`), i + 1), ...(i % 7 === 0 ? { credits: i } : {}) }));
    const { seen, result } = await everyTurn(
      () => 1,
      () => journalLineInSlices(deltas, new WorkSlicer(0)),
    );
    expect(result).toBe(journalLine(deltas));
    expect(seen.length).toBeGreaterThan(deltas.length / 2);
  });
});

describe('JsonFileKeyStore usage journal, new lines only', () => {
  test('parseJournal from a known length parses only the later lines, and still checks the earlier ones', () => {
    const first = journalHeader('1:2:3', 5) + journalLine([delta(HASHES[0]!, 1)]);
    const text = first + journalLine([delta(HASHES[1]!, 2)]);
    const from = Buffer.byteLength(first);
    expect(parseJournal(Buffer.from(text), from)).toMatchObject({ batches: [[delta(HASHES[1]!, 2)]], length: Buffer.byteLength(text) });
    const damaged = journalHeader('1:2:3', 5) + 'x'.repeat(from - Buffer.byteLength(journalHeader('1:2:3', 5)) - 1) + '\n';
    expect(() => parseJournal(Buffer.from(damaged + journalLine([delta(HASHES[1]!, 2)])), from)).toThrow(/line 2/);
  });

  /** A store of 20,000 keys, so that a re-read of the whole file takes thousands of turns with a slice budget of 0. */
  function largeStore(): { path: string; hashes: string[] } {
    const path = join(tempDir(), 'keys.json');
    const hashes = Array.from({ length: 20_000 }, (_, i) => hashKey(`plain-key-${i}`));
    const records = hashes.map((key_hash, i) => ({ owner: `o${i}`, created_at: 1795550000, usage_count: 0, key_hash, key_prefix: 'x' }));
    writeFileSync(path, '[\n' + records.map((r) => '  ' + JSON.stringify(r)).join(',\n') + '\n]\n');
    return { path, hashes };
  }

  test("a reload takes another store's new journal lines without re-reading the file, and so does a write", async () => {
    const { path, hashes } = largeStore();
    const mine = open(path);
    mine.sliceBudgetMs = 0;
    const other = open(path);
    const usage = (hash: string) => mine.get(hash)?.usage_count;

    await other.applyUsage([delta(hashes[0]!, 3)]); // starts the journal
    let { seen } = await everyTurn(
      () => usage(hashes[0]!),
      () => mine.refresh(),
    );
    // A re-read of the file takes more than 20,000 turns (a step a record); the rest are waits for I/O.
    expect(seen.length).toBeLessThan(20_000);
    expect(usage(hashes[0]!)).toBe(3);

    await other.applyUsage([delta(hashes[0]!, 4), delta(hashes[1]!, 1)]); // appends to it
    ({ seen } = await everyTurn(
      () => usage(hashes[0]!),
      () => mine.refresh(),
    ));
    expect(seen.length).toBeLessThan(20_000);
    expect(seen.every((n) => n === 3 || n === 7)).toBe(true); // the line shows whole or not at all
    expect([usage(hashes[0]!), usage(hashes[1]!)]).toEqual([7, 1]);

    // A write of ours takes them in the same way, under the lock (its turns are mostly the wait for fdatasync).
    await other.applyUsage([delta(hashes[2]!, 2)]);
    await mine.applyUsage([delta(hashes[2]!, 5)]);
    expect(usage(hashes[2]!)).toBe(7);

    await other.close(); // folds: the file is new, and a reload reads it whole
    await mine.refresh();
    expect([usage(hashes[0]!), usage(hashes[1]!), usage(hashes[2]!)]).toEqual([7, 1, 7]);
    await mine.close();
  }, 30_000);

  test('two writers on one journal with fast reloads lose no count and count none twice', async () => {
    const path = storeFile();
    const a = new JsonFileKeyStore({ path, reloadIntervalMs: 1, usageJournal: ALWAYS });
    const b = new JsonFileKeyStore({ path, reloadIntervalMs: 1, usageJournal: ALWAYS });
    await a.init();
    await b.init();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      writes.push(a.applyUsage([delta(HASHES[0]!, 1)]), b.applyUsage([delta(HASHES[0]!, 1)]));
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(writes);
    await waitFor(async () => {
      await Promise.all([a.refresh(), b.refresh()]);
      return a.get(HASHES[0]!)?.usage_count === 610 && b.get(HASHES[0]!)?.usage_count === 610;
    }, 2000);
    await a.close();
    await b.close();
    expect(onDisk(path)).toEqual([610, 10, 10]);
  }, 60_000);
});

describe('JsonFileKeyStore usage journal, a fold between the reads of the file and of its journal', () => {
  /**
   * What another process's fold of `path`'s journal writes (the file with the journal folded in),
   * made on a copy, so that it can be put in place at any moment, synchronously.
   */
  async function foldedBytes(path: string): Promise<Buffer> {
    const copy = join(tempDir(), 'keys.json');
    writeFileSync(copy, readFileSync(path));
    writeFileSync(`${copy}.journal`, readFileSync(`${path}.journal`));
    // The copy's journal names the original file's version: give it the copy's.
    const content = readFileSync(`${copy}.journal`, 'utf8').split('\n');
    content[0] = journalHeader(signature(copy), 1795550000000).trimEnd();
    writeFileSync(`${copy}.journal`, content.join('\n'));
    const folder = open(copy);
    await folder.fold();
    await folder.close();
    return readFileSync(copy);
  }

  /** Replaces the file as a fold does (the new file renamed in, then the journal removed). */
  function foldNow(path: string, bytes: Buffer, newJournalLine?: string): void {
    writeFileSync(`${path}.tmp-fold`, bytes);
    renameSync(`${path}.tmp-fold`, path);
    unlinkSync(`${path}.journal`);
    if (newJournalLine) writeFileSync(`${path}.journal`, journalHeader(signature(path), Date.now()) + newJournalLine);
  }

  /** Runs `fold` just before the store's next read of the journal, through `fn` of file-io. */
  function foldBeforeNextJournalRead(fn: 'readIfAny' | 'readIfAnySync', fold: () => void): jest.SpyInstance {
    const real = fileIo[fn] as (path: string) => unknown;
    let done = false;
    return jest.spyOn(fileIo, fn).mockImplementation(((path: string) => {
      if (!done && path.endsWith('.journal')) {
        done = true;
        fold();
      }
      return real(path);
    }) as never);
  }

  afterEach(() => jest.restoreAllMocks());

  test.each([
    ['the journal is gone', undefined, 12],
    ['a new journal was begun for the new file', journalLine([delta(HASHES[0]!, 3)]), 15],
  ])('a new store reads both again (%s) and counts the usage the fold took in', async (_, newLine, expected) => {
    const path = storeFile();
    const writer = open(path);
    await writer.applyUsage([delta(HASHES[0]!, 2)]);
    const bytes = await foldedBytes(path);
    const spy = foldBeforeNextJournalRead('readIfAnySync', () => foldNow(path, bytes, newLine));
    const reader = open(path);
    expect(spy).toHaveBeenCalled();
    expect(counts(reader)).toEqual([expected, 10, 10]);
    await reader.close();
    await writer.close();
  });

  test('a reload reads both again and never shows the file without the usage the fold took in', async () => {
    const path = storeFile();
    const reader = open(path);
    const writer = open(path);
    await writer.create({ owner: 'newcomer' }); // the file is rewritten: the reader must read it whole
    await writer.applyUsage([delta(HASHES[1]!, 4)]);
    const bytes = await foldedBytes(path);
    const spy = foldBeforeNextJournalRead('readIfAny', () => foldNow(path, bytes));
    await reader.refresh();
    expect(spy).toHaveBeenCalled();
    expect(counts(reader)).toEqual([10, 14, 10]);
    expect(reader.size()).toBe(4);
    await reader.close();
    await writer.close();
  });
});

describe('appendAt', () => {
  test('writes at the end of the last complete line, cutting off a torn end', async () => {
    const path = join(tempDir(), 'j');
    writeFileSync(path, 'line one\ntorn');
    const { handle } = await appendAt(path, 9, 'line two\n');
    closeSync(handle);
    expect(readFileSync(path, 'utf8')).toBe('line one\nline two\n');
  });

  test('refuses to write past the end of a file shorter than it should be (it would leave a hole), and writes nothing', async () => {
    const path = join(tempDir(), 'j');
    writeFileSync(path, 'line one\n');
    await expect(appendAt(path, 20, 'line two\n')).rejects.toBeInstanceOf(JournalMismatch);
    expect(readFileSync(path, 'utf8')).toBe('line one\n');
  });
});
