import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import express from 'express';
import { Counter, Registry } from 'prom-client';
import request from 'supertest';
import {
  ConfigError,
  daymindAuth,
  generateKey,
  hashKey,
  JsonFileKeyStore,
  metricsHandler,
  type DaymindAuth,
  type DaymindOptions,
  type KeyRecord,
} from '../src';
import { appWith, childEnv, closeAll, SEED_KEYS, seedStoreCopy, startExampleServer, tempDir, testClock, waitFor } from './helpers';
import { startRedis } from './redis/harness';

const ROOT = resolve(__dirname, '..');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [, name, labelText = '', value] = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)!;
      const labels: Record<string, string> = {};
      for (const [, label, text] of labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[label!] = text!;
      return { name: name!, labels, value: Number(value) };
    });
}

/** The value of the one sample with exactly these labels (undefined when there is none). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function scrape(app: express.Express): Promise<Sample[]> {
  const res = await request(app).get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(res.text);
}

const open: DaymindAuth[] = [];
function auth(options: DaymindOptions): DaymindAuth {
  const a = daymindAuth({ env: {}, onError: () => undefined, ...options });
  open.push(a);
  return a;
}
afterEach(() => closeAll(open));

/** The seed store, with one key whose look-up fails as if the backend were down. */
class BrokenKeyStore extends JsonFileKeyStore {
  constructor(
    path: string,
    private readonly brokenHash: string,
  ) {
    super({ path });
  }
  override get(keyHash: string): KeyRecord | undefined {
    if (keyHash === this.brokenHash) throw new Error('backend down');
    return super.get(keyHash);
  }
}

/** An app with the middleware on /v1 and the metrics on /metrics, which needs no key. */
function metricsApp(a: DaymindAuth, options?: Parameters<typeof metricsHandler>[1]): express.Express {
  const app = appWith(a);
  app.get('/metrics', metricsHandler(a, options));
  return app;
}

const hello = (app: express.Express, key?: string) => {
  const req = request(app).get('/v1/hello');
  return key === undefined ? req : req.set('X-API-Key', key);
};

