import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { daymindAuth } from '../../src';
import { tempDir } from '../helpers';
import { usageRouteCases } from './usage-routes.cases';

describe('usage routes on the JSON store and the memory limiter', () => {
  usageRouteCases(() => ({ storePath: join(tempDir(), 'api_keys.json') }));
});

test('a router mounted after the middleware at another path is reported once: the middleware cannot tell its routes', async () => {
  const errors: Error[] = [];
  const auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'api_keys.json'), billing: false, onError: (e) => errors.push(e) });
  try {
    await auth.ready;
    const { key } = await auth.store.create({ owner: 'acme' });
    const app = express().use(auth).use('/v1', auth.usageRouter());
    for (let i = 0; i < 2; i++) expect((await request(app).get('/v1/usage').set('x-api-key', key)).status).toBe(200);
    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_CONFIG',
        "usageRouter: the usage router is mounted after the auth middleware at another path (seen at GET /v1/usage), so the middleware refuses its page without a key and counts its data calls as usage: mount the usage router before the middleware, or after it at the same path, as in app.use('/v1', auth, auth.usageRouter())",
      ],
    ]);
  } finally {
    await auth.close();
  }
});
