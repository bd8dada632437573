import express from 'express';
import request from 'supertest';
import { daymindAuth, type DaymindAuth } from '../../src';
import { seedStoreCopy, SEED_KEYS } from '../helpers';

/** The page's policy, spelled out: a change to the one in src must be made here too, on purpose. */
const STRICT_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The ways of mounting the router with the middleware that work; `base` is where the routes are. */
const MOUNTS: Array<[string, string, (auth: DaymindAuth) => express.Express]> = [
  [
    "after the middleware, one line: app.use('/v1', auth, auth.usageRouter())",
    '/v1',
    (auth) => express().use('/v1', auth, auth.usageRouter({ dashboard: true })),
  ],
  [
    'before the middleware',
    '/v1',
    (auth) =>
      express()
        .use('/v1', auth.usageRouter({ dashboard: true }))
        .use('/v1', auth),
  ],
  [
    'after the middleware, both app-wide',
    '',
    (auth) =>
      express()
        .use(auth)
        .use(auth.usageRouter({ dashboard: true })),
  ],
];

describe.each(MOUNTS)('usage router: the dashboard routes, mounted %s', (_name, base, build) => {
  let auth: DaymindAuth;
  let app: express.Express;
  beforeAll(() => {
    auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false });
    app = build(auth);
  });
  afterAll(() => auth.close());

  test('the page, its script and style load without a key, under a strict CSP', async () => {
    for (const [path, type] of [
      [`${base}/usage/dashboard`, 'text/html'],
      [`${base}/usage/dashboard.js`, 'text/javascript'],
      [`${base}/usage/dashboard.css`, 'text/css'],
    ] as const) {
      const res = await request(app).get(path);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.headers['content-type']).toContain(type);
      expect(res.headers['content-security-policy']).toBe(STRICT_CSP);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  test('a trailing slash redirects to the page (its relative URLs would point one level too deep)', async () => {
    const res = await request(app).get(`${base}/usage/dashboard/`);
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('../dashboard');
  });

  test("the page's data calls still need a key", async () => {
    const noKey = await request(app).get(`${base}/usage`);
    expect([noKey.status, noKey.body.error.code]).toEqual([401, 'missing_api_key']);
    const withKey = await request(app).get(`${base}/usage`).set('x-api-key', SEED_KEYS.alpha);
    expect([withKey.status, withKey.body.owner]).toEqual([200, 'team-alpha']);
  });
});

test('without { dashboard: true } there is no page', async () => {
  const auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false });
  try {
    const plain = express().use('/v1', auth.usageRouter());
    expect((await request(plain).get('/v1/usage/dashboard')).status).toBe(404);
    const behind = express().use('/v1', auth, auth.usageRouter());
    expect((await request(behind).get('/v1/usage/dashboard')).body.error.code).toBe('missing_api_key');
  } finally {
    await auth.close();
  }
});

test('a dashboard router mounted after the middleware at another path: the page is refused without a key, and that is reported once', async () => {
  const errors: Error[] = [];
  const auth = daymindAuth({ env: {}, storePath: seedStoreCopy(), billing: false, onError: (e) => errors.push(e) });
  try {
    const app = express()
      .use(auth)
      .use('/v1', auth.usageRouter({ dashboard: true }));
    for (let i = 0; i < 2; i++) expect((await request(app).get('/v1/usage/dashboard')).status).toBe(401);
    expect(errors.map((e) => [(e as { code?: string }).code, e.message])).toEqual([
      [
        'ERR_DAYMIND_CONFIG',
        "usageRouter: the usage router is mounted after the auth middleware at another path (seen at GET /v1/usage/dashboard), so the middleware refuses its page without a key and counts its data calls as usage: mount the usage router before the middleware, or after it at the same path, as in app.use('/v1', auth, auth.usageRouter())",
      ],
    ]);
  } finally {
    await auth.close();
  }
});
