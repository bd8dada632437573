/**
 * A real full disk (a 1 MiB tmpfs, filled to its last page) under the key store, the billing
 * outbox and the usage ledger, as docs/billing.md and docs/how-it-works.md promise it: the error
 * is reported once, naming the file; requests keep being answered; the counts are kept in memory
 * and written once there is space again; no file is trimmed, overwritten or left with half a line.
 *
 * Mounting needs root (the CI container runs as root): without it these tests fail, not skip.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daymindAuth, JsonFileKeyStore, LocalLedgerProvider, readLedger, type DaymindAuth, type DaymindOptions } from '../src';
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
    // The history of that first request is written after the store took it: wait for it too, so
    // that the disk fills while nothing but the store has something to write.
    const historyDir = join(disk, 'api_keys.history');
    await waitFor(() => existsSync(historyDir) && readdirSync(historyDir).some((f) => f.endsWith('.json')), 5000);
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
    // No temporary file left behind: a flush under way may hold one (and the lock) for a moment.
    await waitFor(() => readdirSync(disk).every((name) => !name.endsWith('.tmp')), 3000);
    const left = readdirSync(disk).filter((name) => !name.endsWith('.lock'));
    expect(left.sort()).toEqual([...files, 'filler'].sort());
    expect(await usageCount(key!)).toBe(61); // counted in memory (the /v1/usage call itself is not usage)
    expect((await auth.stats()).unflushedUnits).toBe(60); // all but the one written before the disk filled

    free();
    await waitFor(() => stored(storePath)[0] === 61, 5000);
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
        expect.stringMatching(
          new RegExp(
            `^cannot write the billing outbox ${outboxPath}: ENOSPC.*; 1 flush batch\\(es\\) of usage kept in memory until it can be written$`,
          ),
        ),
      ],
    ]);

    free();
    clock.advance(5 * 60_000); // past the billing window, and the time it waits for flushes under way
    await auth.deliverBilling(); // writes the usage kept in memory, then closes the window and delivers its reports
    const ledger = await readLedger(ledgerDir, [month]);
    expect(ledger.map((e) => [e.owner, e.quantity]).sort()).toEqual([
      ['owner-0', 5],
      ['owner-1', 5],
      ['owner-2', 5],
    ]);
    expect((await auth.stats()).billingOutboxDepth).toBe(0);
    expect(errors).toHaveLength(1);
  });

  test('under the billing files (outbox, delivery lock, ledger): reported once naming its file, the usage stays in the outbox, no line is left cut short', async () => {
    const dir = tempDir();
    const ledgerDir = smallDisk();
    const storePath = join(dir, 'api_keys.json');
    const keys = await keysIn(storePath, 30);
    // Billing windows end as this clock moves; from the start of the hour, it stays in one month.
    const local = testClock(Math.floor(clock.now() / 3_600_000) * 3_600_000);
    const { auth, errors, hello } = await serve({ storePath, ledgerDir, history: false, now: local.now });
    // Ten keys billed before the disk fills: the ledger has lines that must stay as they are.
    for (const key of keys.slice(0, 10)) expect((await hello(key)).status).toBe(200);
    await waitFor(async () => (await auth.stats()).billingOutboxDepth === 10, 5000);
    local.advance(60_000 + 2000); // past the billing window (1 min) and the time it waits for flushes under way (1.04 s)
    await auth.deliverBilling();
    const ledgerPath = join(ledgerDir, `ledger-${month}.jsonl`);
    const billedBefore = readFileSync(ledgerPath);
    // Twenty more keys' usage in the outbox, then no space: their window cannot be closed nor delivered.
    for (const key of keys.slice(10)) expect((await hello(key)).status).toBe(200);
    await waitFor(async () => (await auth.stats()).billingOutboxDepth === 20, 5000);
    const outboxBefore = readFileSync(join(ledgerDir, 'billing-outbox.jsonl'));
    const free = fill(ledgerDir);

    local.advance(60_000 + 2000);
    await auth.deliverBilling();
    await auth.deliverBilling();
    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_BILLING',
        expect.stringMatching(new RegExp(`^billing delivery round failed: .*${ledgerDir}/billing-outbox.jsonl.*ENOSPC`)),
      ],
    ]);
    expect((await hello(keys[0]!)).status).toBe(200);
    await auth.flush(); // its usage is kept in memory: the outbox cannot take it
    const whileFull = readFileSync(ledgerPath);
    expect(whileFull).toEqual(billedBefore); // nothing trimmed, overwritten or half-written
    expect(readFileSync(join(ledgerDir, 'billing-outbox.jsonl')).subarray(0, outboxBefore.length)).toEqual(outboxBefore);
    await waitFor(async () => (await auth.stats()).billingOutboxDepth === 21, 5000);

    free();
    await waitFor(async () => {
      local.advance(60_000 + 2000); // the window of the request above ends too
      await auth.deliverBilling();
      return (await auth.stats()).billingOutboxDepth === 0;
    }, 5000);
    const damaged: number[] = [];
    const lines = await readJsonl(ledgerPath, (line) => damaged.push(line));
    expect(damaged).toEqual([]);
    const ledger = await readLedger(ledgerDir, [month]);
    expect(ledger).toHaveLength(31); // every key once, keys[0] twice (two windows)
    expect(lines).toHaveLength(31);
    expect(ledger.reduce((sum, e) => sum + e.quantity, 0)).toBe(31);
  });

  test('under the usage ledger alone: every report of the batch fails with an error naming the file, the file keeps whole lines only', async () => {
    const disk = smallDisk();
    const ledger = new LocalLedgerProvider(disk, clock.now);
    const report = (i: number) => ({
      identifier: `dmu_${String(i).padStart(40, '0')}`,
      key_hash: 'a'.repeat(64),
      key_prefix: 'dm_abcdef',
      owner: 'alpha',
      customer_id: null,
      quantity: 1,
      window_start: Math.floor(clock.now() / 60_000) * 60,
      window_end: clock.now() / 1000,
    });
    expect(await ledger.deliverBatch([report(1)])).toEqual([null]);
    const path = join(disk, `ledger-${month}.jsonl`);
    const before = readFileSync(path);
    const free = fill(disk);
    const batch = Array.from({ length: 40 }, (_, i) => report(i + 2)); // more than the last page holds
    const outcomes = await ledger.deliverBatch(batch);
    expect(outcomes.map((o) => o?.message)).toEqual(
      batch.map(() => expect.stringMatching(new RegExp(`^cannot write the usage ledger ${path}: ENOSPC`))),
    );
    expect(readFileSync(path)).toEqual(before);
    free();
    expect(await ledger.deliverBatch(batch)).toEqual(batch.map(() => null));
    expect(await readLedger(disk, [month])).toHaveLength(41);
  });
});
