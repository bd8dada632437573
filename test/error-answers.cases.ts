/**
 * No stack reaches a client: jsonErrorHandler() answers errors of the app's own routes (a body
 * express.json() cannot parse, one too large, a route that throws) with the JSON error shape, and
 * the library's own routes and middleware answer their failures themselves (a store or history
 * that throws, a bad query, an onError hook that throws, a metric that cannot be collected).
 * Run under Express 5 (error-answers.test.ts) and Express 4 (error-answers.express4.test.ts).
 */
import { resolve } from 'node:path';
import express from 'express';
import { Gauge, Registry } from 'prom-client';
import request from 'supertest';
import {
  daymindAuth,
  jsonErrorHandler,
  MemoryKeyStore,
  MemoryUsageHistory,
  metricsHandler,
  type DaymindAuth,
  type DaymindOptions,
  type KeyRecord,
} from '../src';
import { closeAll } from './helpers';

const root = resolve(__dirname, '..');

/** A JSON error answer: the status, the code, a message, no-store, and nothing of a stack or of the file system. */
function expectJsonError(res: request.Response, status: number, code: string, message?: string): void {
  expect([res.status, res.headers['content-type'], res.headers['cache-control']]).toEqual([
    status,
    'application/json; charset=utf-8',
    'no-store',
  ]);
  expect(res.body).toEqual({ error: { code, message: message ?? expect.any(String) } });
  expect(res.text).not.toMatch(/\bat .*:\d+|Error:|node_modules/);
  expect(res.text).not.toContain(root);
}

