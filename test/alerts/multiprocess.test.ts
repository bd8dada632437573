import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { daymindAuth, newWebhookSecret } from '../../src';
import { childEnv, closeAll, tempDir, TEST_NOW } from '../helpers';
import { startReceiver, tally } from './receiver';

const SECRET = newWebhookSecret();
const WORKER = join(__dirname, '../fixtures/alerts-worker.js');
const PLANS = { small: { limits: [], monthly_quota: 20 } };
const open: Array<{ close(): Promise<void> }> = [];
afterEach(() => closeAll(open));

/** Runs the worker to its end; its output line parsed. */
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

async function storeWithKey(): Promise<{ storePath: string; key: string }> {
  const storePath = join(tempDir(), 'api_keys.json');
  const admin = daymindAuth({ env: {}, storePath, billing: false, plans: PLANS });
  const { key } = await admin.store.create({ owner: 'acme', plan: 'small' });
  await admin.close();
  return { storePath, key };
}

describe('alerts with several processes on one store', () => {
  test('two processes crossing the quota together: one webhook per threshold, claimed by one of them', async () => {
    const receiver = await startReceiver(SECRET, () => TEST_NOW);
    open.push(receiver);
    const { storePath, key } = await storeWithKey();
    const job = { storePath, key, requests: 12, plans: PLANS, webhook: receiver.url, secret: SECRET, nowMs: TEST_NOW };
    const [a, b] = await Promise.all([run(job), run(job)]);
    expect((a.statuses['200'] ?? 0) + (b.statuses['200'] ?? 0)).toBeGreaterThanOrEqual(20);
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
    expect(a.emitted + b.emitted).toBe(2);
    expect(receiver.bad).toEqual([]);
  });

  test('a process killed between the crossing and the delivery: the next one delivers, once', async () => {
    const receiver = await startReceiver(SECRET, () => TEST_NOW);
    open.push(receiver);
    receiver.failing = true;
    const { storePath, key } = await storeWithKey();
    const job = { storePath, key, plans: PLANS, webhook: receiver.url, secret: SECRET, nowMs: TEST_NOW };
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
    expect(receiver.refused).toBeGreaterThanOrEqual(1);
    expect(receiver.taken).toEqual([]);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    receiver.failing = false;
    const next = await run({ ...job, requests: 0 });
    expect(next.emitted).toBe(0);
    expect(tally(receiver.taken)).toEqual({ 'quota.threshold:80': 1, 'quota.threshold:100': 1 });
    expect(receiver.bad).toEqual([]);
  });
});
