import { existsSync, lstatSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore } from '../../src/store/json/json-file-store';
import { MACHINE } from '../../src/internal/fs/owner';
import { ABANDONED_MS } from '../../src/internal/fs/temp-files';
import { FileUsageHistory, historyDirFor } from '../../src/usage/history-file';
import { CLI, cli } from '../cli/run';
import { TEST_NOW, tempDir, waitFor } from '../helpers';
import { fixture, freezeWhen, killNow, startNode, storeOfKeys, tempFilesOf, type Child } from './children';

// What writers killed (SIGKILL) or frozen (SIGSTOP) in the middle of an atomic write leave behind:
// their temporary file, a whole copy of the file written, and their lock. Real CLI processes on a
// store large enough for a kill to land inside its write.

/** 20,000 keys, about 4.7 MB: the write of a `create` takes long enough to be caught. */
const KEYS = 20_000;

/**
 * A `daymind-keys create OWNER` SIGKILLed while its temporary file is there: mid-write. Returns
 * its pid, and how many earlier tries finished their write before the kill (each added its key).
 */
async function createKilledMidWrite(path: string, owner: string): Promise<{ pid: number; finished: number }> {
  const dir = join(path, '..');
  for (let finished = 0; finished < 3; finished++) {
    const writer = startNode(CLI, ['--store', path, 'create', owner]);
    await waitFor(() => tempFilesOf(dir, writer.pid).length > 0 || writer.process.exitCode !== null, 30_000, 1);
    await killNow(writer);
    if (tempFilesOf(dir, writer.pid).length > 0) return { pid: writer.pid, finished };
  }
  throw new Error('three creates in a row finished before they could be killed mid-write');
}

/** Whether the store at `path` has a lock (a symbolic link, which existsSync would follow). */
const lockThere = (path: string): boolean => lstatSync(`${path}.lock`, { throwIfNoEntry: false }) !== undefined;

async function count(path: string): Promise<number> {
  const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0, create: false });
  await store.close();
  return store.size();
}

describe('a writer killed mid-write (SIGKILL)', () => {
  test('leaves its temporary file (a copy of the store) and its lock: the next start-up removes the file, the next write takes the lock at once', async () => {
    const dir = tempDir();
    const path = join(dir, 'api_keys.json');
    storeOfKeys(path, KEYS);
    const { pid, finished } = await createKilledMidWrite(path, 'killed');
    expect(tempFilesOf(dir, pid)).toHaveLength(1);
    expect(lockThere(path)).toBe(true);

    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
    expect(tempFilesOf(dir)).toEqual([]);
    const started = Date.now();
    await store.create({ owner: 'next' });
    const elapsed = Date.now() - started;
    await store.close();
    // Measured: about 0.3 s, the lock included (the whole store re-read and rewritten). It was
    // 10-11 s before: the lock of a killed holder was only taken over once stale.
    expect(elapsed).toBeLessThan(5_000);
    expect(lockThere(path)).toBe(false);
    expect(await count(path)).toBe(KEYS + finished + 1);
  });

  test('again and again: no copy piles up, every next write goes through at once, and no key is lost or doubled', async () => {
    const dir = tempDir();
    const path = join(dir, 'api_keys.json');
    storeOfKeys(path, KEYS);
    const kills = 6;
    let finished = 0;
    for (let i = 0; i < kills; i++) {
      finished += (await createKilledMidWrite(path, `killed ${i}`)).finished;
      expect(tempFilesOf(dir)).toHaveLength(1);
      const started = Date.now();
      const next = await cli(['--store', path, 'create', `next ${i}`]);
      expect(next.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000); // the whole CLI run, start to exit
      expect(tempFilesOf(dir)).toEqual([]);
    }
    expect(await count(path)).toBe(KEYS + finished + kills);
  }, 120_000);
});

