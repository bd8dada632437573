import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { daymindAuth, type DaymindAuth } from '../src';
import { sleep, tempDir, waitFor } from './helpers';

const plan = (perMinute: number) => ({ limits: [{ name: 'minute', limit: perMinute, window: '1m' }] });

describe('the plans file is reloaded on change', () => {
  const open: DaymindAuth[] = [];
  afterEach(async () => {
    for (const a of open.splice(0)) await a.close();
  });

  async function setup(plans: object) {
    const dir = tempDir();
    const file = join(dir, 'plans.json');
    writeFileSync(file, JSON.stringify(plans));
    const errors: Error[] = [];
    const auth = daymindAuth({
      env: { DAYMIND_PLANS_FILE: file },
      storePath: join(dir, 'api_keys.json'),
      billing: false,
      ipRateLimitPerMinute: false,
      reloadIntervalMs: 50,
      onError: (e) => errors.push(e),
    });
    open.push(auth);
    const app = express()
      .use(auth)
      .get('/', (req, res) => res.json({}));
    const hit = (key: string) => request(app).get('/').set('x-api-key', key);
    return { file, auth, errors, hit };
  }

  test('a changed plan applies within a reload interval; an unchanged one keeps its counts', async () => {
    const s = await setup({ free: plan(2), pro: plan(10) });
    const free = (await s.auth.store.create({ owner: 'f', plan: 'free' })).key;
    const pro = (await s.auth.store.create({ owner: 'p', plan: 'pro' })).key;
    expect((await s.hit(free)).status).toBe(200);
    expect((await s.hit(free)).status).toBe(200);
    expect((await s.hit(free)).status).toBe(429);
    expect((await s.hit(pro)).headers['ratelimit']).toMatch(/^"minute";r=9;t=(59|60)$/);

    writeFileSync(s.file, JSON.stringify({ free: plan(5), pro: plan(10) }));
    await waitFor(async () => (await s.hit(free)).headers['ratelimit-policy'] === '"minute";q=5;w=60', 2000);
    // pro's definition did not change: its window and the request it counted are the same.
    expect((await s.hit(pro)).headers['ratelimit']).toMatch(/^"minute";r=8;t=\d+$/);
    expect(s.errors).toEqual([]);
  });

  test('a bad new file is reported once, naming it, and the plans in force stay; a good one then applies', async () => {
    const s = await setup({ free: plan(2) });
    const key = (await s.auth.store.create({ owner: 'f', plan: 'free' })).key;
    writeFileSync(s.file, '{"free": {"limits": [');
    await waitFor(() => s.errors.length > 0, 2000);
    await sleep(200); // more checks of the same bad file report nothing more
    expect(s.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(
        new RegExp(`^DAYMIND_PLANS_FILE: the plans file ${s.file} is not valid JSON: .*; the plans in force stay as they were$`),
      ),
    ]);
    expect((await s.hit(key)).headers['ratelimit-policy']).toBe('"minute";q=2;w=60');
    writeFileSync(s.file, JSON.stringify({ free: { limits: [{ name: 'minute', limit: 0, window: '1m' }] } }));
    await waitFor(() => s.errors.length === 2, 2000);
    expect(s.errors[1]!.message).toMatch(/plan "free".*; the plans in force stay as they were$/);
    writeFileSync(s.file, JSON.stringify({ free: plan(7) }));
    await waitFor(async () => (await s.hit(key)).headers['ratelimit-policy'] === '"minute";q=7;w=60', 2000);
  });

  test('plans given as an option are not watched', async () => {
    const auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'k.json'), billing: false, plans: { free: plan(2) } });
    open.push(auth);
    expect(auth.config.plansFile).toBeUndefined();
  });
});
