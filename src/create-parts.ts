import { join } from 'node:path';
import type { ResolvedConfig } from './config/options';
import { DaymindError } from './errors';
import type { DaymindStats } from './http/observe';
import { BillingDispatcher, type BillingStats } from './billing/dispatcher';
import { LocalLedgerProvider } from './billing/ledger';
import { Outbox } from './billing/outbox';
import { PaddleBillingProvider, paddleAccount } from './billing/paddle';
import { StripeBillingProvider } from './billing/stripe';
import { connectRedis, watchRedisHealth } from './redis/connection';
import type { RedisClientLike } from './redis/types';
import { JsonFileKeyStore } from './store/json/json-file-store';
import { migrationMessage, readMigrationNote } from './store/json/migrated';
import { MemoryKeyStore } from './store/memory';
import { PostgresKeyStore } from './store/postgres/postgres-store';
import { RedisKeyStore } from './store/redis/redis-store';
import type { Plan } from './limits/plans';
import type { KeyRecord, KeyStore } from './store/types';
import type { UsageHistory } from './usage/history';
import { FileUsageHistory, historyDirFor } from './usage/history-file';
import { MemoryUsageHistory } from './usage/history-memory';
import { PostgresUsageHistory } from './usage/history-postgres';
import { RedisUsageHistory } from './usage/history-redis';

/* The parts daymindAuth() composes, made from the resolved configuration. */

/** The billing dispatcher of the configured mode; `plans`: the plans in force (they may change while the process runs). */
export function createBilling(config: ResolvedConfig, plans: ReadonlyMap<string, Plan>): BillingDispatcher | undefined {
  if (config.billing === false) return undefined;
  const dir = config.ledgerDir;
  // In Stripe mode the dispatcher writes the ledger, one append for all the reports Stripe took.
  const outbox = new Outbox(join(dir, 'billing-outbox.jsonl'));
  const remote =
    config.billing === 'stripe'
      ? new StripeBillingProvider({ ...config.stripe!, onError: config.onError, now: config.now })
      : config.billing === 'paddle'
        ? paddleProvider(config, outbox)
        : undefined;
  const provider = typeof config.billing === 'object' ? config.billing : (remote ?? new LocalLedgerProvider(dir, config.now));
  return new BillingDispatcher(outbox, provider, {
    intervalMs: config.billingIntervalMs,
    deadLetterPath: join(dir, 'billing-dead-letter.jsonl'),
    onError: config.onError,
    windowSeconds: config.billingWindowSeconds,
    // Batches formed before a window's end may still be on their way to the store and the outbox.
    closeAfterMs: 2 * config.flushIntervalMs + 1000,
    concurrency: config.billingConcurrency,
    callsPerSecond: config.billingMaxCallsPerSecond,
    ledger: remote && new LocalLedgerProvider(dir, config.now),
    unpaced: remote && ((report) => !remote.calls(report)),
    now: config.now,
    customerOf: config.billing === 'paddle' ? paddleCustomerOf(config, plans) : undefined,
  });
}

function paddleProvider(config: ResolvedConfig, outbox: Outbox): PaddleBillingProvider {
  const { apiKey, environment, apiBase, recheckAfterMs } = config.paddle!;
  return new PaddleBillingProvider({
    apiKey,
    environment,
    apiBase,
    recheckAfterMs,
    journalPath: join(config.ledgerDir, 'paddle-charges.jsonl'),
    // Read under the delivery lock just before the reports are handed out: what it holds is what may still be delivered.
    stillPending: (identifier) => outbox.state.reports.has(identifier),
    onError: config.onError,
    now: config.now,
  });
}

/** Paddle mode's account of a key: its subscription and the price of its plan as it is in force, else PADDLE_PRICE_ID. */
function paddleCustomerOf(config: ResolvedConfig, plans: ReadonlyMap<string, Plan>): (record: KeyRecord) => string | null {
  const { priceId } = config.paddle!;
  return (record) =>
    record.paddle_subscription_id
      ? paddleAccount(record.paddle_subscription_id, (record.plan && plans.get(record.plan)?.paddlePriceId) || priceId)
      : null;
}

/** The billing figures of stats(): null without billing. */
export function billingStatsOf(
  stats: BillingStats | undefined,
): Pick<DaymindStats, 'billingOutboxDepth' | 'billingOldestPendingSeconds' | 'billingOutboxBytes'> {
  return {
    billingOutboxDepth: stats?.depth ?? null,
    billingOldestPendingSeconds: stats?.oldestPendingSeconds ?? null,
    billingOutboxBytes: stats?.outboxBytes ?? null,
  };
}

/** Where per-day history goes: the option, else beside the store (memory for keys held in memory). */
export function createHistory(config: ResolvedConfig, store: KeyStore, redis: RedisClientLike | undefined): UsageHistory | undefined {
  if (config.history === false) return undefined;
  if (config.history) return config.history;
  if (store instanceof JsonFileKeyStore) return new FileUsageHistory({ dir: historyDirFor(store.path), now: config.now });
  if (store instanceof RedisKeyStore && redis) return new RedisUsageHistory({ client: redis, prefix: config.redisPrefix });
  if (store instanceof PostgresKeyStore) return new PostgresUsageHistory({ pool: store.pool, schema: store.schema, now: config.now });
  return new MemoryUsageHistory(config.now);
}

/** The Redis client to use, and whether daymind-auth made it (and so closes it). */
export function createRedis(config: ResolvedConfig): { client: RedisClientLike; owned: boolean } | undefined {
  if (config.redis === undefined) return undefined;
  const owned = typeof config.redis === 'string';
  const client =
    typeof config.redis === 'string'
      ? connectRedis(config.redis, 'the Redis setting (REDIS_URL or redis)', config.redisCommandTimeoutMs)
      : config.redis;
  watchRedisHealth(client, config.onError);
  return { client, owned };
}

export function createStore(config: ResolvedConfig, redis: RedisClientLike | undefined): KeyStore {
  if (config.store) return config.store;
  if (config.keyStore === 'memory') return new MemoryKeyStore({ keys: config.keys, keyPrefix: config.keyPrefix, now: config.now });
  if (config.keyStore === 'redis') {
    return new RedisKeyStore({
      client: redis!,
      prefix: config.redisPrefix,
      failureMode: config.redisFailureMode,
      keyPrefix: config.keyPrefix,
      onError: config.onError,
      now: config.now,
    });
  }
  if (config.keyStore === 'postgres') {
    const { url, schema, failureMode, timeoutMs } = config.database!;
    return new PostgresKeyStore({
      ...(typeof url === 'string' ? { url } : { pool: url }),
      schema,
      failureMode,
      timeoutMs,
      keyPrefix: config.keyPrefix,
      onError: config.onError,
      now: config.now,
    });
  }
  const store = new JsonFileKeyStore({
    path: config.storePath,
    reloadIntervalMs: config.reloadIntervalMs,
    keyPrefix: config.keyPrefix,
    onError: config.onError,
    usageJournal: config.usageJournal,
    now: config.now,
  });
  // A store moved to Redis by `daymind-keys migrate` keeps working, but not unnoticed.
  const migrated = readMigrationNote(store.path);
  if (migrated) {
    const settings = migrated.to.startsWith('postgres') ? 'KEY_STORE=postgres and DATABASE_URL' : 'KEY_STORE=redis and REDIS_URL';
    const message = `${migrationMessage(store.path, migrated)}; this server still uses the file (set ${settings} to use them)`;
    config.onError(new DaymindError('ERR_DAYMIND_CONFIG', message));
  }
  return store;
}
