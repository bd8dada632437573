import { readFileSync } from 'node:fs';
import request from 'supertest';
import { daymindAuth } from '../src';
import { utcDay } from '../src/usage/day';
import { appWith, seedStoreCopy, SEED_KEYS, SEED_STORE, testClock } from './helpers';

describe('an existing-format store mounted unchanged', () => {
  test('live keys pass, the revoked one is refused, counters go on in the same fields', async () => {
    const path = seedStoreCopy();
    const original = JSON.parse(readFileSync(SEED_STORE, 'utf8')) as Array<Record<string, unknown>>;
    const clock = testClock();
    const auth = daymindAuth({ env: { API_KEY_STORE_PATH: path }, now: clock.now });
    const app = appWith(auth);

    for (let i = 0; i < 3; i++)
      expect((await request(app).get('/v1/hello').set('Authorization', `Bearer ${SEED_KEYS.alpha}`)).status).toBe(200);
    const beta = await request(app).get('/v1/hello').set('X-API-Key', SEED_KEYS.beta);
    expect(beta.status).toBe(200);
    expect(beta.body).toEqual({ owner: 'team-beta', prefix: 'dm_Qm3Wv9' });
    const revoked = await request(app).get('/v1/hello').set('Authorization', `Bearer ${SEED_KEYS.revoked}`);
    expect(revoked.status).toBe(401);
    expect(revoked.body.error.code).toBe('revoked_api_key');

    const usage = await request(app).get('/v1/usage').set('Authorization', `Bearer ${SEED_KEYS.alpha}`);
    expect(usage.body).toMatchObject({
      owner: 'team-alpha',
      key_prefix: 'dm_8fJq2L',
      usage_count: 1248, // the three hellos; /v1/usage is not usage
      requests_today: 3,
      created_at: 1731300000,
    });
    await auth.close();

    const after = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
    expect(after).toHaveLength(3);
    // Same records, same fields, same types: still readable by the old format's readers. The one
    // addition is the month's counter of a used key, in the format's own style (beside requests_day).
    after.forEach((record, i) => {
      const added = Object.keys(record).filter((k) => !(k in original[i]!));
      expect(Object.keys(original[i]!).every((k) => k in record)).toBe(true);
      expect(added.sort()).toEqual(record.usage_count === original[i]!.usage_count ? [] : ['requests_month', 'requests_this_month']);
      for (const [field, value] of Object.entries(original[i]!)) {
        expect(typeof record[field]).toBe(value === null && field === 'last_used' && record[field] !== null ? 'number' : typeof value);
      }
      expect(record.key).toBe(original[i]!.key);
    });
    const today = utcDay(clock.now());
    expect(after[0]).toMatchObject({ usage_count: 1248, requests_today: 3, requests_day: today, revoked: false, owner: 'team-alpha' });
    expect(after[0]).toMatchObject({ requests_this_month: 3, requests_month: Math.floor(today / 100) });
    expect(after[0]!.last_used).toBe(clock.now() / 1000);
    expect(after[1]).toMatchObject({ usage_count: 1, requests_today: 1, requests_day: today });
    expect(after[2]).toEqual(original[2]);
  });
});
