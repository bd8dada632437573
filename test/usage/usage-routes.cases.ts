/**
 * The usage routes follow GitHub's `GET /rate_limit`: they need a valid key and stay under the
 * per-IP limit, but spend none of the key's windows, quota or credits, are not usage and are not
 * billed, and answer 200 while the key is rate-limited or out of quota. Run on the JSON store with
 * the memory limiter (usage-routes.test.ts) and on Redis (test/redis/usage-routes.test.ts), in
 * every supported way of mounting the router with the middleware.
 */
import express from 'express';
import request from 'supertest';
import { daymindAuth, readLedger, type DaymindAuth, type DaymindOptions } from '../../src';
import { closeAll, tempDir, testClock, TEST_NOW, isoMonth } from '../helpers';

const PLANS = {
  daily: {
    limits: [
      { name: 'minute', limit: 100, window: '1m' },
      { name: 'day', limit: 3, window: '1d' },
    ],
  },
  metered: { limits: [{ name: 'minute', limit: 100, window: '1m' }], monthly_quota: 2 },
  prepaid: { limits: [{ name: 'minute', limit: 100, window: '1m' }] },
};

/** An app as a reader of the docs would mount it; `base` is where the usage routes are. */
interface Mount {
  name: string;
  base: string;
  build(auth: DaymindAuth): express.Express;
}

const hello = (app: express.Express, base: string) => app.get(`${base}/hello`, (req, res) => void res.json({ owner: req.daymind!.owner }));

export const MOUNTS: Mount[] = [
  {
    name: "after the middleware, one line: app.use('/v1', auth, auth.usageRouter())",
    base: '/v1',
    build: (auth) => hello(express().use('/v1', auth, auth.usageRouter()), '/v1'),
  },
  {
    name: 'before the middleware, both under /v1',
    base: '/v1',
    build: (auth) => hello(express().use('/v1', auth.usageRouter()).use('/v1', auth), '/v1'),
  },
  {
    name: 'after the middleware, two lines under /v1',
    base: '/v1',
    build: (auth) => hello(express().use('/v1', auth).use('/v1', auth.usageRouter()), '/v1'),
  },
  {
    name: 'the middleware app-wide, the router before it under /v1',
    base: '/v1',
    build: (auth) => hello(express().use('/v1', auth.usageRouter()).use(auth), '/v1'),
  },
  {
    name: 'the middleware app-wide, the router after it, app-wide too',
    base: '',
    build: (auth) => hello(express().use(auth).use(auth.usageRouter()), ''),
  },
];

interface Usage {
  usage_count: number;
  requests_today: number;
  requests_this_month: number;
  monthly_quota: { limit: number; used: number; remaining: number } | null;
  credits: number | null;
  rate_limits: Array<{ policy: string; limit: number; remaining: number; reset_seconds: number }>;
}

