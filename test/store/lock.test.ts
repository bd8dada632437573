import { lutimesSync, mkdirSync, readlinkSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import * as lockfile from 'proper-lockfile';
import { JsonFileKeyStore } from '../../src/store/json/json-file-store';
import { FOREIGN_STALE_MS, STALE_MS, acquireLock } from '../../src/internal/fs/lock';
import { sleep, tempDir, waitFor } from '../helpers';
import { fixture, freezeWhen, killNow, startNode, storeOfKeys, tempFilesOf, type Child } from './children';

// The lock of a file (`<file>.lock`, src/internal/fs/lock.ts) against real processes that die
// (SIGKILL) or freeze (SIGSTOP) while holding it.

/** A child holding the lock on `path` (hold-lock.js), once it says so. */
async function holder(path: string): Promise<Child> {
  const child = startNode(fixture('hold-lock.js'), [path]);
  await waitFor(() => child.out().includes('locked') || child.process.exitCode !== null, 10_000);
  if (!child.out().includes('locked')) throw new Error(`hold-lock.js did not take the lock: ${child.err()}`);
  return child;
}

/** The holder a lock names: its target is `<pid>@<machine>.<token>`. */
const owner = (lockPath: string): { pid: number; machine: string } => {
  const [, pid, machine] = /^(\d+)@(\w+)\./.exec(readlinkSync(lockPath))!;
  return { pid: Number(pid), machine: machine! };
};

describe('a lock whose holder died', () => {
  test('is taken at the next try when the holder ran on this machine (its pid is gone), where it took over 10 s', async () => {
    const path = join(tempDir(), 'api_keys.json');
    const child = await holder(path);
    expect(owner(`${path}.lock`).pid).toBe(child.pid);
    await killNow(child);
    const started = Date.now();
    const lock = await acquireLock(path);
    const elapsed = Date.now() - started;
    await lock.release();
    // Measured: a few ms. The old lock (proper-lockfile, stale after 10 s) took 10-11 s here.
    expect(elapsed).toBeLessThan(2_000);
  });

  test("holds billing back no longer: the delivery round's one try takes a killed holder's delivery lock", async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl.deliver');
    const child = await holder(path);
    // While the holder lives, a round's one try (no wait) leaves the delivery to it.
    await expect(acquireLock(path, 0)).rejects.toThrow(/held by process \d+ on this machine/);
    await killNow(child);
    // The old delivery lock held billing back for 30 s after such a kill.
    const lock = await acquireLock(path, 0);
    expect(lock.held()).toBe(true);
    await lock.release();
  });

  test(`is taken ${STALE_MS / 1000}-${STALE_MS / 1000 + 1} s after its last refresh when its pid cannot be checked (another machine), not before`, async () => {
    const path = join(tempDir(), 'api_keys.json');
    // A lock as a process of another machine (or container) leaves it: refreshed just now.
    symlinkSync('1@0123456789ab.00000000', `${path}.lock`);
    const stamp = Math.ceil(Date.now() / 1000);
    lutimesSync(`${path}.lock`, stamp, stamp);
    await expect(acquireLock(path, STALE_MS - 500)).rejects.toThrow(/api_keys\.json\.lock is held by process 1 on another machine/);
    const lock = await acquireLock(path);
    const elapsed = Date.now() - stamp * 1000;
    await lock.release();
    expect(elapsed).toBeGreaterThanOrEqual(STALE_MS);
    expect(elapsed).toBeLessThan(STALE_MS + 3_000);
  });
});

describe('a live holder', () => {
  test(`keeps its lock however long it holds it (it refreshes it): not taken over after ${STALE_MS / 1000} s`, async () => {
    const path = join(tempDir(), 'api_keys.json');
    const child = await holder(path);
    await expect(acquireLock(path, STALE_MS + 2_000)).rejects.toThrow(new RegExp(`held by process ${child.pid} on this machine$`));
    expect(owner(`${path}.lock`).pid).toBe(child.pid);
  });
});

