/**
 * The key field `paddle_subscription_id` (Paddle billing mode) in the JSON file, memory and Redis
 * stores: set on create, changed and removed by update, kept by a rotation, checked.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { JsonFileKeyStore, MemoryKeyStore, RedisKeyStore } from '../../src';

type Store = JsonFileKeyStore | MemoryKeyStore | RedisKeyStore;
import { tempDir } from '../helpers';
import { startRedis, type TestRedis } from '../redis/harness';

const SUB_1 = `sub_${'01first'.padEnd(26, '0')}`;
const SUB_2 = `sub_${'01second'.padEnd(26, '0')}`;

let redis: TestRedis;
const closers: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  redis = await startRedis();
}, 20_000);
afterAll(async () => {
  for (const close of closers.splice(0)) await close();
  await redis.close();
});

function closing<T extends Store>(store: T): T {
  closers.push(() => store.close());
  return store;
}

async function redisStore(): Promise<RedisKeyStore> {
  const client = new Redis(redis.url);
  const store = new RedisKeyStore({ client, prefix: 'paddle', pollIntervalMs: 50 });
  closers.push(
    () => store.close(),
    () => client.quit(),
  );
  await store.init();
  return store;
}

const kinds: Array<[string, () => Promise<Store>]> = [
  ['JSON file', async () => closing(new JsonFileKeyStore({ path: join(tempDir(), 'api_keys.json') }))],
  ['memory', async () => closing(new MemoryKeyStore())],
  ['Redis', redisStore],
];

describe.each(kinds)('paddle_subscription_id in the %s store', (_name, make) => {
  test('set on create, changed and removed by update, kept by a rotation; a malformed id is refused', async () => {
    const store = await make();
    const { record } = await store.create({ owner: 'acme', paddle_subscription_id: SUB_1 });
    expect(store.get(record.key_hash)).toMatchObject({ paddle_subscription_id: SUB_1 });
    expect(await store.update(record.key_hash, { paddle_subscription_id: SUB_2 })).toMatchObject({ paddle_subscription_id: SUB_2 });
    const rotated = (await store.rotate(record.key_hash, 0))!;
    expect(rotated.record.paddle_subscription_id).toBe(SUB_2);
    await expect(store.update(rotated.record.key_hash, { paddle_subscription_id: 'sub_123' })).rejects.toThrow(
      'paddle_subscription_id must be "sub_" and 26 lowercase letters or digits',
    );
    await expect(store.create({ owner: 'other', paddle_subscription_id: SUB_1.toUpperCase() })).rejects.toMatchObject({
      code: 'ERR_DAYMIND_INVALID_INPUT',
    });
    const removed = await store.update(rotated.record.key_hash, { paddle_subscription_id: null });
    expect(removed).not.toHaveProperty('paddle_subscription_id');
    expect(store.get(rotated.record.key_hash)).not.toHaveProperty('paddle_subscription_id');
    if (store instanceof JsonFileKeyStore) {
      const file = JSON.parse(readFileSync(store.path, 'utf8')) as Array<Record<string, unknown>>;
      expect(file.map((r) => r.paddle_subscription_id ?? null)).toEqual([SUB_2, null]);
    }
  });
});
