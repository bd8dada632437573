import Redis from 'ioredis';
import request from 'supertest';
import { RedisKeyStore, daymindAuth, hashKey, type UsageDelta } from '../../src';
import { appWith, waitFor } from '../helpers';
import { startRedis, type TestRedis } from './harness';

let redis: TestRedis;
const clients: Redis[] = [];
const stores: RedisKeyStore[] = [];
let prefix = 0;

beforeAll(async () => {
  redis = await startRedis();
}, 20_000);
afterAll(async () => {
  for (const s of stores) await s.close();
  await Promise.all(clients.map((c) => c.quit()));
  await redis.close();
});

/** A store on a fresh namespace; `same` reuses the previous namespace (another instance). */
async function store(same = false): Promise<RedisKeyStore> {
  if (!same) prefix++;
  const client = new Redis(redis.url);
  clients.push(client);
  const s = new RedisKeyStore({ client, prefix: `t${prefix}`, pollIntervalMs: 50 });
  stores.push(s);
  await s.init();
  return s;
}

const delta = (key_hash: string, units: number, day = 20261124): UsageDelta => ({
  key_hash,
  units,
  last_used: 1795550000.5,
  days: [{ day, units }],
});

describe('RedisKeyStore', () => {
  test('creates, lists, revokes and rotates keys; only hashes are stored', async () => {
    const s = await store();
    const { key, record } = await s.create({ owner: 'acme', rate_limit_per_minute: 9, meta: { plan: 'pro' } });
    expect(s.get(hashKey(key))).toMatchObject({ owner: 'acme', rate_limit_per_minute: 9, meta: { plan: 'pro' }, revoked: false });
    const raw = await redis.client().hgetall(`{t${prefix}}:key:${record.key_hash}`);
    expect(JSON.stringify(raw)).not.toContain(key);
    expect(raw).toMatchObject({ owner: 'acme', usage_count: '0', revoked: '0' });
    expect((await s.list()).map((r) => r.owner)).toEqual(['acme']);
    const rotated = (await s.rotate(record.key_hash, 3600))!;
    expect(rotated.record).toMatchObject({ owner: 'acme', rate_limit_per_minute: 9, rotated_from: record.key_hash });
    expect(rotated.previous.revoke_at).toBeGreaterThan(Date.now() / 1000 + 3500);
    expect((await s.revoke(rotated.record.key_hash))!.revoked).toBe(true);
    expect(await s.revoke('0'.repeat(64))).toBeUndefined();
    const fresh = await store(true);
    expect((await fresh.list()).length).toBe(2);
    expect(fresh.get(rotated.record.key_hash)!.revoked).toBe(true);
    expect(fresh.get(record.key_hash)!.revoke_at).toBeCloseTo(rotated.previous.revoke_at!, 3);
  });

  test('update changes the owner and replaces or removes meta, for this instance and another', async () => {
    const s = await store();
    const { record } = await s.create({ owner: 'acme', meta: { plan: 'pro', team: 'core' } });
    expect(await s.update(record.key_hash, { owner: 'acme-eu', meta: { region: 'eu' } })).toMatchObject({
      owner: 'acme-eu',
      meta: { region: 'eu' },
    });
    const other = await store(true);
    expect(other.get(record.key_hash)).toMatchObject({ owner: 'acme-eu', meta: { region: 'eu' } });
    await s.update(record.key_hash, { meta: null });
    expect(await redis.client().hget(`{t${prefix}}:key:${record.key_hash}`, 'meta')).toBeNull();
    expect((await s.list())[0]!.owner).toBe('acme-eu');
  });

  test('another instance sees new keys and revocations within a second, without a KEYS scan', async () => {
    const a = await store();
    const b = await store(true);
    const { record } = await a.create({ owner: 'late' });
    await waitFor(() => b.get(record.key_hash) !== undefined, 1000, 10);
    await a.revoke(record.key_hash);
    const elapsed = await waitFor(() => b.get(record.key_hash)?.revoked === true, 1000, 10);
    expect(elapsed).toBeLessThan(1000);
  });

  test('usage is added atomically, and a batch retried with the same id counts once', async () => {
    const a = await store();
    const b = await store(true);
    const { record } = await a.create({ owner: 'acme' });
    await Promise.all([
      a.applyUsage([delta(record.key_hash, 3)], { batchId: 'one', onApplied: () => undefined }),
      b.applyUsage([delta(record.key_hash, 4)], { batchId: 'two', onApplied: () => undefined }),
    ]);
    await a.applyUsage([delta(record.key_hash, 3)], { batchId: 'one', onApplied: () => undefined });
    await a.applyUsage(
      [
        {
          key_hash: record.key_hash,
          units: 5,
          last_used: 1795600000,
          days: [
            { day: 20261124, units: 1 },
            { day: 20261125, units: 4 },
          ],
        },
      ],
      {
        batchId: 'three',
        onApplied: () => undefined,
      },
    );
    expect(await a.fetch(record.key_hash)).toMatchObject({
      usage_count: 12,
      requests_today: 4,
      requests_day: 20261125,
      last_used: 1795600000,
    });
  });

  test('behind the middleware: a key created on another instance works on its first request', async () => {
    const a = await store();
    const client = new Redis(redis.url);
    clients.push(client);
    const auth = daymindAuth({ env: {}, redis: client, keyStore: 'redis', redisPrefix: `t${prefix}`, flushIntervalMs: 50, billing: false });
    try {
      await auth.ready;
      const { key } = await a.create({ owner: 'fresh' });
      const res = await request(appWith(auth)).get('/v1/hello').set('X-API-Key', key);
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"ip";q=240;w=60, "key";q=120;w=60');
      await auth.flush();
      const usage = await request(appWith(auth)).get('/v1/usage').set('X-API-Key', key);
      expect(usage.body.usage_count).toBe(1); // the hello; /v1/usage is not usage
      expect((await a.fetch(hashKey(key)))!.usage_count).toBeGreaterThanOrEqual(1);
    } finally {
      await auth.close();
    }
    expect(client.status).toBe('ready'); // a client passed in is left open
  });
});
