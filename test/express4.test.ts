// The same middleware under Express 4: every `express` import (ours included) is Express 4 here.
jest.mock('express', () => jest.requireActual('express4'));

import request from 'supertest';
import express from 'express';
import { daymindAuth, MemoryKeyStore } from '../src';

test('works in an Express 4 app: auth, limits, req.daymind and the usage router', async () => {
  expect((jest.requireActual('express4/package.json') as { version: string }).version).toMatch(/^4\./);
  const store = new MemoryKeyStore();
  const { key } = await store.create({ owner: 'four' });
  const auth = daymindAuth({ env: {}, store, rateLimitPerMinute: 2, billing: false });
  const app = express();
  app.use('/v1', auth, auth.usageRouter());
  app.get('/v1/hello', (req, res) => res.json({ owner: req.daymind!.owner }));

  expect((await request(app).get('/v1/hello').set('Authorization', `Bearer ${key}`)).body).toEqual({ owner: 'four' });
  const usage = await request(app).get('/v1/usage').set('X-API-Key', key);
  expect(usage.body.usage_count).toBe(1); // /v1/usage is not usage
  await request(app).get('/v1/hello').set('X-API-Key', key).expect(200);
  const limited = await request(app).get('/v1/hello').set('X-API-Key', key);
  expect(limited.status).toBe(429);
  expect(limited.headers['retry-after']).toMatch(/^\d+$/);
  expect((await request(app).get('/v1/hello')).status).toBe(401);
  await auth.close();
});
