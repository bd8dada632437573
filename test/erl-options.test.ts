import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import request from 'supertest';
import { ConfigError, daymindAuth, type DaymindAuth, type DaymindOptions } from '../src';
import { tempDir } from './helpers';

const AT = Date.UTC(2026, 5, 15, 12, 0, 0, 250);
const PLANS = {
  burst: {
    limits: [
      { name: 'second', limit: 3, window: '1s' },
      { name: 'day', limit: 100, window: '1d' },
    ],
  },
};

describe("express-rate-limit's habits: skip, handler, legacyHeaders", () => {
  const open: DaymindAuth[] = [];
  afterEach(async () => {
    for (const a of open.splice(0)) await a.close();
  });

  function setup(options: DaymindOptions) {
    const errors: Error[] = [];
    const auth = daymindAuth({
      env: {},
      storePath: join(tempDir(), 'api_keys.json'),
      billing: false,
      plans: PLANS,
      now: () => AT,
      onError: (e) => errors.push(e),
      ...options,
    });
    open.push(auth);
    const app = express();
    app.use(auth);
    app.get('/open', (req, res) => res.json({ seen: req.daymind === undefined ? 'nobody' : req.daymind.owner }));
    app.get('/write', auth.requireScope('write'), (req, res) => res.json({}));
    return { auth, app, errors };
  }

  test('skip: the request goes on with no key check, no fields and no usage; a skip that throws is a 503', async () => {
    const { auth, app, errors } = setup({ skip: (req) => req.query.skip === '1' || (req.query.skip === 'boom' && JSON.parse('{')) });
    const { key, record } = await auth.store.create({ owner: 'acme' });
    const skipped = await request(app).get('/open?skip=1');
    expect([skipped.status, skipped.body, skipped.headers['ratelimit'], skipped.headers['ratelimit-policy']]).toEqual([
      200,
      { seen: 'nobody' },
      undefined,
      undefined,
    ]);
    await request(app).get('/open?skip=1').set('x-api-key', key).expect(200);
    await request(app).get('/open').set('x-api-key', key).expect(200);
    expect(auth.usage(auth.store.get(record.key_hash) as never).usage_count).toBe(1);
    const broken = await request(app).get('/open?skip=boom');
    expect([broken.status, broken.body.error.code]).toEqual([503, 'service_unavailable']);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/^request refused with 503: .*JSON/)]);
  });

  test('handler answers every refusal, with the status and fields already set; one that throws gets the JSON answer', async () => {
    const seen: Array<{ status: number; code: string; retryAfter: unknown }> = [];
    const { auth, app, errors } = setup({
      handler: (req, res, next, refusal) => {
        seen.push({ status: refusal.status, code: refusal.code, retryAfter: res.getHeader('retry-after') });
        if (req.query.explode) throw new Error('handler bug');
        res.type('text/plain').send(`no: ${refusal.message}`);
      },
    });
    const { key } = await auth.store.create({ owner: 'acme', plan: 'burst' });
    const missing = await request(app).get('/open');
    expect([missing.status, missing.headers['www-authenticate'], missing.text]).toEqual([
      401,
      'Bearer',
      expect.stringMatching(/^no: An API key is required/),
    ]);
    const scope = await request(app).get('/write').set('x-api-key', key);
    expect([scope.status, scope.text]).toEqual([403, expect.stringMatching(/^no: This API key lacks the scope "write"/)]);
    for (let i = 0; i < 2; i++) await request(app).get('/open').set('x-api-key', key).expect(200);
    const limited = await request(app).get('/open').set('x-api-key', key);
    expect([limited.status, limited.headers['cache-control'], limited.text]).toEqual([
      429,
      'no-store',
      expect.stringMatching(/^no: Rate limit of 3 requests per second/),
    ]);
    expect(seen.map((s) => [s.status, s.code])).toEqual([
      [401, 'missing_api_key'],
      [403, 'insufficient_scope'],
      [429, 'rate_limited'],
    ]);
    expect(seen[2]!.retryAfter).toBe('1');
    const fallback = await request(app).get('/open?explode=1');
    expect([fallback.status, fallback.body.error.code]).toEqual([401, 'missing_api_key']);
    expect(errors.map((e) => e.message)).toEqual(['the handler option threw: handler bug']);
  });

  test('legacyHeaders: the policy that refuses first, its remaining, and its reset in Unix seconds', async () => {
    const { auth, app } = setup({ legacyHeaders: true, ipRateLimitPerMinute: 240 });
    const { key } = await auth.store.create({ owner: 'acme', plan: 'burst' });
    const first = await request(app).get('/open').set('x-api-key', key);
    // "second" has 2 left: fewer than the ip (239) and "day" (99) windows.
    expect([first.headers['x-ratelimit-limit'], first.headers['x-ratelimit-remaining']]).toEqual(['3', '2']);
    expect(Number(first.headers['x-ratelimit-reset'])).toBe(Math.ceil(AT / 1000) + 1);
    await request(app).get('/open').set('x-api-key', key);
    await request(app).get('/open').set('x-api-key', key);
    const refused = await request(app).get('/open').set('x-api-key', key);
    expect([refused.status, refused.headers['x-ratelimit-limit'], refused.headers['x-ratelimit-remaining']]).toEqual([429, '3', '0']);
    const off = setup({});
    const plain = await request(off.app)
      .get('/open')
      .set('x-api-key', (await off.auth.store.create({ owner: 'b' })).key);
    expect(plain.headers['x-ratelimit-limit']).toBeUndefined();
  });

  test('bad values are a ConfigError naming the option', () => {
    expect(() => daymindAuth({ env: {}, legacyHeaders: 'yes' as never })).toThrow(
      new ConfigError('legacyHeaders', 'must be true or false, got "yes"'),
    );
    expect(() => daymindAuth({ env: {}, skip: true as never })).toThrow(/^skip: must be a function$/);
    expect(() => daymindAuth({ env: {}, handler: 'json' as never })).toThrow(/^handler: must be a function$/);
  });
});

