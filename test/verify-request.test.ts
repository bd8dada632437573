/**
 * verifyRequest() (the middleware's check for any Node.js HTTP server) against the Express
 * middleware, in process: the same options, keys and requests on both give the same answers
 * (status, JSON body, WWW-Authenticate, Retry-After, RateLimit headers) and the same usage. The
 * built examples are compared whole in test/examples/outside-express.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import {
  daymindAuth,
  generateKey,
  hashKey,
  MemoryKeyStore,
  verifyRequest,
  type DaymindAuth,
  type DaymindOptions,
  type KeyRecord,
} from '../src';
import { closeAll } from './helpers';
import { transcript, type Answer, type Step } from './examples/transcript';

const KEY = generateKey();
const HASH = hashKey(KEY);
const open: DaymindAuth[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await closeAll(open);
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Side {
  auth: DaymindAuth;
  answers: Answer[];
  errors: string[];
}

interface Case {
  options: () => DaymindOptions;
  /** Units per request: the middleware's `cost` option, verifyRequest's `cost`. */
  cost?: number;
  /** Changes to the key before the requests (both sides alike). */
  key?: Parameters<NonNullable<MemoryKeyStore['update']>>[1];
}

/** Runs `steps` on the middleware and on verifyRequest(), each on its own instance and store. */
async function both(c: Case, steps: Step[]): Promise<{ express: Side; plain: Side }> {
  const make = async (): Promise<{ auth: DaymindAuth; errors: string[] }> => {
    const errors: string[] = [];
    const auth = daymindAuth({
      billing: false,
      history: false,
      onError: (err) => errors.push(err.message),
      ...(c.cost ? { cost: () => c.cost! } : {}),
      ...c.options(),
    });
    open.push(auth);
    await auth.ready;
    if (c.key) await auth.store.update!(HASH, c.key);
    return { auth, errors };
  };

  const e = await make();
  const app = express();
  app.use('/v1', e.auth);
  app.get('/v1/hello', (req, res) => {
    res.json({ owner: req.daymind!.owner });
  });
  const expressAnswers = await transcript(await listen(createServer(app)), steps);

  const p = await make();
  const plainUrl = await listen(
    createServer((req, res) => {
      void verifyRequest(p.auth, req, { cost: c.cost }).then((check) => {
        if (!check.allowed) return void res.writeHead(check.status, check.headers).end(check.body);
        res.writeHead(200, { ...check.headers, 'Content-Type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ owner: check.result!.record!.owner }));
      });
    }),
  );
  const plainAnswers = await transcript(plainUrl, steps);
  return { express: { ...e, answers: expressAnswers }, plain: { ...p, answers: plainAnswers } };
}

/** The key's usage_count once flushed. */
async function usageCount(auth: DaymindAuth): Promise<number> {
  await auth.flush();
  return ((await auth.store.get(HASH)) as KeyRecord).usage_count;
}

const hello: Step = { path: '/v1/hello', headers: { authorization: `Bearer ${KEY}` } };
const memoryStore = () => new MemoryKeyStore({ keys: [KEY], owner: 'acme' });

describe('verifyRequest() answers and counts as the Express middleware', () => {
  test('a monthly quota: 429 quota_exceeded with the "month" policy', async () => {
    const plans = { tiny: { limits: [{ name: 'minute', limit: 10, window: '1m' }], monthly_quota: 2 } };
    const { express: e, plain: p } = await both({ options: () => ({ store: memoryStore(), plans }), key: { plan: 'tiny' } }, [
      hello,
      hello,
      hello,
    ]);
    expect(e.answers.map((a) => [a.status, (a.body as { error?: { code: string } }).error?.code])).toEqual([
      [200, undefined],
      [200, undefined],
      [429, 'quota_exceeded'],
    ]);
    expect(e.answers[2]!.headers).toMatchObject({
      'retry-after': '<seconds>',
      'ratelimit-policy': expect.stringContaining('"month";q=2;w='),
    });
    expect(p.answers).toEqual(e.answers);
    expect([await usageCount(e.auth), await usageCount(p.auth)]).toEqual([2, 2]);
  });

  test('prepaid credits: 402 credits_exhausted once they are spent', async () => {
    const { express: e, plain: p } = await both({ options: () => ({ store: memoryStore() }), key: { credits: 1 } }, [hello, hello]);
    expect(e.answers.map((a) => a.status)).toEqual([200, 402]);
    expect(e.answers[1]!.body).toMatchObject({ error: { code: 'credits_exhausted', credits: 0 } });
    expect(p.answers).toEqual(e.answers);
    expect([await usageCount(e.auth), await usageCount(p.auth)]).toEqual([1, 1]);
  });

  test('a cost of 2 units a request is spent on the key window and counted', async () => {
    const options = () => ({ store: memoryStore(), rateLimitPerMinute: 5 });
    const { express: e, plain: p } = await both({ options, cost: 2 }, [hello, hello, hello]);
    expect(e.answers.map((a) => [a.status, a.headers.ratelimit])).toEqual([
      [200, '"ip";r=239;t=*, "key";r=3;t=*'],
      [200, '"ip";r=238;t=*, "key";r=1;t=*'],
      [429, '"ip";r=237;t=*, "key";r=0;t=*'],
    ]);
    expect(p.answers).toEqual(e.answers);
    expect([await usageCount(e.auth), await usageCount(p.auth)]).toEqual([4, 4]);
  });

  test('the key in a query parameter (queryParam), once; headers first', async () => {
    const steps: Step[] = [
      { path: `/v1/hello?api_key=${KEY}` },
      { path: `/v1/hello?api_key=${KEY}&api_key=${KEY}` },
      { path: '/v1/hello?api_key=', headers: { 'x-api-key': KEY } },
      { path: '/v1/hello?api_key=nope', headers: { authorization: `Bearer ${KEY}` } },
    ];
    const { express: e, plain: p } = await both({ options: () => ({ store: memoryStore(), queryParam: 'api_key' }) }, steps);
    expect(e.answers.map((a) => a.status)).toEqual([200, 401, 200, 200]);
    expect(p.answers).toEqual(e.answers);
    expect([await usageCount(e.auth), await usageCount(p.auth)]).toEqual([3, 3]);
  });

  test('without the per-IP limit: no "ip" policy, and a 401 has no RateLimit headers', async () => {
    const { express: e, plain: p } = await both({ options: () => ({ store: memoryStore(), ipRateLimitPerMinute: false }) }, [
      { path: '/v1/hello' },
      hello,
    ]);
    expect(e.answers.map((a) => [a.status, a.headers['ratelimit-policy']])).toEqual([
      [401, null],
      [200, '"key";q=120;w=60'],
    ]);
    expect(p.answers).toEqual(e.answers);
  });

  test('a store that fails: 503 service_unavailable with Retry-After, told to onError', async () => {
    class FailingStore extends MemoryKeyStore {
      override get(): KeyRecord | undefined {
        throw new Error('disk on fire');
      }
    }
    const { express: e, plain: p } = await both({ options: () => ({ store: new FailingStore({ keys: [KEY] }) }) }, [hello]);
    expect(e.answers[0]).toMatchObject({
      status: 503,
      headers: { 'retry-after': '<seconds>' },
      body: { error: { code: 'service_unavailable' } },
    });
    expect(p.answers).toEqual(e.answers);
    expect(p.errors).toEqual(e.errors);
    expect(p.errors[0]).toContain('disk on fire');
  });

  test('a cost that is not a whole number of at least 1: 503, told to onError, nothing counted', async () => {
    const errors: string[] = [];
    const auth = daymindAuth({ store: memoryStore(), billing: false, history: false, onError: (err) => errors.push(err.message) });
    open.push(auth);
    const url = await listen(
      createServer((req, res) => {
        void verifyRequest(auth, req, { cost: 0 }).then((check) => res.writeHead(check.status, check.headers).end(check.body));
      }),
    );
    const [answer] = await transcript(url, [hello]);
    expect(answer).toMatchObject({ status: 503, body: { error: { code: 'service_unavailable' } } });
    expect(errors).toEqual([expect.stringContaining('cost')]);
    expect(await usageCount(auth)).toBe(0);
  });
});
