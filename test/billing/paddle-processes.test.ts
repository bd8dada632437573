/**
 * Paddle billing with real server processes (test/fixtures/paddle-worker.js, the built library)
 * and the Paddle-like server: 5xx answers (before and after the charge was made), 429s past its
 * ceiling, a restart, and a process SIGKILLed after Paddle made a charge and before the process
 * recorded it. Each subscription's charges must equal the requests its keys were allowed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore, readLedger } from '../../src';
import { Outbox } from '../../src/billing/outbox';
import { childEnv, monthsBetween, sleep, tempDir, waitFor } from '../helpers';
import { startPaddleServer, type PaddleServerCharge } from './paddle-server';

const WORKER = join(__dirname, '..', 'fixtures', 'paddle-worker.js');
const PRICE = `pri_${'01usage'.padEnd(26, '0')}`;
const subscription = (i: number) => `sub_${`01sub${i}`.padEnd(26, '0')}`;

interface Worker {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stderr: () => string;
}

const running: Worker[] = [];
afterEach(() => {
  for (const w of running.splice(0)) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
});

async function startWorker(job: Record<string, unknown>): Promise<Worker> {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(job)], { env: childEnv() });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const worker = { child, url: '', exited, stderr: () => err };
  running.push(worker);
  await waitFor(() => out.includes('\n') || child.exitCode !== null, 10_000);
  if (child.exitCode !== null) throw new Error(`worker exited at start-up: ${err}`);
  worker.url = `http://127.0.0.1:${(JSON.parse(out.split('\n')[0]!) as { port: number }).port}/hit`;
  return worker;
}

async function stop(worker: Worker): Promise<void> {
  worker.child.kill('SIGTERM');
  expect([await worker.exited, worker.stderr().match(/close failed.*/)?.[0]]).toEqual([0, undefined]);
}

/** `count` keys in a new store, key i charged to subscription `i % subscriptions`. */
async function keysIn(dir: string, count: number, subscriptions: number): Promise<Array<{ key: string; subscription: string }>> {
  const store = new JsonFileKeyStore({ path: join(dir, 'api_keys.json') });
  const keys = [];
  for (let i = 0; i < count; i++) {
    const sub = subscription(i % subscriptions);
    keys.push({ key: (await store.create({ owner: `owner-${i}`, paddle_subscription_id: sub })).key, subscription: sub });
  }
  await store.close();
  return keys;
}

/** Every key sends `perSecond` requests a second for `seconds`; adds the allowed ones (200) per subscription. */
async function traffic(
  worker: () => Worker,
  keys: Array<{ key: string; subscription: string }>,
  perSecond: number,
  seconds: number,
  allowed: Map<string, number>,
): Promise<void> {
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    keys.map(async ({ key, subscription: sub }, i) => {
      await sleep((i * 1000) / perSecond / keys.length);
      while (Date.now() < end) {
        const res = await fetch(worker().url, { headers: { 'x-api-key': key } }).catch(() => undefined);
        if (res) await res.arrayBuffer();
        if (res?.status === 200) allowed.set(sub, (allowed.get(sub) ?? 0) + 1);
        await sleep(1000 / perSecond);
      }
    }),
  );
}

async function drained(ledgerDir: string, timeoutMs = 30_000): Promise<void> {
  const outbox = new Outbox(join(ledgerDir, 'billing-outbox.jsonl'));
  await waitFor(
    async () => {
      const { pending, parts } = await outbox.read();
      return pending.length === 0 && parts.length === 0;
    },
    timeoutMs,
    100,
  );
}

const totals = (charges: PaddleServerCharge[]) => {
  const by = new Map<string, number>();
  for (const c of charges) by.set(c.subscription, (by.get(c.subscription) ?? 0) + c.quantity);
  return [...by.entries()].sort();
};
const sorted = (m: Map<string, number>) => [...m.entries()].sort();