describe('a writer frozen mid-write (SIGSTOP) is alive', () => {
  test('its temporary file stays through start-ups and other writes; continued, it finds its lock taken, writes again, and both keys are kept', async () => {
    const dir = tempDir();
    const path = join(dir, 'api_keys.json');
    storeOfKeys(path, KEYS);
    const frozen: Child = startNode(CLI, ['--store', path, 'create', 'frozen']);
    await freezeWhen(frozen, () => tempFilesOf(dir, frozen.pid).length > 0);
    const itsTemp = tempFilesOf(dir, frozen.pid);

    await new JsonFileKeyStore({ path, reloadIntervalMs: 0 }).close();
    expect(tempFilesOf(dir)).toEqual(itsTemp);

    // Another writer takes the lock once the frozen holder's lease has run out (2-3.5 s).
    const started = Date.now();
    const other = await cli(['--store', path, 'create', 'other']);
    expect(other.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(tempFilesOf(dir)).toEqual(itsTemp);

    frozen.process.kill('SIGCONT');
    expect(await frozen.exited).toBe(0);
    expect(frozen.err()).toMatch(/lost the lock .*api_keys\.json\.lock: not refreshed for 1500 ms .*; nothing was written, writing again/);
    expect(frozen.out()).toMatch(/^dm_\w+\n/);
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0, create: false });
    const owners = (await store.list()).map((r) => r.owner);
    await store.close();
    expect(owners.filter((o) => o === 'frozen' || o === 'other').sort()).toEqual(['frozen', 'other']);
    expect(owners).toHaveLength(KEYS + 2);
    expect(tempFilesOf(dir)).toEqual([]);
    expect(lockThere(path)).toBe(false);
  }, 60_000);
});

describe('temporary files whose writer cannot be checked', () => {
  test(`(another machine's, or named as earlier versions named them) are removed under the file's lock, or once ${ABANDONED_MS / 60_000} minutes old`, async () => {
    const dir = tempDir();
    const path = join(dir, 'api_keys.json');
    await new JsonFileKeyStore({ path, reloadIntervalMs: 0 }).close();
    const other = '0123456789ab';
    expect(other).not.toBe(MACHINE);
    const names = {
      fresh: [`.api_keys.json.${other}.4242.00000001.tmp`, '.api_keys.json.4242.00000002.tmp'],
      old: [`.api_keys.json.${other}.4242.00000003.tmp`, '.api_keys.json.4242.00000004.tmp', `.notes.json.${other}.7.00000005.tmp`],
      otherFile: [`.notes.json.${other}.7.00000006.tmp`],
      notOurs: ['.notes.json.4242.00000007.tmp', '.api_keys.json.bak', 'notes.tmp'],
    };
    for (const name of Object.values(names).flat()) writeFileSync(join(dir, name), 'x');
    const longAgo = (Date.now() - ABANDONED_MS - 60_000) / 1000;
    for (const name of names.old) utimesSync(join(dir, name), longAgo, longAgo);
    const present = (): string[] =>
      readdirSync(dir)
        .filter((n) => n !== 'api_keys.json')
        .sort();

    // Start-up: no lock, so only the abandoned ones.
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
    expect(present()).toEqual([...names.fresh, ...names.otherFile, ...names.notOurs].sort());
    // A write: under the store's lock, nobody else is writing the store.
    await store.create({ owner: 'someone' });
    await store.close();
    expect(present()).toEqual([...names.otherFile, ...names.notOurs].sort());
  });
});

describe('other files written atomically', () => {
  test("a dead writer's temporary file of a past day's usage history is removed by the next history write", async () => {
    const dir = historyDirFor(join(tempDir(), 'api_keys.json'));
    mkdirSync(dir);
    const history = new FileUsageHistory({ dir, now: () => TEST_NOW });
    const yesterday = history.pathOf(20260614);
    const dead = startNode(fixture('leave-temp.js'), [yesterday]);
    expect(await dead.exited).toBe(null); // killed
    const left = dead.out().trim();
    expect(existsSync(left)).toBe(true);
    await history.add([{ key_hash: 'a'.repeat(64), day: 20260615, allowed: 1, rate_limited: 0 }]);
    expect(existsSync(left)).toBe(false);
    expect(readdirSync(dir)).toEqual(['2026-06-15.json']);
  });
});
