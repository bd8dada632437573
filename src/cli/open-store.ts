import { describeError } from '../errors';
import { connectRedis, whenReady } from '../redis/connection';
import { JsonFileKeyStore } from '../store/json/json-file-store';
import { PostgresKeyStore } from '../store/postgres/postgres-store';
import { redactDatabaseUrl } from '../store/postgres/connect';
import { RedisKeyStore } from '../store/redis/redis-store';
import { PostgresUsageHistory } from '../usage/history-postgres';
import type { UsageHistory } from '../usage/history';
import { RedisUsageHistory } from '../usage/history-redis';
import { CommandError } from './errors';

/** A store the CLI administers, and how to let go of it. */
export interface AdminStore {
  store: JsonFileKeyStore | RedisKeyStore | PostgresKeyStore;
  /** A Redis or PostgreSQL store's per-day usage history, beside its keys (`report`). */
  redisHistory?: UsageHistory;
  close(): Promise<void>;
}

export type StoreLocation =
  { kind: 'file'; path: string } | { kind: 'redis'; url: string; prefix: string } | { kind: 'postgres'; url: string; schema: string };

/** A Redis or PostgreSQL URL fit to print: its password replaced by ***. */
export function redactUrl(url: string): string {
  return redactDatabaseUrl(url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@'));
}

/** Connects to a PostgreSQL store (its tables created when missing). */
async function openPostgres(location: { url: string; schema: string }, now: () => number): Promise<AdminStore> {
  const store = new PostgresKeyStore({
    url: location.url,
    schema: location.schema,
    pollIntervalMs: 0,
    listen: false,
    timeoutMs: 10_000,
    onError: () => undefined,
    now,
  });
  try {
    await store.init();
    await store.list();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new CommandError(
      `cannot use the PostgreSQL store at ${redactUrl(location.url)} (schema ${location.schema}): ${describeError(err)}`,
    );
  }
  return {
    store,
    redisHistory: new PostgresUsageHistory({ pool: store.pool, schema: location.schema, now }),
    close: () => store.close(),
  };
}

/** Opens a JSON file store (created only when `create`), or connects to a Redis store; `now` is their clock. */
export async function openAdminStore(location: StoreLocation, create: boolean, now: () => number): Promise<AdminStore> {
  if (location.kind === 'file') {
    const store = new JsonFileKeyStore({ path: location.path, create, reloadIntervalMs: 0, now });
    return { store, close: () => store.close() };
  }
  if (location.kind === 'postgres') return openPostgres(location, now);
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
