import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Redis from 'ioredis';
import { RedisKeyStore, newWebhookSecret } from '../../src';
import { childEnv, closeAll, TEST_NOW, waitFor } from '../helpers';
import { redisForFile } from '../redis/harness';
import { startReceiver, tally } from './receiver';

const testRedis = redisForFile();
const SECRET = newWebhookSecret();
const WORKER = join(__dirname, '../fixtures/alerts-worker.js');
const PLANS = { small: { limits: [], monthly_quota: 20 } };
const open: Array<{ close(): Promise<void> }> = [];
afterEach(() => closeAll(open));

function run(job: object): Promise<{ statuses: Record<string, number>; emitted: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, JSON.stringify(job)], { env: childEnv() });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

test('two processes on one Redis store crossing the quota: one webhook per threshold (SET NX claims)', async () => {
  const receiver = await startReceiver(SECRET, () => TEST_NOW);
  open.push(receiver);
  const prefix = 'alerts2p';
  const client = new Redis(testRedis.server.url);
  const store = new RedisKeyStore({ client, prefix, pollIntervalMs: 0 });
  await store.init();
  const { key } = await store.create({ owner: 'acme', plan: 'small' });
  await store.close();
  const job = {
    redis: testRedis.server.url,
    prefix,
    key,
    requests: 12,
    plans: PLANS,
    webhook: receiver.url,
    secret: SECRET,
    nowMs: TEST_NOW,
  };
  const [a, b] = await Promise.all([run(job), run(job)]);
  expect((a.statuses['200'] ?? 0) + (b.statuses['200'] ?? 0)).toBe(20);
  expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
  expect(a.emitted + b.emitted).toBe(2);
  expect(receiver.bad).toEqual([]);
  // Both claims are in Redis under the store's prefix, and the outbox is empty once delivered.
  expect((await client.keys(`{${prefix}}:alerts:claim:*`)).length).toBe(2);
  expect(await client.hlen(`{${prefix}}:alerts:outbox`)).toBe(0);
  await client.quit();
});

test('a process killed between the crossing and the delivery on Redis: the next one delivers, once', async () => {
  const receiver = await startReceiver(SECRET, () => TEST_NOW);
  open.push(receiver);
  receiver.failing = true;
  const prefix = 'alertskill';
  const client = new Redis(testRedis.server.url);
  const store = new RedisKeyStore({ client, prefix, pollIntervalMs: 0 });
  await store.init();
  const { key } = await store.create({ owner: 'acme', plan: 'small' });
  await store.close();
  const job = { redis: testRedis.server.url, prefix, key, plans: PLANS, webhook: receiver.url, secret: SECRET, nowMs: TEST_NOW };
  const child = spawn(process.execPath, [WORKER, JSON.stringify({ ...job, requests: 20, hang: true })], { env: childEnv() });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out);
    });
    child.on('exit', (code) => reject(new Error(`worker exited ${code}`)));
  });
  expect(JSON.parse(line)).toMatchObject({ statuses: { '200': 20 }, emitted: 2 });
  expect(receiver.taken).toEqual([]);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  expect(await client.hlen(`{${prefix}}:alerts:outbox`)).toBe(2);
  receiver.failing = false;
  // No delivery lease is left (one left by a process killed while delivering lapses within 10 s).
  await waitFor(async () => (await client.exists(`{${prefix}}:alerts:delivering`)) === 0, 15_000, 200);
  const next = await run({ ...job, requests: 0 });
  expect(next.emitted).toBe(0);
  expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
  expect(await client.hlen(`{${prefix}}:alerts:outbox`)).toBe(0);
  await client.quit();
}, 60_000);
