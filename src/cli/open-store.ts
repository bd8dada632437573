import { describeError } from '../errors';
import { connectRedis, whenReady } from '../redis/connection';
import { JsonFileKeyStore } from '../store/json-file';
import { RedisKeyStore } from '../store/redis';
import type { UsageHistory } from '../usage/history';
import { RedisUsageHistory } from '../usage/history-redis';
import { CommandError } from './errors';

/** A store the CLI administers, and how to let go of it. */
export interface AdminStore {
  store: JsonFileKeyStore | RedisKeyStore;
  /** A Redis store's per-day usage history, in the same Redis (`report`). */
  redisHistory?: UsageHistory;
  close(): Promise<void>;
}

export type StoreLocation = { kind: 'file'; path: string } | { kind: 'redis'; url: string; prefix: string };

/** A Redis URL fit to print: its password replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/** Opens a JSON file store (created only when `create`), or connects to a Redis store; `now` is their clock. */
export async function openAdminStore(location: StoreLocation, create: boolean, now: () => number): Promise<AdminStore> {
  if (location.kind === 'file') {
    const store = new JsonFileKeyStore({ path: location.path, create, reloadIntervalMs: 0, now });
    return { store, close: () => store.close() };
  }
  const client = connectRedis(location.url, '--redis', 2000);
  client.on('error', () => undefined); // reported below, once, as one line
  try {
    await whenReady(client, 3000);
  } catch (err) {
    client.disconnect();
    throw new CommandError(`cannot reach Redis at ${redactUrl(location.url)}: ${describeError(err)}`);
  }
  const store = new RedisKeyStore({ client, prefix: location.prefix, pollIntervalMs: 0, onError: () => undefined, now });
  await store.init();
  return {
    store,
    redisHistory: new RedisUsageHistory({ client, prefix: location.prefix }),
    close: async () => {
      await store.close();
      await client.quit().catch(() => client.disconnect());
    },
  };
}
