import type { Socket } from 'node:net';
import Redis from 'ioredis';
import { corkWritesForThisTurn } from '../../src/redis/cork-writes';
import { RedisRateLimiter } from '../../src/limits/redis';
import { startRedis, type TestRedis } from './harness';

let redis: TestRedis;
const clients: Redis[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterEach(() => {
  // Also after a failed assertion: an open client would keep the test process alive.
  for (const client of clients.splice(0)) client.disconnect();
});
afterAll(async () => {
  await redis.close();
});

async function connect(): Promise<Redis> {
  const client = new Redis(redis.url);
  clients.push(client);
  await client.ping();
  return client;
}

/** Counts the writes that reach the client's socket (each one a system call). */
function countWrites(client: Redis): { count: number } {
  const socket = (client as unknown as { stream: Socket & { _write: unknown; _writev: unknown } }).stream;
  const writes = { count: 0 };
  for (const name of ['_write', '_writev'] as const) {
    const original = socket[name] as (...args: unknown[]) => unknown;
    socket[name] = function (this: Socket, ...args: unknown[]) {
      writes.count++;
      return original.apply(this, args);
    };
  }
  return writes;
}

describe('corkWritesForThisTurn', () => {
  test('commands sent in one turn of the event loop reach Redis in one write, and answer in order', async () => {
    const client = await connect();
    const writes = countWrites(client);
    corkWritesForThisTurn(client);
    corkWritesForThisTurn(client); // corked once per turn, however often it is called
    const replies = Promise.all(Array.from({ length: 20 }, (_, i) => client.incrby('coalesce:n', i + 1)));
    expect(await replies).toEqual(Array.from({ length: 20 }, (_, i) => ((i + 1) * (i + 2)) / 2));
    expect(writes.count).toBe(1);

    // Without it, each command is its own write.
    writes.count = 0;
    await Promise.all([client.incr('coalesce:m'), client.incr('coalesce:m'), client.incr('coalesce:m')]);
    expect(writes.count).toBe(3);
  });

  test("the Redis limiter's consumes of concurrent requests share writes, and count exactly", async () => {
    const client = await connect();
    const limiter = new RedisRateLimiter({ client, prefix: 'coalesce' });
    const window = { name: 'key', limit: 30, windowSeconds: 60 };
    await limiter.consume(window, 'warm-up', 1); // loads the script
    const writes = countWrites(client);
    const results = await Promise.all(Array.from({ length: 40 }, () => limiter.consume(window, 'subject', 1)));
    expect(results.filter((r) => r.allowed)).toHaveLength(30);
    expect(results.map((r) => r.remaining).sort((a, b) => b - a)[0]).toBe(29);
    expect(writes.count).toBeLessThan(40);
  });

  test("fake timers in the application's tests (jest.useFakeTimers) do not keep the commands corked", async () => {
    const client = await connect();
    jest.useFakeTimers();
    try {
      corkWritesForThisTurn(client);
      expect(await client.incr('coalesce:fake')).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });
});