describe('docs/express-rate-limit.md', () => {
  const doc = readFileSync(join(__dirname, '../docs/express-rate-limit.md'), 'utf8');
  const [before, after] = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

  test('its example is examples/from-express-rate-limit.ts as it is', () => {
    const example = readFileSync(join(__dirname, '../examples/from-express-rate-limit.ts'), 'utf8');
    expect(example).toContain(after!.replace('app.use(auth);\n', ''));
    // The "before" stands in the example's opening comment, line by line.
    for (const line of before!.split('\n').filter((l) => l.trim())) expect(example).toContain(` *   ${line}`);
  });

  test('the limiter it replaces answers the same requests as the example does', async () => {
    // The "before" of the page, as express-rate-limit runs it.
    const app = express();
    app.use(
      rateLimit({
        windowMs: 60_000,
        limit: 5,
        standardHeaders: 'draft-8',
        legacyHeaders: true,
        skip: (req) => req.path === '/health',
        handler: (req, res, next, options) => res.status(options.statusCode).json({ message: 'Slow down, please.' }),
      }),
    );
    expect(before).toContain("skip: (req) => req.path === '/health',");
    app.get('/health', (req, res) => res.json({ ok: true }));
    app.get('/v1/hello', (req, res) => res.json({}));
    const health = await request(app).get('/health');
    expect(health.headers['x-ratelimit-limit']).toBeUndefined();
    const first = await request(app).get('/v1/hello');
    expect([first.headers['x-ratelimit-limit'], first.headers['x-ratelimit-remaining']]).toEqual(['5', '4']);
    for (let i = 0; i < 4; i++) await request(app).get('/v1/hello');
    const refused = await request(app).get('/v1/hello');
    expect([refused.status, refused.body]).toEqual([429, { message: 'Slow down, please.' }]);
  });
});