describe("a holder frozen past the lock's lease (SIGSTOP, then SIGCONT)", () => {
  test('loses the lock to the next writer within seconds', async () => {
    const path = join(tempDir(), 'api_keys.json');
    const child = await holder(path);
    child.process.kill('SIGSTOP');
    const started = Date.now();
    const lock = await acquireLock(path);
    const elapsed = Date.now() - started;
    expect(owner(`${path}.lock`).pid).toBe(process.pid);
    // Continued, the old holder finds its lock gone and leaves the new one alone.
    child.process.kill('SIGCONT');
    await sleep(1_000);
    expect(lock.held()).toBe(true);
    expect(owner(`${path}.lock`).pid).toBe(process.pid);
    await lock.release();
    // The stop came at most one refresh after the holder's last: taken over 2-3.5 s later.
    expect(elapsed).toBeLessThan(5_000);
  });

  test('two live writers never hold it together: increments from five processes add up exactly, one of them frozen mid-write until the others went on', async () => {
    const dir = tempDir();
    const path = join(dir, 'api_keys.json');
    const keyHash = storeOfKeys(path, 2_000); // about 450 KB: a write takes some ms, and is rewritten whole
    const count = (): number => {
      const reader = new JsonFileKeyStore({ path, reloadIntervalMs: 0, create: false });
      const n = reader.get(keyHash)!.usage_count;
      void reader.close();
      return n;
    };
    const each = 40;
    // Frozen between its temporary file and the rename: with the lock, mid-write.
    const frozen = startNode(fixture('store-increments.js'), [path, keyHash, String(each)]);
    await freezeWhen(frozen, () => tempFilesOf(dir, frozen.pid).length > 0);
    const frozenAt = Date.now();
    const atStop = count();
    const others = Array.from({ length: 4 }, () => startNode(fixture('store-increments.js'), [path, keyHash, String(each)]));
    // The others go on: they took the lock over from the frozen writer (its lease ran out).
    await waitFor(() => count() > atStop, 30_000, 50);
    const tookOver = Date.now() - frozenAt;
    frozen.process.kill('SIGCONT');
    const codes = await Promise.all([frozen, ...others].map((w) => w.exited));
    expect(codes).toEqual([0, 0, 0, 0, 0]);
    // Nothing lost, nothing twice: continued, the frozen writer did not rename its file over the
    // others' writes; it found its lock lost, read the file again and wrote its unit onto it.
    expect(count()).toBe(5 * each);
    expect(frozen.err()).toMatch(/lost the lock .*api_keys\.json\.lock: not refreshed for 1500 ms .*; nothing was written, writing again/);
    expect(tempFilesOf(dir)).toEqual([]);
    // Measured: 3-4 s, the others' start included; a frozen holder kept the old lock 10-11 s.
    expect(tookOver).toBeLessThan(8_000);
  }, 120_000);
});

describe('a lock directory of another program (proper-lockfile on the same path)', () => {
  test('is waited for while it is refreshed, and taken over once stale as proper-lockfile would', async () => {
    const path = join(tempDir(), 'api_keys.json');
    const release = await lockfile.lock(path, { realpath: false });
    await expect(acquireLock(path, 300)).rejects.toThrow(/held by another program \(a lock directory\)/);
    await release();
    const lock = await acquireLock(path);
    // proper-lockfile waits for our lock file in turn.
    await expect(lockfile.lock(path, { realpath: false })).rejects.toThrow(/already being held/);
    await lock.release();

    // One left by a killed program: stale after FOREIGN_STALE_MS without refresh.
    mkdirSync(`${path}.lock`);
    const old = (Date.now() - FOREIGN_STALE_MS - 1_000) / 1000;
    utimesSync(`${path}.lock`, old, old);
    const started = Date.now();
    await (await acquireLock(path)).release();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
