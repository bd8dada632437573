import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { childEnv, tempDir, waitFor } from '../helpers';

const built = (name: string) => resolve(__dirname, `../../build/examples/${name}.js`);

async function run(
  name: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; out: () => string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [built(name)], { cwd: tempDir(), env: childEnv({ PORT: '0', ...env }) });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitFor(() => ready.test(out), 10_000);
  return {
    child,
    out: () => out,
    stop: () =>
      new Promise((r) => {
        child.once('exit', (code) => r(code));
        child.kill('SIGTERM');
      }),
  };
}

const urlOf = (out: string) => /listening on (http:\/\/localhost:\d+)/.exec(out)![1]!;
const get = (url: string, key: string) => fetch(url, { headers: { authorization: `Bearer ${key}` } });

describe('examples', () => {
  test('plans.ts: the plan in key metadata sets the per-minute limit', async () => {
    const app = await run('plans', {}, /pro key .*dm_\w+/);
    try {
      const url = urlOf(app.out());
      const free = /free key \(5\/min\): (dm_\w+)/.exec(app.out())![1]!;
      const pro = /pro key {2}\(50\/min\): (dm_\w+)/.exec(app.out())![1]!;
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await get(`${url}/v1/hello`, free)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      const res = await get(`${url}/v1/hello`, pro);
      expect(await res.json()).toEqual({ owner: 'pro-customer', plan: 'pro' });
      expect(res.headers.get('ratelimit-policy')).toContain('"key";q=50;w=60');
    } finally {
      expect(await app.stop()).toBe(0);
    }
  });

  test('from-express-rate-limit.ts: skip, a custom handler and the legacy fields, as the limiter it replaces had them', async () => {
    const app = await run('from-express-rate-limit', { IP_RATE_LIMIT_PER_MINUTE: 'off' }, /demo key: dm_\w+/);
    try {
      const url = urlOf(app.out());
      const key = /demo key: (dm_\w{28})/.exec(app.out())![1]!;
      const health = await fetch(`${url}/health`);
      expect([health.status, health.headers.get('ratelimit'), health.headers.get('x-ratelimit-limit')]).toEqual([200, null, null]);
      const started = Math.floor(Date.now() / 1000);
      const first = await get(`${url}/v1/hello`, key);
      expect(await first.json()).toEqual({ hello: 'migrated-co' });
      expect(first.headers.get('x-ratelimit-limit')).toBe('5');
      expect(first.headers.get('x-ratelimit-remaining')).toBe('4');
      const reset = Number(first.headers.get('x-ratelimit-reset'));
      expect(reset).toBeGreaterThanOrEqual(started + 59);
      expect(reset).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 60);
      expect(first.headers.get('ratelimit')).toMatch(/^"key";r=4;t=(59|60)$/);
      for (let i = 0; i < 4; i++) await get(`${url}/v1/hello`, key);
      const refused = await get(`${url}/v1/hello`, key);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toEqual({ message: 'Slow down, please.' });
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect([refused.headers.get('x-ratelimit-remaining'), refused.headers.get('cache-control')]).toEqual(['0', 'no-store']);
      const noKey = await fetch(`${url}/v1/hello`);
      expect([
        noKey.status,
        noKey.headers.get('www-authenticate'),
        ((await noKey.json()) as { error: { code: string } }).error.code,
      ]).toEqual([401, 'Bearer', 'missing_api_key']);
    } finally {
      expect(await app.stop()).toBe(0);
    }
  });

  test('custom-store.ts: a Map with a TTL serves keys until they expire', async () => {
    const app = await run('custom-store', { KEY_TTL_SECONDS: '2' }, /trial key.*dm_\w+/);
    try {
      const url = urlOf(app.out());
      const key = /(dm_\w{28})/.exec(app.out())![1]!;
      expect((await get(`${url}/v1/hello`, key)).status).toBe(200);
      const usage = await (await get(`${url}/v1/usage`, key)).json();
      expect(usage).toMatchObject({ owner: 'trial', usage_count: 1 }); // the hello; /v1/usage is not usage
      await waitFor(async () => (await get(`${url}/v1/hello`, key)).status === 401, 5000, 200);
    } finally {
      expect(await app.stop()).toBe(0);
    }
  });

  test('custom-billing.ts: usage reports reach the webhook once each', async () => {
    const received: Array<{ identifier: string; quantity: number; owner: string }> = [];
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    try {
      const port = (hook.address() as { port: number }).port;
      const app = await run('custom-billing', { WEBHOOK_URL: `http://127.0.0.1:${port}/usage` }, /demo key: dm_\w+/);
      const url = urlOf(app.out());
      const key = /demo key: (dm_\w+)/.exec(app.out())![1]!;
      for (let i = 0; i < 4; i++) expect((await get(`${url}/v1/hello`, key)).status).toBe(200);
      expect(await app.stop()).toBe(0);
      expect(received.map((r) => [r.owner, r.quantity])).toEqual([['webhook-demo', 4]]);
      expect(received[0]!.identifier).toMatch(/^dmu_[0-9a-f]{40}$/);
    } finally {
      await new Promise((r) => hook.close(r));
    }
  });
});