describe('metricsHandler()', () => {
  test('/metrics after known traffic: each outcome counter has the exact value', async () => {
    const broken = generateKey();
    const clock = testClock(Date.now()); // moved past the billing window at the end
    const a = auth({
      store: new BrokenKeyStore(seedStoreCopy(), hashKey(broken)),
      rateLimitPerMinute: 3,
      ipRateLimitPerMinute: 14,
      billingIntervalMs: 3_600_000,
      now: clock.now,
    });
    await a.ready;
    const { key: lapsed } = await a.store.create({ owner: 'lapsed', expires_at: Date.now() / 1000 - 60 });
    const app = metricsApp(a);

    const before = await scrape(app);
    expect(before.filter((s) => s.name === 'daymind_requests_total')).toHaveLength(11);
    expect(before.filter((s) => s.name === 'daymind_requests_total').every((s) => s.value === 0)).toBe(true);

    const traffic: Array<[string | undefined, number]> = [
      [SEED_KEYS.alpha, 200],
      [SEED_KEYS.alpha, 200],
      [SEED_KEYS.alpha, 200],
      [SEED_KEYS.alpha, 429], // key limit of 3
      [SEED_KEYS.alpha, 429],
      [SEED_KEYS.beta, 200],
      [undefined, 401],
      [undefined, 401],
      ['not-a-key', 401], // malformed counts as invalid
      [generateKey(), 401],
      ['dm_8fJq2LrXc0VnT4sYwPzA7kHe', 401],
      [SEED_KEYS.revoked, 401],
      [lapsed, 401],
      [broken, 503],
      [SEED_KEYS.beta, 429], // the 15th request from this IP: IP limit of 14
      [undefined, 429],
    ];
    for (const [key, status] of traffic) expect((await hello(app, key)).status).toBe(status);

    const samples = await scrape(app);
    const expected = {
      allowed: 4,
      missing_api_key: 2,
      invalid_api_key: 3,
      revoked_api_key: 1,
      expired_api_key: 1,
      ip_rate_limited: 2,
      key_rate_limited: 2,
      store_unavailable: 1,
    };
    for (const [outcome, count] of Object.entries(expected)) {
      expect([outcome, valueOf(samples, 'daymind_requests_total', { outcome })]).toEqual([outcome, count]);
      expect([outcome, valueOf(samples, 'daymind_request_duration_seconds_count', { outcome })]).toEqual([outcome, count]);
    }
    const counts = samples.filter((s) => s.name === 'daymind_request_duration_seconds_count');
    expect(counts.reduce((sum, s) => sum + s.value, 0)).toBe(traffic.length);
    expect(valueOf(samples, 'daymind_request_duration_seconds_bucket', { outcome: 'allowed', le: '+Inf' })).toBe(4);
    expect(valueOf(samples, 'daymind_keys_loaded')).toBe((await a.store.list()).length);
    expect(valueOf(samples, 'daymind_keys_loaded')).toBe(4);
    expect(valueOf(samples, 'daymind_redis_connected')).toBeUndefined(); // no Redis configured

    await a.flush();
    await waitFor(async () => valueOf(await scrape(app), 'daymind_billing_outbox_depth') === 2, 5000); // alpha and beta
    const flushed = await scrape(app);
    expect(valueOf(flushed, 'daymind_usage_flush_duration_seconds')).toBeGreaterThan(0);
    expect(valueOf(flushed, 'daymind_usage_flush_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(valueOf(flushed, 'daymind_usage_flush_age_seconds')).toBeLessThan(5);
    expect(valueOf(flushed, 'daymind_usage_flush_errors_total')).toBe(0);
    await a.deliverBilling(); // the billing window has not ended: the two reports are still to come
    expect(valueOf(await scrape(app), 'daymind_billing_outbox_depth')).toBe(2);
    clock.advance(5 * 60_000);
    await a.deliverBilling();
    expect(valueOf(await scrape(app), 'daymind_billing_outbox_depth')).toBe(0);
  });

  test('billing: reports waiting, the age of the oldest one and the size of the outbox', async () => {
    const clock = testClock(Date.now());
    const a = auth({
      store: new JsonFileKeyStore({ path: seedStoreCopy() }),
      billing: { name: 'down', deliver: () => Promise.reject(new Error('biller down')) },
      ledgerDir: tempDir(),
      billingIntervalMs: 3_600_000,
      now: clock.now,
    });
    const app = metricsApp(a);
    expect((await hello(app, SEED_KEYS.alpha)).status).toBe(200);
    expect((await hello(app, SEED_KEYS.beta)).status).toBe(200);
    await a.flush();
    await waitFor(async () => valueOf(await scrape(app), 'daymind_billing_outbox_depth') === 2, 5000);
    let samples = await scrape(app);
    expect(valueOf(samples, 'daymind_billing_oldest_pending_seconds')).toBe(0); // the window is open: no report yet
    expect(valueOf(samples, 'daymind_billing_outbox_bytes')).toBeGreaterThan(0);
    clock.advance(300_000);
    await a.deliverBilling(); // the window is closed into two reports, which the provider refuses
    samples = await scrape(app);
    expect(valueOf(samples, 'daymind_billing_outbox_depth')).toBe(2);
    expect(valueOf(samples, 'daymind_billing_oldest_pending_seconds')).toBeCloseTo(300, 0);
    expect(await a.stats()).toMatchObject({ billingOutboxDepth: 2, billingOldestPendingSeconds: expect.closeTo(300, 0) });
  });

  test('failed flushes are counted; the flush duration is NaN and the age counts from the start before the first success', async () => {
    const store = new (class extends JsonFileKeyStore {
      override applyUsage(): Promise<void> {
        return Promise.reject(new Error('disk full'));
      }
    })({ path: seedStoreCopy() });
    const a = auth({ store, billing: false, flushIntervalMs: 3_600_000 });
    const app = metricsApp(a);
    expect((await hello(app, SEED_KEYS.alpha)).status).toBe(200);
    await expect(a.flush()).rejects.toThrow(/disk full/);
    await expect(a.flush()).rejects.toThrow(/disk full/);
    const samples = await scrape(app);
    expect(valueOf(samples, 'daymind_usage_flush_errors_total')).toBe(2);
    expect(valueOf(samples, 'daymind_usage_flush_duration_seconds')).toBeNaN();
    expect(valueOf(samples, 'daymind_usage_flush_age_seconds')).toBeGreaterThan(0);
    expect(valueOf(samples, 'daymind_usage_flush_age_seconds')).toBeLessThan(5);
    expect(valueOf(samples, 'daymind_billing_outbox_depth')).toBeUndefined(); // billing off
    expect(valueOf(samples, 'daymind_billing_oldest_pending_seconds')).toBeUndefined();
    // close() flushes once more, which fails the same way: the usage is not written, and close() says so.
    open.splice(open.indexOf(a), 1);
    await expect(a.close()).rejects.toThrow(/disk full/);
  });

  test('no owner label by default; ownerLabel: true adds it', async () => {
    const plain = metricsApp(auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false }));
    await hello(plain, SEED_KEYS.alpha);
    const res = await request(plain).get('/metrics');
    expect(res.text).not.toContain('owner=');
    expect(valueOf(parse(res.text), 'daymind_requests_total', { outcome: 'allowed' })).toBe(1);

    const labelled = metricsApp(auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false }), { ownerLabel: true });
    await hello(labelled, SEED_KEYS.alpha);
    await hello(labelled, SEED_KEYS.alpha);
    await hello(labelled, SEED_KEYS.beta);
    await hello(labelled, SEED_KEYS.revoked);
    await hello(labelled);
    const samples = await scrape(labelled);
    expect(valueOf(samples, 'daymind_requests_total', { outcome: 'allowed', owner: 'team-alpha' })).toBe(2);
    expect(valueOf(samples, 'daymind_requests_total', { outcome: 'allowed', owner: 'team-beta' })).toBe(1);
    expect(valueOf(samples, 'daymind_requests_total', { outcome: 'revoked_api_key', owner: 'old-integration' })).toBe(1);
    expect(valueOf(samples, 'daymind_requests_total', { outcome: 'missing_api_key', owner: '' })).toBe(1);
    // owner="" only where no key was found: never an allowed or refused-by-key series without an owner.
    const ownerless = samples.filter((s) => s.name === 'daymind_requests_total' && s.labels.owner === '').map((s) => s.labels.outcome);
    expect(ownerless.sort()).toEqual(['invalid_api_key', 'ip_rate_limited', 'missing_api_key', 'store_unavailable']);
    // The histogram stays per outcome only.
    expect(samples.filter((s) => s.name.startsWith('daymind_request_duration') && 'owner' in s.labels)).toEqual([]);
  });

  test("a registry passed in serves the app's own metrics and ours, with default metrics on request", async () => {
    const registry = new Registry();
    const orders = new Counter({ name: 'app_orders_total', help: 'Orders taken.', registers: [registry] });
    orders.inc(3);
    const a = auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false });
    const app = metricsApp(a, { registry, collectDefaultMetrics: true });
    await hello(app, SEED_KEYS.beta);
    const samples = await scrape(app);
    expect(valueOf(samples, 'app_orders_total')).toBe(3);
    expect(valueOf(samples, 'daymind_requests_total', { outcome: 'allowed' })).toBe(1);
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
    // The app can serve the registry itself, too.
    expect(await registry.metrics()).toContain('daymind_requests_total{outcome="allowed"} 1');
  });

  test('called again for the same instance and registry it returns the same handler; conflicts are clear errors', async () => {
    const a = auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false });
    const first = metricsHandler(a);
    expect(metricsHandler(a)).toBe(first);
    const app = appWith(a);
    app.get('/metrics', first);
    await hello(app, SEED_KEYS.alpha);
    expect(valueOf(await scrape(app), 'daymind_requests_total', { outcome: 'allowed' })).toBe(1); // counted once

    const registry = new Registry();
    const shared = metricsHandler(a, { registry });
    expect(shared).not.toBe(first);
    expect(metricsHandler(a, { registry })).toBe(shared);
    expect(() => metricsHandler(a, { registry, ownerLabel: true })).toThrow(ConfigError);
    expect(() => metricsHandler(a, { registry, ownerLabel: true })).toThrow(/made with other options/);

    const b = auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false });
    expect(() => metricsHandler(b, { registry })).toThrow(/another daymindAuth\(\) instance under "daymind_"; give each its own prefix/);
    const other = metricsHandler(b, { registry, prefix: 'admin_' });
    expect(typeof other).toBe('function');
    expect(registry.getSingleMetric('admin_requests_total')).toBeDefined();

    const taken = new Registry();
    new Counter({ name: 'daymind_keys_loaded', help: 'Not ours.', registers: [taken] });
    expect(() => metricsHandler(a, { registry: taken })).toThrow(/already has metrics named daymind_keys_loaded/);
    expect(taken.getSingleMetric('daymind_requests_total')).toBeUndefined(); // nothing half-registered
  });

  test('bad options throw a ConfigError naming the option when the handler is created', () => {
    const a = auth({ store: new JsonFileKeyStore({ path: seedStoreCopy() }), billing: false });
    expect(() => metricsHandler(a, { prefix: '9lives_' })).toThrow(/^prefix: /);
    expect(() => metricsHandler(a, { buckets: [0.1, 0.05] })).toThrow(/^buckets: /);
    expect(() => metricsHandler(a, { buckets: [] })).toThrow(/^buckets: /);
    expect(() => metricsHandler(a, { ownerLabel: 'yes' as never })).toThrow(/^ownerLabel: /);
    expect(() => metricsHandler(a, { registry: {} as never })).toThrow(/^registry: must be a prom-client Registry/);
  });

  test('without prom-client installed the package loads, and metricsHandler() names the missing peer', async () => {
    // The built package in a project of its own whose node_modules has its dependencies but no prom-client.
    const project = tempDir();
    const pkg = join(project, 'node_modules', 'daymind-auth');
    mkdirSync(pkg, { recursive: true });
    cpSync(join(ROOT, 'dist'), join(pkg, 'dist'), { recursive: true });
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    for (const dep of ['express', 'proper-lockfile', 'rate-limiter-flexible']) {
      symlinkSync(join(ROOT, 'node_modules', dep), join(project, 'node_modules', dep), 'dir');
    }
    writeFileSync(
      join(project, 'check.js'),
      `const assert = require('node:assert');
assert.throws(() => require.resolve('prom-client'), { code: 'MODULE_NOT_FOUND' });
const { daymindAuth, metricsHandler } = require('daymind-auth');
const auth = daymindAuth({ env: {}, storePath: 'keys.json', billing: false });
try {
  metricsHandler(auth);
  console.log('no error');
} catch (err) {
  console.log(JSON.stringify({ code: err.code, message: err.message }));
}
auth.close();
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['check.js'], { cwd: project, env: childEnv() });
    const { code, message } = JSON.parse(stdout) as { code: string; message: string };
    expect(code).toBe('ERR_DAYMIND_MISSING_PEER');
    expect(message).toMatch(/optional peer dependency "prom-client".*Cannot find module 'prom-client'.*npm install prom-client$/);
  });
});

describe('metrics with Redis', () => {
  test('daymind_redis_connected is 1 while Redis answers and 0 while it is down', async () => {
    const redis = await startRedis();
    try {
      const a = auth({ storePath: join(tempDir(), 'keys.json'), billing: false, redis: redis.url });
      const app = express();
      app.get('/metrics', metricsHandler(a));
      const connected = async () => valueOf(await scrape(app), 'daymind_redis_connected');
      await waitFor(async () => (await connected()) === 1, 5000);
      await redis.stop();
      await waitFor(async () => (await connected()) === 0, 5000);
      await redis.start();
      await waitFor(async () => (await connected()) === 1, 10_000);
      await a.close();
    } finally {
      await redis.close();
    }
  }, 30_000);
});

describe('examples/server.ts', () => {
  test('serves the metrics at /metrics without a key', async () => {
    const { child, url, out, exited } = await startExampleServer(tempDir());
    try {
      const key = /\b(dm_[0-9A-Za-z]{28})\b/.exec(out())![1]!;
      expect((await fetch(`${url}/v1/hello`, { headers: { 'x-api-key': key } })).status).toBe(200);
      expect((await fetch(`${url}/v1/hello`)).status).toBe(401);
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const samples = parse(await res.text());
      expect(valueOf(samples, 'daymind_requests_total', { outcome: 'allowed' })).toBe(1);
      expect(valueOf(samples, 'daymind_requests_total', { outcome: 'missing_api_key' })).toBe(1);
      expect(valueOf(samples, 'daymind_keys_loaded')).toBe(1);
      expect(valueOf(samples, 'daymind_billing_outbox_depth')).toBeGreaterThanOrEqual(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
