import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { daymindAuth, newWebhookSecret, type DaymindAuth } from '../../src';
import { signWebhook } from '../../src/alerts/signature';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, childEnv, clearOfMidnight, closeAll, tempDir, waitFor } from '../helpers';

const BUILT = resolve(__dirname, '../../build/examples/webhook-receiver.js');
const SECRET = newWebhookSecret();
const open: Array<{ close(): Promise<void> }> = [];
let child: ChildProcess | undefined;
afterEach(async () => {
  child?.kill('SIGTERM');
  await closeAll(open);
});

describe('examples/webhook-receiver.ts', () => {
  // The alert's period is the month of the real clock, read twice.
  beforeAll(() => clearOfMidnight(), CLEAR_OF_MIDNIGHT_TIMEOUT_MS);

  test('takes the signed alerts of a real server once each and refuses a forged one with 400', async () => {
    child = spawn(process.execPath, [BUILT], { env: childEnv({ PORT: '0', DAYMIND_WEBHOOK_SECRET: SECRET }) });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /listening on/.test(out), 15_000);
    const url = /listening on (http:\/\/localhost:\d+\/hooks)/.exec(out)![1]!;

    // The server runs on the real clock: the receiver checks the timestamp against its own.
    const auth: DaymindAuth = daymindAuth({
      env: { DAYMIND_WEBHOOK_URL: url, DAYMIND_WEBHOOK_SECRET: SECRET },
      storePath: join(tempDir(), 'api_keys.json'),
      plans: { small: { limits: [], monthly_quota: 5 } },
      billing: false,
      alertIntervalMs: 3_600_000,
      onError: () => undefined,
    });
    open.push(auth);
    const { key, record } = await auth.store.create({ owner: 'acme', plan: 'small' });
    for (let i = 0; i < 4; i++) expect((await auth.verify(key)).code).toBe('VALID');
    await auth.deliverAlerts();
    await waitFor(() => out.includes('alert '), 5000);
    expect(out.split('\n').filter((l) => l.startsWith('alert '))).toEqual([
      `alert quota.threshold owner=acme key=${record.key_prefix} threshold=80 period=${new Date().toISOString().slice(0, 7).replace('-', '')}`,
    ]);
    expect((await auth.stats()).alertsDelivered).toBe(1);

    // A forged delivery, and the same alert delivered again.
    const body = JSON.stringify({ id: 'evt_x', type: 'key.revoked', timestamp: new Date().toISOString(), data: {} });
    const stamp = Math.floor(Date.now() / 1000);
    const forged = await fetch(url, {
      method: 'POST',
      body,
      headers: {
        'webhook-id': 'evt_x',
        'webhook-timestamp': String(stamp),
        'webhook-signature': signWebhook(newWebhookSecret(), 'evt_x', stamp, body),
      },
    });
    expect(forged.status).toBe(400);
    expect(await forged.json()).toEqual({ error: { code: 'invalid_webhook', message: 'no valid v1 signature' } });
    const again = await fetch(url, {
      method: 'POST',
      body,
      headers: {
        'webhook-id': 'evt_x',
        'webhook-timestamp': String(stamp),
        'webhook-signature': signWebhook(SECRET, 'evt_x', stamp, body),
      },
    });
    expect(again.status).toBe(204);
    const twice = await fetch(url, {
      method: 'POST',
      body,
      headers: {
        'webhook-id': 'evt_x',
        'webhook-timestamp': String(stamp),
        'webhook-signature': signWebhook(SECRET, 'evt_x', stamp, body),
      },
    });
    expect(twice.status).toBe(204);
    expect(out.split('\n').filter((l) => l.startsWith('alert key.revoked'))).toHaveLength(1);
  });
});
