/**
 * "A biller that is slow or down does not slow down or fail a single request" (docs/billing.md,
 * README): requests on a real server, timed while a BillingProvider's deliver() hangs, and while
 * it fails at once, against the same requests with billing off.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { daymindAuth, JsonFileKeyStore, type BillingProvider, type DaymindAuth, type UsageReport } from '../../src';
import { appWith, closeAll, tempDir, testClock, waitFor } from '../helpers';

const open: DaymindAuth[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await closeAll(open);
});

/** A provider whose deliver() never settles until release(). */
function hangingProvider() {
  const calls: UsageReport[] = [];
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const provider: BillingProvider = {
    name: 'hanging',
    deliver: (report) => {
      calls.push(report);
      return released;
    },
  };
  return { provider, calls, release };
}

/**
 * `count` requests of one key, one after the other, on a real server: each one's time in ms,
 * sorted. With billing, a delivery round is under way first: usage flushed, the clock moved past
 * its billing window, a round started and deliver() called (`delivering` says when it was).
 */
async function timedRequests(
  billing: BillingProvider | false,
  count: number,
  delivering: () => boolean = () => true,
): Promise<{ ms: number[]; auth: DaymindAuth }> {
  const clock = testClock();
  const dir = tempDir();
  const storePath = join(dir, 'api_keys.json');
  const seed = new JsonFileKeyStore({ path: storePath });
  const { key } = await seed.create({ owner: 'acme' });
  await seed.close();
  const auth = daymindAuth({
    env: {},
    storePath,
    billing,
    flushIntervalMs: 10,
    billingIntervalMs: 10, // a delivery round every 10 ms: each one meets the provider as it is
    rateLimitPerMinute: 100_000,
    ipRateLimitPerMinute: false,
    onError: () => undefined,
    now: clock.now,
  });
  open.push(auth);
  await auth.ready;
  const server = appWith(auth).listen(0);
  servers.push(server);
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/hello`;
  expect((await fetch(url, { headers: { 'x-api-key': key } })).status).toBe(200);
  await auth.flush();
  clock.advance(86_400_000); // past the billing window of that usage, whatever its length
  void auth.deliverBilling();
  await waitFor(delivering, 5000);
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await fetch(url, { headers: { 'x-api-key': key } });
    await res.arrayBuffer();
    ms.push(performance.now() - started);
    expect(res.status).toBe(200);
  }
  return { ms: ms.sort((a, b) => a - b), auth };
}

const at = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const summary = (sorted: number[]): string => `median ${at(sorted, 0.5).toFixed(2)} ms, p95 ${at(sorted, 0.95).toFixed(2)} ms`;

describe('a billing provider that is slow or down', () => {
  test('requests are as fast while deliver() hangs, and while it fails, as with billing off', async () => {
    const count = 300;
    const off = await timedRequests(false, count);

    const hanging = hangingProvider();
    const whileHanging = await timedRequests(hanging.provider, count, () => hanging.calls.length > 0);
    expect(hanging.calls).toHaveLength(1); // the round still waits for it: no other report was offered
    expect((await whileHanging.auth.stats()).billingOutboxDepth).toBeGreaterThanOrEqual(1);

    let failures = 0;
    const down: BillingProvider = {
      name: 'down',
      deliver: () => {
        failures++;
        return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:9'));
      },
    };
    const whileDown = await timedRequests(down, count, () => failures > 0);

    console.log(
      `${count} requests each: billing off ${summary(off.ms)}; deliver() hanging ${summary(whileHanging.ms)}; ` +
        `deliver() failing ${summary(whileDown.ms)}`,
    );
    // Within a few milliseconds of billing off: the provider is never waited for on a request.
    for (const run of [whileHanging.ms, whileDown.ms]) {
      expect(at(run, 0.5)).toBeLessThan(at(off.ms, 0.5) + 5);
      expect(at(run, 0.95)).toBeLessThan(at(off.ms, 0.95) + 20);
    }
    hanging.release(); // lets close() end its last round at once
  });
});
