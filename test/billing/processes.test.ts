/**
 * Billing with real server processes (test/fixtures/billing-worker.js, the built library) and
 * the Stripe-like server: latency, 429s past its ceiling and for concurrent calls of a customer,
 * 5xx bursts, restarts, SIGKILL, several processes on one store and ledger directory. Each
 * customer's meter total must equal the requests its keys were allowed, and no identifier may
 * reach Stripe twice with different values.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { JsonFileKeyStore, readLedger } from '../../src';
import { Outbox } from '../../src/billing/outbox';
import { childEnv, monthsBetween, sleep, tempDir, waitFor } from '../helpers';
import { startStripeServer, type StripeRequest } from './stripe-server';

const WORKER = join(__dirname, '..', 'fixtures', 'billing-worker.js');

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

/** `count` keys in a new store, key i billing to customer `cus_<i % customers>`. */
async function keysIn(dir: string, count: number, customers: number): Promise<Array<{ key: string; customer: string }>> {
  const store = new JsonFileKeyStore({ path: join(dir, 'api_keys.json') });
  const keys = [];
  for (let i = 0; i < count; i++) {
    const customer = `cus_Test${i % customers}`;
    keys.push({ key: (await store.create({ owner: `owner-${i}`, stripe_customer_id: customer })).key, customer });
  }
  await store.close();
  return keys;
}

/**
 * Every key sends `perSecond` requests a second for `seconds`, to the workers in turn; adds the
 * allowed ones (200) to `allowed`, per customer.
 */
async function traffic(
  workers: () => Worker[],
  keys: Array<{ key: string; customer: string }>,
  perSecond: number,
  seconds: number,
  allowed: Map<string, number>,
): Promise<void> {
  const end = Date.now() + seconds * 1000;
  let turn = 0;
  await Promise.all(
    keys.map(async ({ key, customer }, i) => {
      await sleep((i * 1000) / perSecond / keys.length);
      while (Date.now() < end) {
        const targets = workers();
        const res = await fetch(targets[turn++ % targets.length]!.url, { headers: { 'x-api-key': key } }).catch(() => undefined);
        if (res) await res.arrayBuffer();
        if (res?.status === 200) allowed.set(customer, (allowed.get(customer) ?? 0) + 1);
        await sleep(1000 / perSecond);
      }
    }),
  );
}

/** Waits until the outbox holds nothing: every window closed, every report settled. */
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

/** Identifiers that reached the server with more than one value or customer. */
function conflicting(requests: StripeRequest[]): string[] {
  const seen = new Map<string, string>();
  const bad = new Set<string>();
  for (const r of requests) {
    const what = `${r.form['payload[stripe_customer_id]']}:${r.form['payload[value]']}`;
    const id = r.form.identifier!;
    if (seen.has(id) && seen.get(id) !== what) bad.add(id);
    seen.set(id, what);
  }
  return [...bad];
}

const sorted = (m: Map<string, number>) => [...m.entries()].sort();

