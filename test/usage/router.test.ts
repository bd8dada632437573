import express from 'express';
import request from 'supertest';
import { daymindAuth } from '../../src';
import { seedStoreCopy } from '../helpers';

/** The page's policy, spelled out: a change to the one in src must be made here too, on purpose. */
const STRICT_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

describe('usage router: the dashboard routes', () => {
  const auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false });
  const app = express();
  app.use('/v1', auth.usageRouter({ dashboard: true }));
  app.use('/v1', auth);
  afterAll(() => auth.close());

  test('the page, its script and style load without a key, under a strict CSP', async () => {
    for (const [path, type] of [
      ['/v1/usage/dashboard', 'text/html'],
      ['/v1/usage/dashboard.js', 'text/javascript'],
      ['/v1/usage/dashboard.css', 'text/css'],
    ] as const) {
      const res = await request(app).get(path);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toContain(type);
      expect(res.headers['content-security-policy']).toBe(STRICT_CSP);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  test('a trailing slash redirects to the page (its relative URLs would point one level too deep)', async () => {
    const res = await request(app).get('/v1/usage/dashboard/');
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('../dashboard');
  });

  test('without { dashboard: true } there is no page', async () => {
    const plain = express();
    plain.use('/v1', auth.usageRouter());
    expect((await request(plain).get('/v1/usage/dashboard')).status).toBe(404);
  });
});
