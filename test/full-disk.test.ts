/**
 * A real full disk (a 1 MiB tmpfs, filled to its last page) under the key store, the billing
 * outbox and the usage ledger, as docs/billing.md and docs/how-it-works.md promise it: the error
 * is reported once, naming the file; requests keep being answered; the counts are kept in memory
 * and written once there is space again; no file is trimmed, overwritten or left with half a line.
 *
 * Mounting needs root (the CI container runs as root): without it these tests fail, not skip.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daymindAuth, JsonFileKeyStore, readLedger, type DaymindAuth, type DaymindOptions } from '../src';
import { readJsonl } from '../src/billing/jsonl';
import { appWith, closeAll, isoMonth, tempDir, testClock, waitFor } from './helpers';

const mounts: string[] = [];
/** A new 1 MiB tmpfs, unmounted and removed after the file (not under tempDir(), whose clean-up runs first). */
function smallDisk(): string {
  const dir = mkdtempSync(join(tmpdir(), 'daymind-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Fills the file system of `dir` to its last page with a file; returns a function that removes it. */
function fill(dir: string): () => void {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const page = Buffer.alloc(4096, 120);
  try {
    for (;;) writeSync(fd, page);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return () => unlinkSync(path);
}

const clock = testClock();
const month = isoMonth(clock.now());
const open: Array<{ close(): Promise<void> }> = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await closeAll(open);
});
afterAll(() => {
  for (const dir of mounts.splice(0)) {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  }
});

/** daymindAuth on a real HTTP server, with its onError collected; flushes every 20 ms. */
async function serve(options: DaymindOptions) {
  const errors: Error[] = [];
  const auth: DaymindAuth = daymindAuth({
    env: {},
    flushIntervalMs: 20,
    billingIntervalMs: 60_000,
    ipRateLimitPerMinute: false,
    rateLimitPerMinute: 100_000,
    now: clock.now,
    onError: (err) => errors.push(err),
    ...options,
  });
  open.push(auth);
  await auth.ready;
  const server = appWith(auth).listen(0);
  servers.push(server);
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  /** A request of `key`: its status and how long it took (ms). */
  const hello = async (key: string) => {
    const started = performance.now();
    const res = await fetch(`${url}/v1/hello`, { headers: { 'x-api-key': key } });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  };
  const usageCount = async (key: string) =>
    ((await (await fetch(`${url}/v1/usage`, { headers: { 'x-api-key': key } })).json()) as { usage_count: number }).usage_count;
  return { auth, errors, hello, usageCount };
}

/** `count` keys of their own owners in a new store at `path`. */
async function keysIn(path: string, count: number): Promise<string[]> {
  const store = new JsonFileKeyStore({ path });
  const keys = [];
  for (let i = 0; i < count; i++) keys.push((await store.create({ owner: `owner-${i}` })).key);
  await store.close();
  return keys;
}

const stored = (path: string): number[] =>
  (JSON.parse(readFileSync(path, 'utf8')) as Array<{ usage_count: number }>).map((r) => r.usage_count);

describe('a full disk', () => {
  test('under the key store: reported once naming the file, requests answered, counts kept in memory and written once space is back', async () => {
    const disk = smallDisk();
    const storePath = join(disk, 'api_keys.json');
    const [key] = await keysIn(storePath, 1);
    const { auth, errors, hello, usageCount } = await serve({ storePath, billing: false });
    expect((await hello(key!)).status).toBe(200);
    await waitFor(() => stored(storePath)[0] === 1, 5000);
    const before = readFileSync(storePath);
    const files = readdirSync(disk).sort();

    const free = fill(disk);
    const answers = [];
    for (let i = 0; i < 30; i++) answers.push(await hello(key!));
    await waitFor(async () => (await auth.stats()).flushErrors >= 5, 5000); // five flushes failed
    for (let i = 0; i < 30; i++) answers.push(await hello(key!));
    expect(answers.map((a) => a.status)).toEqual(new Array(60).fill(200));

    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_USAGE_FLUSH',
        expect.stringMatching(
          new RegExp(
            `^usage flush failed, \\d+ unit\\(s\\) kept in memory for the next attempt: cannot write the key store ${storePath}: ENOSPC`,
          ),
        ),
      ],
    ]);
    expect(readFileSync(storePath)).toEqual(before); // neither trimmed nor overwritten
    const left = readdirSync(disk).filter((name) => !name.endsWith('.lock')); // the lock of a flush under way
    expect(left.sort()).toEqual([...files, 'filler'].sort()); // no temporary file left behind
    expect(await usageCount(key!)).toBe(62); // this request included: counted in memory
    expect((await auth.stats()).unflushedUnits).toBe(61); // all but the one written before the disk filled

    free();
    await waitFor(() => stored(storePath)[0] === 62, 5000);
    expect((await auth.stats()).unflushedUnits).toBe(0);
    expect(errors).toHaveLength(1);
  });

  test('under the billing outbox: reported once while the reports kept in memory grow, then written and delivered', async () => {
    const dir = tempDir();
    const ledgerDir = smallDisk();
    const storePath = join(dir, 'api_keys.json');
    const keys = await keysIn(storePath, 3);
    const outboxPath = join(ledgerDir, 'billing-outbox.jsonl');
    const { auth, errors, hello } = await serve({ storePath, ledgerDir, history: false, flushIntervalMs: 60_000 });
    const free = fill(ledgerDir);

    const depths: Array<number | null> = [];
    for (const key of keys) {
      for (let i = 0; i < 5; i++) expect((await hello(key)).status).toBe(200);
      await auth.flush(); // the store takes the usage; its report is kept in memory
      await waitFor(async () => (await auth.stats()).billingOutboxDepth! > depths.length, 5000);
      depths.push((await auth.stats()).billingOutboxDepth);
    }
    expect(depths).toEqual([1, 2, 3]);
    expect(stored(storePath)).toEqual([5, 5, 5]); // the store (on another disk) has the usage
    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_BILLING',
        expect.stringMatching(new RegExp(`^cannot write the billing outbox ${outboxPath}; 1 report\\(s\\) kept in memory: ENOSPC`)),
      ],
    ]);

    free();
    await auth.deliverBilling(); // writes the reports kept in memory, then delivers them
    const ledger = await readLedger(ledgerDir, [month]);
    expect(ledger.map((e) => [e.owner, e.quantity]).sort()).toEqual([
      ['owner-0', 5],
      ['owner-1', 5],
      ['owner-2', 5],
    ]);
    expect((await auth.stats()).billingOutboxDepth).toBe(0);
    expect(errors).toHaveLength(1);
  });

  test('under the usage ledger: reported naming the file, the reports stay in the outbox, no line is left cut short', async () => {
    const dir = tempDir();
    const ledgerDir = smallDisk();
    const storePath = join(dir, 'api_keys.json');
    const keys = await keysIn(storePath, 30);
    const { auth, errors, hello } = await serve({ storePath, ledgerDir, history: false });
    // Ten keys billed before the disk fills: the ledger has lines that must stay as they are.
    for (const key of keys.slice(0, 10)) expect((await hello(key)).status).toBe(200);
    await waitFor(async () => (await auth.stats()).billingOutboxDepth === 10, 5000);
    await auth.deliverBilling();
    const ledgerPath = join(ledgerDir, `ledger-${month}.jsonl`);
    const billedBefore = readFileSync(ledgerPath);
    // Twenty more reports in the outbox, then no space: the ledger's lines cross into a page it cannot have.
    for (const key of keys.slice(10)) expect((await hello(key)).status).toBe(200);
    await waitFor(async () => (await auth.stats()).billingOutboxDepth === 20, 5000);
    const free = fill(ledgerDir);

    await auth.deliverBilling();
    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_BILLING',
        expect.stringMatching(
          new RegExp(`^billing provider "local" failed, retrying with backoff: cannot write the usage ledger ${ledgerPath}: ENOSPC`),
        ),
      ],
    ]);
    expect((await hello(keys[0]!)).status).toBe(200);
    const whileFull = readFileSync(ledgerPath);
    expect(whileFull.subarray(0, billedBefore.length)).toEqual(billedBefore); // nothing trimmed or overwritten
    expect(whileFull.toString().endsWith('\n')).toBe(true); // whole lines only
    expect((await auth.stats()).billingOutboxDepth).toBeGreaterThan(0);

    free();
    await waitFor(async () => {
      await auth.deliverBilling(); // the failed report waits out its backoff (0.5 s)
      return (await auth.stats()).billingOutboxDepth === 0;
    }, 5000);
    const damaged: number[] = [];
    const lines = await readJsonl(ledgerPath, (line) => damaged.push(line));
    expect(damaged).toEqual([]);
    const ledger = await readLedger(ledgerDir, [month]);
    expect(ledger).toHaveLength(31); // every key once, keys[0] twice
    expect(lines.length).toBeGreaterThanOrEqual(31);
    expect(ledger.reduce((sum, e) => sum + e.quantity, 0)).toBe(31);
  });
});