describe('billing with real processes and a Stripe-like server', () => {
  test('latency, 429s, 5xx bursts and a restart in the middle: every customer billed exactly its allowed requests', async () => {
    const stripe = await startStripeServer({ latencyMs: 20, maxCallsPerSecond: 30, retryAfterSeconds: 1 });
    try {
      const dir = tempDir();
      const started = Date.now();
      const keys = await keysIn(dir, 24, 8); // three keys per customer: their calls must take turns
      const job = {
        storePath: join(dir, 'api_keys.json'),
        ledgerDir: dir,
        stripeApiBase: `http://127.0.0.1:${stripe.port}`,
        billingMaxCallsPerSecond: 60,
      };
      const allowed = new Map<string, number>();
      let current = await startWorker(job);
      setTimeout(() => stripe.failNext(...Array(15).fill(500)), 1500);
      await traffic(() => [current], keys, 5, 3, allowed);
      await stop(current); // a restart in the middle
      current = await startWorker(job);
      setTimeout(() => stripe.failNext(...Array(10).fill(503)), 1000);
      await traffic(() => [current], keys, 5, 3, allowed);
      await drained(dir);
      await stop(current);

      expect(conflicting(stripe.requests)).toEqual([]);
      expect(sorted(stripe.totals())).toEqual(sorted(allowed));
      expect(new Set(stripe.events.map((e) => e.identifier)).size).toBe(stripe.events.length);
      const statuses = new Set(stripe.requests.map((r) => r.status));
      expect([statuses.has(429), statuses.has(500), statuses.has(503)]).toEqual([true, true, true]);
      const ledger = await readLedger(dir, monthsBetween(started, Date.now()));
      const billed = new Map<string, number>();
      for (const e of ledger) billed.set(e.customer_id!, (billed.get(e.customer_id!) ?? 0) + e.quantity);
      expect(sorted(billed)).toEqual(sorted(allowed));
    } finally {
      await stripe.close();
    }
  }, 60_000);

  test('a process SIGKILLed after Stripe recorded an event and before its outbox did: the restart sends the same identifier and value, counted once', async () => {
    let armed = false;
    let victim: Worker | undefined;
    let killed: string | undefined;
    const stripe = await startStripeServer({
      latencyMs: 10,
      onAccept: async (event) => {
        if (!armed || killed || !victim) return;
        killed = event.identifier;
        victim.child.kill('SIGKILL'); // Stripe has the event; the process never hears of it
        await victim.exited;
      },
    });
    try {
      const dir = tempDir();
      const keys = await keysIn(dir, 6, 3);
      const job = { storePath: join(dir, 'api_keys.json'), ledgerDir: dir, stripeApiBase: `http://127.0.0.1:${stripe.port}` };
      const allowed = new Map<string, number>();
      victim = await startWorker(job);
      await traffic(() => [victim!], keys, 5, 2, allowed);
      await sleep(300); // every count flushed and in the outbox
      armed = true;
      await waitFor(() => killed !== undefined, 10_000);
      await victim.exited;
      expect(victim.child.signalCode).toBe('SIGKILL');

      const after = await startWorker(job);
      await drained(dir);
      await stop(after);
      const sends = stripe.requests.filter((r) => r.form.identifier === killed);
      expect(sends.length).toBeGreaterThanOrEqual(2);
      expect(sends.filter((r) => r.status === 200 && !r.replay)).toHaveLength(1);
      expect(conflicting(stripe.requests)).toEqual([]);
      expect(sorted(stripe.totals())).toEqual(sorted(allowed));
    } finally {
      await stripe.close();
    }
  }, 60_000);

  test('three processes on one store and ledger directory, one SIGKILLed with its windows open: its usage is billed by the others, exactly', async () => {
    const stripe = await startStripeServer({ latencyMs: 20, maxCallsPerSecond: 40, retryAfterSeconds: 1 });
    try {
      const dir = tempDir();
      const keys = await keysIn(dir, 18, 6);
      const job = {
        storePath: join(dir, 'api_keys.json'),
        ledgerDir: dir,
        stripeApiBase: `http://127.0.0.1:${stripe.port}`,
        billingWindow: '2s',
      };
      const workers = await Promise.all([startWorker(job), startWorker(job), startWorker(job)]);
      const allowed = new Map<string, number>();
      let targets: Worker[] = workers;
      const first = traffic(() => targets, keys, 6, 4, allowed);
      await sleep(2000);
      targets = workers.slice(0, 2); // the third gets no more requests, then is killed
      await sleep(300);
      workers[2]!.child.kill('SIGKILL');
      await first;
      await drained(dir);
      await Promise.all(workers.slice(0, 2).map(stop));

      expect(conflicting(stripe.requests)).toEqual([]);
      expect(sorted(stripe.totals())).toEqual(sorted(allowed));
      expect(new Set(stripe.events.map((e) => e.identifier)).size).toBe(stripe.events.length);
    } finally {
      await stripe.close();
    }
  }, 60_000);
});
