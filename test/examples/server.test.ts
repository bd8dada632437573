import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, clearOfMidnight, EXAMPLE_SERVER, monthsBetween, startExampleServer, tempDir } from '../helpers';
import { readLedger } from '../../src';
import { startStripeServer } from '../billing/stripe-server';
import { cli } from '../cli/run';

describe('examples/server.ts (npm run example)', () => {
  test(
    'starts on an empty store, prints a working demo key, and flushes usage on SIGTERM',
    async () => {
      // requests_today is the server's real UTC day: both requests must fall on one.
      await clearOfMidnight(20_000);
      const started = Date.now();
      const cwd = tempDir();
      const { child, url, out, exited } = await startExampleServer(cwd);
      try {
        const key = /\b(dm_[0-9A-Za-z]{28})\b/.exec(out())![1]!;
        const hello = await fetch(`${url}/v1/hello`, { headers: { authorization: `Bearer ${key}` } });
        expect(hello.status).toBe(200);
        expect(await hello.json()).toEqual({ message: 'Hello, demo!', key: key.slice(0, 9) });
        const usage = await fetch(`${url}/v1/usage`, { headers: { 'x-api-key': key } });
        expect(((await usage.json()) as { usage_count: number }).usage_count).toBe(1); // /v1/usage is not usage
        expect((await fetch(`${url}/v1/hello`)).status).toBe(401);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
      expect(out()).toContain('usage flushed');
      const [record] = JSON.parse(readFileSync(join(cwd, 'data', 'api_keys.json'), 'utf8'));
      expect(record).toMatchObject({ owner: 'demo', usage_count: 1, requests_today: 1 });
      // Local billing is on by default: the usage ledger beside the store bills the same unit.
      const ledger = await readLedger(join(cwd, 'data'), monthsBetween(started, Date.now()));
      expect(ledger.map((e) => [e.owner, e.quantity])).toEqual([['demo', 1]]);
    },
    CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
  );

  test('a bad environment value stops it at start-up, naming the variable', async () => {
    const cwd = tempDir();
    const child = spawn(process.execPath, [EXAMPLE_SERVER], {
      cwd,
      env: { PATH: process.env.PATH, PORT: '0', API_RATE_LIMIT_PER_MINUTE: 'abc' },
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).not.toBe(0);
    expect(err).toContain('API_RATE_LIMIT_PER_MINUTE');
  });

  test('a port in use: one line on stderr naming it, and a non-zero exit', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, r));
    try {
      const port = (taken.address() as AddressInfo).port;
      const child = spawn(process.execPath, [EXAMPLE_SERVER], { cwd: tempDir(), env: { PATH: process.env.PATH, PORT: String(port) } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c))); // after the output
      expect([code, err]).toEqual([1, `port ${port} is already in use (set PORT to use another)\n`]);
      expect(out).not.toContain('listening');
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  test('BILLING_MODE=stripe: usage of a key with a Stripe customer reaches Stripe as a meter event', async () => {
    const stripe = await startStripeServer();
    const cwd = tempDir();
    try {
      const started = Date.now();
      const created = await cli(['--store', join(cwd, 'data', 'api_keys.json'), 'create', 'acme', '--stripe-customer', 'cus_Example1']);
      const key = created.stdout.trim();
      const { child, url, exited } = await startExampleServer(cwd, {
        BILLING_MODE: 'stripe',
        STRIPE_SECRET_KEY: 'sk_test_example',
        STRIPE_API_BASE: `http://127.0.0.1:${stripe.port}`,
      });
      try {
        for (let i = 0; i < 3; i++) expect((await fetch(`${url}/v1/hello`, { headers: { 'x-api-key': key } })).status).toBe(200);
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL'); // a failed assertion must not leave the server running
      }
      const events = stripe.requests.filter((r) => r.status === 200);
      expect(events.map((r) => [r.form['payload[stripe_customer_id]'], r.form['payload[value]']])).toEqual([['cus_Example1', '3']]);
      const ledger = await readLedger(join(cwd, 'data'), monthsBetween(started, Date.now()));
      expect(ledger.map((e) => e.identifier)).toEqual([events[0]!.form.identifier]);
    } finally {
      await stripe.close();
    }
  });
});