describe('Paddle billing with real processes and a Paddle-like server', () => {
  test('5xx answers before and after the charge, 429s past the ceiling and a restart: every subscription charged exactly its allowed requests', async () => {
    const subs = Array.from({ length: 4 }, (_, i) => subscription(i));
    const paddle = await startPaddleServer({ subscriptions: subs, maxCallsPerSecond: 15 });
    try {
      const dir = tempDir();
      const started = Date.now();
      const keys = await keysIn(dir, 12, 4); // three keys per subscription: their charges take turns
      const job = { storePath: join(dir, 'api_keys.json'), ledgerDir: dir, paddleApiBase: paddle.url, paddlePriceId: PRICE };
      const allowed = new Map<string, number>();
      let current = await startWorker(job);
      setTimeout(
        () => paddle.failNext({ status: 500 }, { status: 502, applied: true }, { status: 500, applied: true }, { status: 503 }),
        1500,
      );
      await traffic(() => current, keys, 4, 3, allowed);
      await stop(current); // a restart in the middle
      current = await startWorker(job);
      setTimeout(() => paddle.failNext({ status: 503, applied: true }, { status: 429, retryAfterSeconds: 1 }), 500);
      await traffic(() => current, keys, 4, 2, allowed);
      await drained(dir);
      await stop(current);

      expect(totals(paddle.charges)).toEqual(sorted(allowed));
      const statuses = paddle.requests.filter((r) => r.method === 'POST').map((r) => r.status);
      expect([500, 502, 503, 429].map((s) => statuses.includes(s))).toEqual([true, true, true, true]);
      const ledger = await readLedger(dir, monthsBetween(started, Date.now()));
      expect(ledger.reduce((sum, e) => sum + e.quantity, 0)).toBe([...allowed.values()].reduce((a, b) => a + b, 0));
      // One charge per report: as many charges made as reports in the ledger.
      expect(paddle.charges).toHaveLength(ledger.length);
    } finally {
      await paddle.close();
    }
  }, 60_000);

  test('a process SIGKILLed after Paddle made a charge and before it recorded it: the restart finds the charge and does not make it again', async () => {
    let armed = false;
    let victim: Worker | undefined;
    let killed: PaddleServerCharge | undefined;
    const subs = Array.from({ length: 3 }, (_, i) => subscription(i));
    const paddle = await startPaddleServer({
      subscriptions: subs,
      onCharge: async (charge) => {
        if (!armed || killed || !victim) return;
        killed = charge;
        victim.child.kill('SIGKILL'); // Paddle has the charge; the process never hears of it
        await victim.exited;
      },
    });
    try {
      const dir = tempDir();
      const keys = await keysIn(dir, 6, 3);
      const job = { storePath: join(dir, 'api_keys.json'), ledgerDir: dir, paddleApiBase: paddle.url, paddlePriceId: PRICE };
      const allowed = new Map<string, number>();
      victim = await startWorker(job);
      await traffic(() => victim!, keys, 5, 2, allowed);
      await sleep(300); // every count flushed and in the outbox
      armed = true;
      await waitFor(() => killed !== undefined, 10_000);
      await victim.exited;
      expect(victim.child.signalCode).toBe('SIGKILL');
      // The journal has the charge as being made, and nothing says it was (nor of the other calls then under way).
      const journal = readFileSync(join(dir, 'paddle-charges.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const uncertain = journal.filter((l) => l.charging && !journal.some((m) => m.charged === l.charging.report));
      const victimCharge = uncertain.filter((l) => l.charging.subscription === killed!.subscription);
      expect(victimCharge.map((l) => l.charging.quantity)).toEqual([killed!.quantity]);

      const after = await startWorker(job);
      await drained(dir);
      await stop(after);
      expect(totals(paddle.charges)).toEqual(sorted(allowed));
      // Looked up at Paddle after the restart, not sent again.
      const again = readFileSync(join(dir, 'paddle-charges.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const report = victimCharge[0].charging.report;
      expect(again.filter((l) => l.charged === report)).toHaveLength(1);
      expect(again.filter((l) => l.charging?.report === report)).toHaveLength(1);
      expect(
        paddle.charges.filter((c) => c.subscription === killed!.subscription && c.quantity === killed!.quantity).length,
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await paddle.close();
    }
  }, 60_000);
});
