/**
 * Delivery at scale through a real BillingDispatcher, outbox and providers of the kinds users
 * write: calls in parallel but never two for one customer, a ceiling of calls a second, a failing
 * customer backing off alone (Retry-After honoured), providers taking reports in batches, and the
 * local ledger written once a round.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BillingRejection, BillingRetryLater, LocalLedgerProvider, readLedger, type BillingProvider, type UsageReport } from '../../src';
import { BillingDispatcher, type DispatcherOptions } from '../../src/billing/dispatcher';
import { Outbox } from '../../src/billing/outbox';
import type { UsagePart } from '../../src/billing/windows';
import { isoMonth, sleep, tempDir } from '../helpers';

const W = 1_800_000_000; // a window start (Unix seconds, a multiple of 60)
const hash = (i: number) => i.toString(16).padStart(64, '0');

/** One part of usage in window W (or `window`): key i bills to customer `customerOf(i)`. */
function part(id: string, keys: number[], customerOf: (i: number) => string | null, window = W): UsagePart {
  return {
    id,
    by: 'p1',
    window,
    at: window + 1,
    keys: Object.fromEntries(keys.map((i) => [hash(i), [1, `dm_${i}`, `owner-${i}`, customerOf(i)]])),
  };
}

async function dispatcherWith(provider: BillingProvider, parts: UsagePart[], options: Partial<DispatcherOptions> = {}) {
  const dir = tempDir();
  const outbox = new Outbox(join(dir, 'billing-outbox.jsonl'));
  await outbox.addParts(parts);
  const errors: Error[] = [];
  const dispatcher = new BillingDispatcher(outbox, provider, {
    intervalMs: 60_000,
    deadLetterPath: join(dir, 'billing-dead-letter.jsonl'),
    onError: (e) => errors.push(e),
    windowSeconds: 60,
    closeAfterMs: 0,
    concurrency: 8,
    callsPerSecond: 1000,
    now: () => (W + 600) * 1000, // every window above has ended
    ...options,
  });
  return { dir, outbox, dispatcher, errors };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('delivery', () => {
  test('calls run in parallel up to the bound, never two for the same customer at once', async () => {
    let inFlight = 0;
    let most = 0;
    const busy = new Set<string>();
    const overlaps: string[] = [];
    const delivered: UsageReport[] = [];
    const provider: BillingProvider = {
      name: 'slow',
      async deliver(report) {
        if (busy.has(report.customer_id!)) overlaps.push(report.customer_id!);
        busy.add(report.customer_id!);
        most = Math.max(most, ++inFlight);
        await sleep(30);
        inFlight--;
        busy.delete(report.customer_id!);
        delivered.push(report);
      },
    };
    // 40 keys of 10 customers (4 keys each), in two windows: 80 reports, 8 per customer.
    const customerOf = (i: number) => `cus_${i % 10}`;
    const { outbox, dispatcher } = await dispatcherWith(provider, [
      part('b1', range(40), customerOf),
      part('b2', range(40), customerOf, W + 60),
    ]);
    await dispatcher.deliver();
    expect(delivered).toHaveLength(80);
    expect(overlaps).toEqual([]);
    expect(most).toBe(8);
    expect((await outbox.read()).pending).toEqual([]);
  });

  test('no more calls a second than the ceiling', async () => {
    const starts: number[] = [];
    const provider: BillingProvider = { name: 'instant', deliver: async () => void starts.push(performance.now()) };
    const { dispatcher } = await dispatcherWith(provider, [part('b1', range(45), (i) => `cus_${i}`)], { callsPerSecond: 20 });
    await dispatcher.deliver(); // a round delivers for 5 s at most: up to about 100 calls at 20 a second
    expect(starts).toHaveLength(45);
    for (let i = 0; i < starts.length; i++) {
      const inTheSecond = starts.filter((t) => t >= starts[i]! && t < starts[i]! + 1000).length;
      expect(inTheSecond).toBeLessThanOrEqual(21); // 20, and the bucket's 1/20 s of calls
    }
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(((45 - 2) / 20) * 1000 - 50);
  });

  test('a customer that is refused backs off alone, for its Retry-After; the others are delivered meanwhile', async () => {
    const attempts = new Map<string, number[]>();
    const delivered = new Set<string>();
    const provider: BillingProvider = {
      name: 'throttling',
      async deliver(report) {
        const customer = report.customer_id!;
        attempts.set(customer, [...(attempts.get(customer) ?? []), performance.now()]);
        if (customer === 'cus_slow' && attempts.get(customer)!.length === 1) throw new BillingRetryLater('429: too many requests', 1500);
        if (customer === 'cus_down' && attempts.get(customer)!.length <= 2) throw new Error('503');
        delivered.add(report.identifier);
      },
    };
    const customerOf = (i: number) => (i === 0 ? 'cus_slow' : i === 1 ? 'cus_down' : `cus_${i}`);
    const { outbox, dispatcher, errors } = await dispatcherWith(provider, [part('b1', range(30), customerOf)]);
    await dispatcher.deliver();
    expect(delivered.size).toBe(28); // everyone but the two failing customers, in the same round
    expect(errors.map((e) => e.message).sort()).toEqual([
      'billing provider "throttling" failed, retrying with backoff: 429: too many requests',
      'billing provider "throttling" failed, retrying with backoff: 503',
    ]);
    await dispatcher.deliver(); // too early for both
    expect(attempts.get('cus_slow')).toHaveLength(1);
    expect(attempts.get('cus_down')).toHaveLength(1);
    const waitFor = async (done: () => boolean) => {
      for (let i = 0; i < 100 && !done(); i++) {
        await sleep(100);
        await dispatcher.deliver();
      }
    };
    await waitFor(() => delivered.size === 30);
    const [slowFirst, slowSecond] = attempts.get('cus_slow')!;
    expect(slowSecond! - slowFirst!).toBeGreaterThanOrEqual(1500); // Retry-After
    const down = attempts.get('cus_down')!;
    expect(down).toHaveLength(3);
    expect(down[1]! - down[0]!).toBeGreaterThanOrEqual(500); // 0.5 s, then 1 s
    expect(down[2]! - down[1]!).toBeGreaterThanOrEqual(1000);
    expect((await outbox.read()).pending).toEqual([]);
  });

  test('deliverBatch: batches of batchSize, one outcome a report: delivered, dead-lettered or retried', async () => {
    const batches: UsageReport[][] = [];
    let retriedOnce = false;
    const provider: BillingProvider = {
      name: 'batched',
      batchSize: 10,
      deliver: () => Promise.reject(new Error('deliver() is not used when deliverBatch() is there')),
      async deliverBatch(reports) {
        batches.push(reports);
        return reports.map((r) => {
          if (r.owner === 'owner-3') return new BillingRejection('unknown account');
          if (r.owner === 'owner-4' && !retriedOnce) {
            retriedOnce = true;
            return new Error('busy');
          }
          return null;
        });
      },
    };
    const { dir, outbox, dispatcher, errors } = await dispatcherWith(provider, [part('b1', range(25), (i) => `cus_${i}`)]);
    await dispatcher.deliver();
    expect(batches.map((b) => b.length)).toEqual([10, 10, 5]);
    const [letter] = readFileSync(join(dir, 'billing-dead-letter.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(letter).toMatchObject({ reason: 'unknown account', report: { owner: 'owner-3' } });
    expect(errors.some((e) => /retrying with backoff: busy/.test(e.message))).toBe(true);
    expect((await outbox.read()).pending.map((r) => r.owner)).toEqual(['owner-4']);
    await sleep(600);
    await dispatcher.deliver();
    expect(batches.at(-1)!.map((r) => r.owner)).toEqual(['owner-4']);
    expect((await outbox.read()).pending).toEqual([]);
  });

  test('the local ledger gets one append a round, whatever the number of reports', async () => {
    const dir = tempDir();
    const calls: number[] = [];
    const ledger = new (class extends LocalLedgerProvider {
      override deliverBatch(reports: UsageReport[]) {
        calls.push(reports.length);
        return super.deliverBatch(reports);
      }
    })(dir, () => (W + 600) * 1000);
    const { dispatcher } = await dispatcherWith(ledger, [part('b1', range(2000), () => null), part('b2', range(500), () => null, W + 60)]);
    await dispatcher.deliver();
    expect(calls).toEqual([2500]);
    const entries = await readLedger(dir, [isoMonth((W + 1) * 1000)]);
    expect(entries).toHaveLength(2500);
  });
});
