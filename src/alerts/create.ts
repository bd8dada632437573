import type { ResolvedConfig } from '../config/options';
import type { DaymindStats, RequestEvent } from '../http/observe';
import type { Plan } from '../limits/plans';
import type { RedisClientLike } from '../redis/types';
import { JsonFileKeyStore } from '../store/json/json-file-store';
import { RedisKeyStore } from '../store/redis/redis-store';
import type { KeyStore } from '../store/types';
import type { UsageRecorder } from '../usage/recorder';
import { FileAlertLog, alertsPathFor } from './log-file';
import { MemoryAlertLog } from './log-memory';
import { RedisAlertLog } from './log-redis';
import type { AlertLog } from './types';
import { AlertWatcher } from './watcher';

/** Where alerts are claimed: beside the JSON store, in the store's Redis, else in memory. */
function alertLogFor(config: ResolvedConfig, store: KeyStore, redis: RedisClientLike | undefined): AlertLog {
  if (store instanceof JsonFileKeyStore) return new FileAlertLog(alertsPathFor(store.path), config.onError);
  if (store instanceof RedisKeyStore && redis) return new RedisAlertLog(redis, config.redisPrefix);
  return new MemoryAlertLog();
}

/** The alert watcher of daymindAuth(), undefined when alerts are off. */
export function createAlerts(
  config: ResolvedConfig,
  store: KeyStore,
  recorder: UsageRecorder,
  plans: ReadonlyMap<string, Plan>,
  redis: RedisClientLike | undefined,
): AlertWatcher | undefined {
  if (!config.alerts) return undefined;
  return new AlertWatcher({
    store,
    recorder,
    plans,
    log: alertLogFor(config, store, redis),
    settings: config.alerts,
    now: config.now,
    onError: config.onError,
  });
}

/** The request listener that notes a key's refusals by a rate limit. */
export function rateLimitListener(alerts: AlertWatcher): (event: RequestEvent) => void {
  return (event) => {
    if (event.outcome === 'key_rate_limited' && event.keyHash !== undefined) alerts.noteRateLimited(event.keyHash);
  };
}

/** The alert figures of stats(): null without alerts. */
export function alertStatsOf(alerts: AlertWatcher | undefined): Pick<DaymindStats, 'alertsEmitted' | 'alertsDelivered' | 'alertsFailed'> {
  const s = alerts?.stats();
  return { alertsEmitted: s?.emitted ?? null, alertsDelivered: s?.delivered ?? null, alertsFailed: s?.failed ?? null };
}
