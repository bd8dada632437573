import { ConfigError, safeOnError } from '../errors';
import { assertKeyPrefix, DEFAULT_KEY_PREFIX } from '../keys';
import type { UsageHistory } from '../usage/history';
import type { NextFunction, Request, Response } from 'express';
import type { Refusal } from '../http/responses';
import { parsePlans, readPlansFile, type Plan } from '../limits/plans';
import { usageJournalProblem, type UsageJournalOptions } from '../store/json/json-file-store';
import { readSetting, SETTINGS, type Setting } from './settings';
import { resolveBilling } from '../billing/settings';
import { resolveAlerts } from '../alerts/settings';

import type { DaymindOptions, ResolvedConfig } from './options';

/** A few defaults, exported as before; every setting and its default is in src/config/settings.ts. */
export const DEFAULTS = {
  storePath: SETTINGS.storePath.default,
  rateLimitPerMinute: SETTINGS.rateLimitPerMinute.default,
  ipRateLimitPerMinute: SETTINGS.ipRateLimitPerMinute.default as number,
  flushIntervalMs: SETTINGS.flushIntervalMs.default,
  reloadIntervalMs: SETTINGS.reloadIntervalMs.default,
} as const;

type Env = Record<string, string | undefined>;

const configError = (name: string, message: string): Error => new ConfigError(name, message);

/** A setting from its option, else its environment variable, else its default: a bad value is a ConfigError naming it. */
export function setting<T>(row: Setting<T>, option: unknown, env: Env): T {
  return readSetting(row, option, env, configError).value;
}

function usageJournalOption(value: unknown): UsageJournalOptions | false | undefined {
  const problem = usageJournalProblem(value);
  if (problem) throw new ConfigError(problem.option, problem.message);
  return value as UsageJournalOptions | false | undefined;
}

/**
 * Where keys come from: the `store` option; else `keys` or `storePath` from the options; else
 * `API_KEYS` or `API_KEY_STORE_PATH` from the environment. Options win over the environment; the
 * two sources named at the same level are a contradiction and refused.
 */
function resolveKeySource(options: DaymindOptions, env: Env): { keys?: string[]; storePath: string } {
  const noEnv = {};
  if (options.store) {
    if (options.keys !== undefined) throw new ConfigError('keys', 'cannot be combined with the store option: add the keys to that store');
    if (options.storePath !== undefined) throw new ConfigError('storePath', 'cannot be combined with the store option');
    return { storePath: DEFAULTS.storePath };
  }
  if (options.keys !== undefined || options.storePath !== undefined) {
    if (options.keys !== undefined && options.storePath !== undefined) {
      throw new ConfigError('keys', 'cannot be combined with storePath: use the store file, or keys held in memory, not both');
    }
    if (options.keys !== undefined) return { keys: setting(SETTINGS.keys, options.keys, noEnv), storePath: DEFAULTS.storePath };
    return { storePath: setting(SETTINGS.storePath, options.storePath, noEnv) };
  }
  const envKeys = env[SETTINGS.keys.env!];
  const envPath = env[SETTINGS.storePath.env!];
  if (envKeys !== undefined && envKeys !== '') {
    if (envPath !== undefined && envPath !== '') {
      throw new ConfigError('API_KEYS', 'cannot be combined with API_KEY_STORE_PATH: use the store file, or keys held in memory, not both');
    }
    return { keys: setting(SETTINGS.keys, undefined, env), storePath: DEFAULTS.storePath };
  }
  return { storePath: setting(SETTINGS.storePath, undefined, env) };
}

function resolveKeyStoreKind(
  options: DaymindOptions,
  env: Env,
  hasKeys: boolean,
  hasRedis: boolean,
  hasDatabase: boolean,
): ResolvedConfig['keyStore'] {
  if (options.store) return 'custom';
  const fromOption = options.keyStore !== undefined;
  const name = fromOption ? 'keyStore' : 'KEY_STORE';
  const kind = setting(SETTINGS.keyStore, options.keyStore ?? undefined, env) ?? (hasKeys ? 'memory' : 'file');
  if (kind === 'redis' && !hasRedis)
    throw new ConfigError(name, 'is "redis", but no Redis is configured: set REDIS_URL (or the redis option)');
  if (kind === 'redis' && hasKeys) throw new ConfigError(name, 'is "redis", which cannot be combined with API_KEYS / keys');
  if (kind === 'postgres' && !hasDatabase)
    throw new ConfigError(name, 'is "postgres", but no database is configured: set DATABASE_URL (or the databaseUrl option)');
  if (kind === 'postgres' && hasKeys) throw new ConfigError(name, 'is "postgres", which cannot be combined with API_KEYS / keys');
  if (kind === 'memory' && !hasKeys) throw new ConfigError(name, 'is "memory", which needs the keys to hold (API_KEYS or the keys option)');
  if (kind === 'file' && hasKeys && (fromOption || env.KEY_STORE))
    throw new ConfigError(name, 'is "file", which cannot be combined with API_KEYS / keys');
  return kind;
}