export function errorAnswerCases(): void {
  describe('jsonErrorHandler()', () => {
    const reported: Array<[string, string]> = [];
    const app = express();
    app.post('/echo', express.json({ limit: 100 }), (req, res) => res.json(req.body));
    app.get('/throws', () => {
      throw new Error(`cannot open ${root}/secret.txt`);
    });
    app.get('/rejects', (_req, _res, next) => void Promise.reject(new TypeError('x is undefined')).catch(next));
    app.get('/teapot', (_req, _res, next) => next(Object.assign(new Error('No coffee here.'), { status: 418, expose: true })));
    app.get('/hidden', (_req, _res, next) => next(Object.assign(new Error(`ACL row 7 of ${root}/acl.db`), { statusCode: 403 })));
    app.get('/unavailable', (_req, _res, next) => next(Object.assign(new Error('pool exhausted'), { status: 503 })));
    app.get('/string', (_req, _res, next) => next('a string'));
    app.use(jsonErrorHandler({ onError: (err, req) => reported.push([req.path, String(err)]) }));
    beforeEach(() => reported.splice(0));

    test('a body that is not JSON: 400 invalid_json', async () => {
      const res = await request(app).post('/echo').set('Content-Type', 'application/json').send('{"hello":');
      expectJsonError(res, 400, 'invalid_json', 'The request body is not valid JSON.');
      expect(reported).toEqual([]);
    });

    test('a body over the limit: 413 payload_too_large, naming the limit', async () => {
      const res = await request(app)
        .post('/echo')
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ text: 'x'.repeat(200) }));
      expectJsonError(res, 413, 'payload_too_large', 'The request body is larger than the 100 bytes this endpoint accepts.');
    });

    test('a charset body-parser cannot read: 415 with its message', async () => {
      const res = await request(app).post('/echo').set('Content-Type', 'application/json; charset=klingon').send('{}');
      expectJsonError(res, 415, 'unsupported_media_type', 'unsupported charset "KLINGON"');
    });

    test('a 4xx keeps its status; its message shows only when exposed', async () => {
      expectJsonError(await request(app).get('/teapot'), 418, 'i_m_a_teapot', 'No coffee here.');
      expectJsonError(await request(app).get('/hidden'), 403, 'forbidden', 'Forbidden.');
      expect(reported).toEqual([]);
    });

    test("the server's own failures: 500 (or their 5xx) with a fixed message, reported with the request", async () => {
      const message = 'The server could not answer this request.';
      expectJsonError(await request(app).get('/throws'), 500, 'internal_server_error', message);
      expectJsonError(await request(app).get('/rejects'), 500, 'internal_server_error', message);
      expectJsonError(await request(app).get('/unavailable'), 503, 'service_unavailable', message);
      expectJsonError(await request(app).get('/string'), 500, 'internal_server_error', message);
      expect(reported).toEqual([
        ['/throws', `Error: cannot open ${root}/secret.txt`],
        ['/rejects', 'TypeError: x is undefined'],
        ['/unavailable', 'Error: pool exhausted'],
        ['/string', 'a string'],
      ]);
    });

    test('by default a 5xx goes to stderr with its stack; the client sees none of it', async () => {
      const quiet = express();
      quiet.get('/throws', () => {
        throw new Error('disk on fire');
      });
      quiet.use(jsonErrorHandler());
      const logged: string[] = [];
      const spy = jest.spyOn(console, 'error').mockImplementation((line: string) => void logged.push(line));
      try {
        expectJsonError(await request(quiet).get('/throws?x=1'), 500, 'internal_server_error');
      } finally {
        spy.mockRestore();
      }
      expect(logged).toEqual([expect.stringMatching(/^\[daymind-auth\] GET \/throws\?x=1 failed: Error: disk on fire\n +at /)]);
    });
  });

  describe("the library's routes and middleware answer their own failures", () => {
    const open: DaymindAuth[] = [];
    afterEach(() => closeAll(open));

    async function setUp(options: DaymindOptions & { store: MemoryKeyStore }) {
      const { key } = await options.store.create({ owner: 'acme' });
      const errors: Error[] = [];
      const auth = daymindAuth({ env: {}, billing: false, onError: (err) => errors.push(err), ...options });
      open.push(auth);
      const app = express();
      app.use('/v1', auth.usageRouter());
      app.use('/v1', auth);
      app.get('/v1/hello', (req, res) => res.json({ owner: req.daymind!.owner }));
      app.get('/metrics', metricsHandler(auth, { registry: new Registry(), prefix: '' }));
      return { key, errors, app, auth };
    }

    class FetchFails extends MemoryKeyStore {
      fetch(): Promise<KeyRecord | undefined> {
        return Promise.reject(new Error(`ECONNRESET reading ${root}/store`));
      }
    }

    test('GET /v1/usage with a store whose fetch() fails: 503 service_unavailable, reported', async () => {
      const { key, errors, app } = await setUp({ store: new FetchFails() });
      expectJsonError(await request(app).get('/v1/usage').set('X-API-Key', key), 503, 'service_unavailable');
      expect(errors.map((e) => e.message)).toEqual([`GET /usage failed: ECONNRESET reading ${root}/store`]);
    });

    test('GET /v1/usage/history with a history whose read() fails: 503 service_unavailable', async () => {
      const history = new MemoryUsageHistory();
      history.read = () => Promise.reject(new Error('history down'));
      const { key, app } = await setUp({ store: new MemoryKeyStore(), history });
      expectJsonError(await request(app).get('/v1/usage/history').set('X-API-Key', key), 503, 'service_unavailable');
    });

    test.each(['days=abc', 'days=0', 'days=91', 'days=1&days=2', 'days=%ZZ', 'days=1%00'])(
      'GET /v1/usage/history?%s: 400 bad_request',
      async (query) => {
        const { key, app } = await setUp({ store: new MemoryKeyStore() });
        expectJsonError(
          await request(app).get(`/v1/usage/history?${query}`).set('X-API-Key', key),
          400,
          'bad_request',
          'days must be a whole number from 1 to 90 (default 30)',
        );
      },
    );

    test('an onError hook that throws: the request still gets 503 service_unavailable as JSON', async () => {
      class GetFails extends MemoryKeyStore {
        override get(): KeyRecord | undefined {
          throw new Error('store exploded');
        }
      }
      const thrown = () => {
        throw new Error('the logger is down');
      };
      const logged: string[] = [];
      const spy = jest.spyOn(console, 'error').mockImplementation((line: string) => void logged.push(line));
      try {
        const viaGet = await setUp({ store: new GetFails(), onError: thrown });
        expectJsonError(await request(viaGet.app).get('/v1/hello').set('X-API-Key', viaGet.key), 503, 'service_unavailable');
        const viaFetch = await setUp({ store: new FetchFails(), onError: thrown });
        expectJsonError(await request(viaFetch.app).get('/v1/usage').set('X-API-Key', viaFetch.key), 503, 'service_unavailable');
      } finally {
        spy.mockRestore();
      }
      expect(logged).toEqual([
        '[daymind-auth] key store look-up failed: store exploded (the onError hook threw: the logger is down)',
        `[daymind-auth] GET /usage failed: ECONNRESET reading ${root}/store (the onError hook threw: the logger is down)`,
      ]);
    });

    test('GET /metrics with a metric that cannot be collected: 500 as JSON, reported', async () => {
      const { errors, auth } = await setUp({ store: new MemoryKeyStore() });
      const registry = new Registry();
      new Gauge({
        name: 'app_broken',
        help: 'A gauge of the app whose collect() fails.',
        registers: [registry],
        collect() {
          throw new Error(`cannot stat ${root}/queue`);
        },
      });
      const app = express();
      app.get('/metrics', metricsHandler(auth, { registry }));
      expectJsonError(await request(app).get('/metrics'), 500, 'internal_server_error', 'The metrics could not be collected.');
      expect(errors.map((e) => e.message)).toEqual([`metrics: the registry could not be collected: cannot stat ${root}/queue`]);
    });
  });
}
