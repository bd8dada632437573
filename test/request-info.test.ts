import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import express, { type Request, type Response } from 'express';
import { daymindAuth, MemoryKeyStore, type DaymindAuth } from '../src';

let auth: DaymindAuth;
let key: string;

beforeAll(async () => {
  const store = new MemoryKeyStore();
  ({ key } = await store.create({ owner: 'ada' }));
  auth = daymindAuth({ env: {}, store, billing: false });
});
afterAll(() => auth.close());

/** What a handler sees of req.daymind. */
const seen = (req: Request) => ({ owner: req.daymind?.owner ?? null, own: Object.hasOwn(req, 'daymind') });

describe('req.daymind', () => {
  test("is a plain property of the request, and nothing is added to Express's prototypes", async () => {
    const app = express();
    app.get('/open', (req, res) => res.json(seen(req))); // not behind the middleware
    app.use(auth);
    app.get('/hello', (req, res) => res.json(seen(req)));
    const res = await request(app).get('/hello').set('Authorization', `Bearer ${key}`);
    expect(res.body).toEqual({ owner: 'ada', own: true });
    expect(Object.getOwnPropertyDescriptor(express.request, 'daymind')).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(Object.getPrototypeOf(express.request), 'daymind')).toBeUndefined();
    // Another request through the same prototype, never authenticated, has none.
    expect((await request(app).get('/open')).body).toEqual({ owner: null, own: false });
  });

  test('is still there after a sub-app that authenticated hands the request back to its parent', async () => {
    const sub = express();
    sub.use(auth);
    const app = express();
    app.use('/sub', sub);
    app.get('/sub/hello', (req, res) => res.json(seen(req))); // the parent's route, after the sub-app called next()
    const res = await request(app).get('/sub/hello').set('X-API-Key', key);
    expect(res.body).toEqual({ owner: 'ada', own: true });
  });

  test('can be replaced by a later middleware, as a plain property could', async () => {
    const app = express();
    app.use(auth);
    app.use((req, _res, next) => {
      req.daymind = { ...req.daymind!, owner: 'someone else' };
      next();
    });
    app.get('/hello', (req, res) => res.json(seen(req)));
    expect((await request(app).get('/hello').set('X-API-Key', key)).body).toEqual({ owner: 'someone else', own: true });
  });

  test('is set on a plain Node request (no Express) too', async () => {
    const server = http.createServer((req, res) => {
      auth(req as Request, res as Response, () => res.end(JSON.stringify(seen(req as Request))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { authorization: `Bearer ${key}` } });
      expect(await res.json()).toEqual({ owner: 'ada', own: true });
    } finally {
      server.close();
    }
  });
});
