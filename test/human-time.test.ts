import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { daymindAuth } from '../src';
import { perWindow, waitText } from '../src/internal/human-time';
import { tempDir } from './helpers';

describe('durations in messages', () => {
  test.each([
    [1, 'second'],
    [60, 'minute'],
    [3600, 'hour'],
    [86_400, 'day'],
    [900, '15 minutes'],
    [172_800, '2 days'],
    [90, '90 seconds'],
    [7200, '2 hours'],
  ])('a window of %i s is "per %s"', (seconds, text) => {
    expect(perWindow(seconds)).toBe(text);
  });

  test.each([
    [0, '0 s'],
    [1, '1 s'],
    [59, '59 s'],
    [60, '1 min'],
    [90, '1 min 30 s'],
    [3600, '1 h'],
    [3661, '1 h 1 min'],
    [86_395, '23 h 59 min'],
    [86_400, '1 d'],
    [90_000, '1 d 1 h'],
    [2_678_400, '31 d'],
  ])('a wait of %i s is "%s"', (seconds, text) => {
    expect(waitText(seconds)).toBe(text);
  });
});

describe('429 messages', () => {
  const PLANS = {
    daily: { limits: [{ name: 'day', limit: 1, window: '1d' }] },
    burst: { limits: [{ name: 'second', limit: 10, window: '1s' }] },
  };

  async function refused(plan: string, requests: number) {
    const auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'api_keys.json'), billing: false, plans: PLANS });
    try {
      const app = express()
        .use(auth)
        .get('/', (req, res) => res.json({}));
      const { key } = await auth.store.create({ owner: 'acme', plan });
      let last: request.Response | undefined;
      for (let i = 0; i < requests; i++) last = await request(app).get('/').set('x-api-key', key);
      return last!;
    } finally {
      await auth.close();
    }
  }

  test('a day window: "per day" and the wait in hours and minutes; Retry-After stays in seconds', async () => {
    const res = await refused('daily', 2);
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(86_000);
    expect(res.body.error).toEqual({
      code: 'rate_limited',
      policy: 'day',
      message: `Rate limit of 1 request per day exceeded for this API key; retry in ${waitText(retryAfter)}.`,
    });
    expect(res.body.error.message).toMatch(/retry in (1 d|23 h \d+ min)\.$/); // not in raw seconds
  });

  test('the refusal docs/plans.md shows is the one the product sends', async () => {
    const res = await refused('burst', 11);
    expect(res.status).toBe(429);
    expect(readFileSync(join(__dirname, '../docs/plans.md'), 'utf8')).toContain(`\n${JSON.stringify(res.body)}\n`);
  });
});
