/**
 * "Every refusal has a JSON body and `Cache-Control: no-store`" (README): each refusal the
 * middleware, the route guards and the usage router answer, on a real server, checked for both.
 * A cache between client and API must never serve one client's refusal (or its remaining quota)
 * to another, nor keep serving a refusal once the limit has reset.
 */
import express from 'express';
import request from 'supertest';
import { daymindAuth, MemoryKeyStore, type DaymindAuth, type DaymindOptions, type KeyRecord } from '../src';
import { closeAll } from './helpers';

const PLANS = {
  tight: { limits: [{ name: 'minute', limit: 1, window: '1m' }] },
  metered: { limits: [{ name: 'minute', limit: 1000, window: '1m' }], monthly_quota: 1 },
  prepaid: { limits: [{ name: 'minute', limit: 1000, window: '1m' }] },
};

const open: DaymindAuth[] = [];
afterEach(() => closeAll(open));

/** An app with the usage router, the middleware, a plain route and the two route guards, on `store`. */
function appOn(store: MemoryKeyStore, options: DaymindOptions = {}): express.Express {
  const auth = daymindAuth({
    env: {},
    store,
    billing: false,
    plans: PLANS,
    ipRateLimitPerMinute: 1000,
    onError: () => undefined,
    ...options,
  });
  open.push(auth);
  const app = express();
  app.use('/v1', auth.usageRouter());
  app.use('/v1', auth);
  app.get('/v1/hello', (_req, res) => res.json({ ok: true }));
  app.post('/v1/write', auth.requireScope('write'), (_req, res) => res.json({ ok: true }));
  app.get('/v1/costly', auth.cost(3), (_req, res) => res.json({ ok: true }));
  return app;
}

test('every refusal is JSON with Cache-Control: no-store', async () => {
  const store = new MemoryKeyStore();
  const key = async (input: Parameters<MemoryKeyStore['create']>[0]) => (await store.create(input)).key;
  const app = appOn(store);
  const as = (path: string, k?: string) => {
    const req = request(app).get(path);
    return k ? req.set('Authorization', `Bearer ${k}`) : req;
  };
  const plain = await key({ owner: 'plain' });
  const revoked = await key({ owner: 'revoked' });
  await store.revoke((await store.list()).find((r) => r.owner === 'revoked')!.key_hash);
  const expired = await key({ owner: 'expired', expires_at: Math.floor(Date.now() / 1000) - 60 });
  const tight = await key({ owner: 'tight', plan: 'tight' });
  const metered = await key({ owner: 'metered', plan: 'metered' });
  const prepaid = await key({ owner: 'prepaid', plan: 'prepaid', credits: 2 });
  const costlyTight = await key({ owner: 'costly-tight', rate_limit_per_minute: 2 });
  const costlyMetered = await key({ owner: 'costly-metered', plan: 'metered' });

  expect((await as('/v1/hello', tight)).status).toBe(200);
  const answers: Array<[string, request.Response]> = [
    ['no key', await as('/v1/hello')],
    ['malformed key', await as('/v1/hello', 'dm_123')],
    ['unknown key', await as('/v1/hello', 'dm_3apmiuZQsfygflyYKYQJrT4NaX1c')],
    ['revoked key', await as('/v1/hello', revoked)],
    ['expired key', await as('/v1/hello', expired)],
    ['key window spent', await as('/v1/hello', tight)],
    ['monthly quota spent', (await as('/v1/hello', metered), await as('/v1/hello', metered))],
    ['credits spent by cost(3)', await as('/v1/costly', prepaid)],
    ['window spent by cost(3)', await as('/v1/costly', costlyTight)],
    ['quota spent by cost(3)', await as('/v1/costly', costlyMetered)],
    ['missing scope', await request(app).post('/v1/write').set('X-API-Key', plain)],
    ['bad history query', await as('/v1/usage/history?days=abc', plain)],
  ];

  class Failing extends MemoryKeyStore {
    override get(): KeyRecord | undefined {
      throw new Error('store down');
    }
  }
  const failing = new Failing();
  const failingKey = (await failing.create({ owner: 'x' })).key;
  answers.push(['store failing', await request(appOn(failing)).get('/v1/hello').set('X-API-Key', failingKey)]);
  answers.push([
    'no history kept',
    await request(appOn(store, { history: false }))
      .get('/v1/usage/history')
      .set('X-API-Key', plain),
  ]);
  const ipLimited = appOn(store, { ipRateLimitPerMinute: 1 });
  await request(ipLimited).get('/v1/hello');
  answers.push(['client address limit', await request(ipLimited).get('/v1/hello').set('X-API-Key', plain)]);

  expect(
    answers.map(([what, res]) => [what, res.status, res.body.error?.code, res.headers['cache-control'], res.headers['content-type']]),
  ).toEqual(
    [
      ['no key', 401, 'missing_api_key'],
      ['malformed key', 401, 'malformed_api_key'],
      ['unknown key', 401, 'invalid_api_key'],
      ['revoked key', 401, 'revoked_api_key'],
      ['expired key', 401, 'expired_api_key'],
      ['key window spent', 429, 'rate_limited'],
      ['monthly quota spent', 429, 'quota_exceeded'],
      ['credits spent by cost(3)', 402, 'credits_exhausted'],
      ['window spent by cost(3)', 429, 'rate_limited'],
      ['quota spent by cost(3)', 429, 'quota_exceeded'],
      ['missing scope', 403, 'insufficient_scope'],
      ['bad history query', 400, 'bad_request'],
      ['store failing', 503, 'service_unavailable'],
      ['no history kept', 501, 'history_unavailable'],
      ['client address limit', 429, 'rate_limited'],
    ].map((row) => [...row, 'no-store', 'application/json; charset=utf-8']),
  );
});