/** `backend()`: the options that put keys and windows in the store and limiter under test (a fresh namespace each call). */
export function usageRouteCases(backend: () => DaymindOptions): void {
  const open: DaymindAuth[] = [];
  /** What onError was told: nothing, in every test here. */
  const errors: string[] = [];
  afterEach(async () => {
    await closeAll(open);
    expect(errors.splice(0)).toEqual([]);
  });

  function start(options: DaymindOptions = {}): { auth: DaymindAuth; ledgerDir: string } {
    const ledgerDir = tempDir();
    const auth = daymindAuth({
      env: {},
      plans: PLANS,
      billing: 'local',
      ledgerDir,
      ipRateLimitPerMinute: false,
      now: testClock().now,
      onError: (err) => errors.push(err.message),
      ...backend(),
      ...options,
    });
    open.push(auth);
    return { auth, ledgerDir };
  }

  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  describe.each(MOUNTS)('the router mounted $name', ({ base, build }) => {
    test('a key refused by its "day" window still gets 200 from /usage and /usage/history, which spend and count nothing', async () => {
      const { auth, ledgerDir } = start();
      await auth.ready;
      const { key } = await auth.store.create({ owner: 'daily-co', plan: 'daily' });
      const app = build(auth);
      for (let i = 0; i < 3; i++) await request(app).get(`${base}/hello`).set(as(key)).expect(200);
      const refused = await request(app).get(`${base}/hello`).set(as(key));
      expect([refused.status, refused.body.error.policy]).toEqual([429, 'day']);

      for (let i = 0; i < 3; i++) {
        const usage = await request(app).get(`${base}/usage`).set(as(key));
        expect(usage.status).toBe(200);
        expect(usage.headers['cache-control']).toBe('no-store');
        const body = usage.body as Usage;
        expect([body.usage_count, body.requests_today, body.requests_this_month]).toEqual([3, 3, 3]);
        // The windows as they stand: every call shows the same, so none of them took a unit.
        expect(body.rate_limits.map((l) => [l.policy, l.limit, l.remaining])).toEqual([
          ['minute', 100, 97],
          ['day', 3, 0],
        ]);
        const day = body.rate_limits[1]!;
        expect(day.reset_seconds).toBeGreaterThan(86_300);
        expect(day.reset_seconds).toBeLessThanOrEqual(86_400);
        expect(usage.headers.ratelimit).toMatch(/^"minute";r=97;t=\d+, "day";r=0;t=\d+$/);
        const history = await request(app).get(`${base}/usage/history?days=1`).set(as(key));
        expect(history.status).toBe(200);
        expect(history.body.days[0]).toMatchObject({ allowed: 3, rate_limited: 1 });
      }
      // Still refused by "day" alone; the minute window shows the three hellos and the refused one (given back).
      const again = await request(app).get(`${base}/hello`).set(as(key));
      expect([again.status, again.body.error.policy]).toEqual([429, 'day']);

      await auth.close();
      const ledger = await readLedger(ledgerDir, [isoMonth(TEST_NOW)]);
      expect(ledger.reduce((n, e) => n + e.quantity, 0)).toBe(3); // billed: the three hellos, no usage call
    });

    test('a key out of monthly quota, and one out of credits, get their numbers; revoked and expired keys get 401', async () => {
      const { auth } = start();
      await auth.ready;
      const metered = (await auth.store.create({ owner: 'metered-co', plan: 'metered' })).key;
      const prepaid = (await auth.store.create({ owner: 'prepaid-co', plan: 'prepaid', credits: 1 })).key;
      const revoked = await auth.store.create({ owner: 'gone' });
      await auth.store.revoke(revoked.record.key_hash);
      const expired = (await auth.store.create({ owner: 'old', expires_at: Math.floor(TEST_NOW / 1000) - 60 })).key;
      const app = build(auth);

      for (let i = 0; i < 2; i++) await request(app).get(`${base}/hello`).set(as(metered)).expect(200);
      expect((await request(app).get(`${base}/hello`).set(as(metered))).body.error.code).toBe('quota_exceeded');
      for (let i = 0; i < 2; i++) {
        const usage = await request(app).get(`${base}/usage`).set(as(metered));
        expect(usage.status).toBe(200);
        expect((usage.body as Usage).monthly_quota).toMatchObject({ limit: 2, used: 2, remaining: 0 });
        expect((usage.body as Usage).rate_limits.at(-1)).toMatchObject({ policy: 'month', limit: 2, remaining: 0 });
      }

      await request(app).get(`${base}/hello`).set(as(prepaid)).expect(200);
      expect((await request(app).get(`${base}/hello`).set(as(prepaid))).status).toBe(402);
      for (let i = 0; i < 2; i++) {
        const usage = await request(app).get(`${base}/usage`).set(as(prepaid));
        expect([usage.status, (usage.body as Usage).credits, (usage.body as Usage).usage_count]).toEqual([200, 0, 1]);
      }

      for (const [key, code] of [
        [revoked.key, 'revoked_api_key'],
        [expired, 'expired_api_key'],
        ['dm_notakeyatall', 'malformed_api_key'],
      ] as const) {
        for (const path of ['/usage', '/usage/history']) {
          const res = await request(app).get(`${base}${path}`).set(as(key));
          expect([path, res.status, res.body.error.code]).toEqual([path, 401, code]);
        }
      }
      expect((await request(app).get(`${base}/usage`)).body.error.code).toBe('missing_api_key');
    });

    test('the per-IP limit still applies to the usage routes', async () => {
      const { auth } = start({ ipRateLimitPerMinute: 3 });
      await auth.ready;
      const { key } = await auth.store.create({ owner: 'busy' });
      const app = build(auth);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await request(app).get(`${base}/usage`).set(as(key))).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const refused = await request(app).get(`${base}/usage/history`).set(as(key));
      expect([refused.status, refused.body.error.policy]).toEqual([429, 'ip']);
      // The key's own window was never touched.
      const usage = await auth.verify(key, { peek: true });
      expect(usage.limits).toMatchObject([{ policy: 'key', remaining: 120 }]);
    });
  });
}