/** Reads options and environment into a validated config; throws a {@link ConfigError} naming the culprit. */
export function resolveConfig(options: DaymindOptions = {}): ResolvedConfig {
  const env = options.env ?? process.env;

  const redis = setting(SETTINGS.redis, options.redis ?? undefined, env);

  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  try {
    assertKeyPrefix(keyPrefix);
  } catch (err) {
    throw new ConfigError('keyPrefix', (err as Error).message);
  }

  const { keys, storePath } = resolveKeySource(options, env);
  const databaseUrl = setting(SETTINGS.databaseUrl, options.databaseUrl ?? undefined, env);
  const keyStore = resolveKeyStoreKind(options, env, keys !== undefined, redis !== undefined, databaseUrl !== undefined);

  const queryParam = options.queryParam ?? false;
  if (queryParam !== false && (typeof queryParam !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(queryParam))) {
    throw new ConfigError('queryParam', 'must be false or a query parameter name such as "api_key"');
  }

  return {
    store: options.store,
    storePath,
    keys,
    rateLimitPerMinute: setting(SETTINGS.rateLimitPerMinute, options.rateLimitPerMinute, env),
    ipRateLimitPerMinute: setting(SETTINGS.ipRateLimitPerMinute, options.ipRateLimitPerMinute, env),
    keyPrefix,
    queryParam,
    flushIntervalMs: setting(SETTINGS.flushIntervalMs, options.flushIntervalMs, env),
    reloadIntervalMs: setting(SETTINGS.reloadIntervalMs, options.reloadIntervalMs, env),
    usageJournal: usageJournalOption(options.usageJournal),
    rateLimiter: options.rateLimiter,
    redis,
    keyStore,
    redisFailureMode: setting(SETTINGS.redisFailureMode, options.redisFailureMode, env),
    redisPrefix: setting(SETTINGS.redisPrefix, options.redisPrefix, env),
    redisCommandTimeoutMs: setting(SETTINGS.redisCommandTimeoutMs, options.redisCommandTimeoutMs, env),
    database:
      keyStore === 'postgres'
        ? {
            url: databaseUrl!,
            schema: setting(SETTINGS.databaseSchema, options.databaseSchema, env),
            failureMode: setting(SETTINGS.databaseFailureMode, options.databaseFailureMode, env),
            timeoutMs: setting(SETTINGS.databaseTimeoutMs, options.databaseTimeoutMs, env),
          }
        : undefined,
    ...resolveBilling(options, env, keyStore, storePath),
    history: resolveHistory(options.history),
    now: resolveClock(options.now),
    plans: resolvePlans(options.plans, env),
    plansFile: options.plans === undefined ? setting(SETTINGS.plansFile, undefined, env) : undefined,
    cost: optionalFunction<(req: Request) => number>('cost', options.cost),
    billable: optionalFunction<(req: Request, res: Response) => boolean>('billable', options.billable),
    skip: optionalFunction<(req: Request, res: Response) => boolean>('skip', options.skip),
    handler: optionalFunction<(req: Request, res: Response, next: NextFunction, refusal: Refusal) => void>('handler', options.handler),
    legacyHeaders: optionalBoolean('legacyHeaders', options.legacyHeaders),
    onError: safeOnError(options.onError),
    alerts: resolveAlerts(options, env),
  };
}

function resolveHistory(history: unknown): UsageHistory | false | undefined {
  if (history === undefined || history === false) return history;
  const h = history as Partial<UsageHistory> | null;
  if (typeof h !== 'object' || h === null || typeof h.add !== 'function' || typeof h.read !== 'function') {
    throw new ConfigError('history', 'must be false or an object with add(entries, batchId) and read(keyHash, days) methods');
  }
  return h as UsageHistory;
}

function resolvePlans(plans: unknown, env: Env): ReadonlyMap<string, Plan> {
  if (plans !== undefined) return parsePlans(plans, 'plans');
  const file = setting(SETTINGS.plansFile, undefined, env);
  return file !== undefined ? readPlansFile(file) : new Map();
}

function optionalBoolean(name: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(name, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function optionalFunction<F>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new ConfigError(name, 'must be a function');
  return value as F;
}

function resolveClock(now: unknown): () => number {
  if (now === undefined) return Date.now;
  if (typeof now !== 'function') throw new ConfigError('now', 'must be a function returning the time in ms');
  return now as () => number;
}
