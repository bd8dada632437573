import { ConfigError, safeOnError } from '../errors';
import { assertKeyPrefix, DEFAULT_KEY_PREFIX } from '../keys';
import type { KeyStore } from '../store/types';
import type { RateLimiterAdapter } from '../limits/types';
import type { RedisClientLike } from '../redis/types';
import type { BillingProvider } from '../billing/types';
import type { UsageHistory } from '../usage/history';
import type { NextFunction, Request, Response } from 'express';
import type { Refusal } from '../http/responses';
import { parsePlans, readPlansFile, type Plan, type PlansInput } from '../limits/plans';
import { usageJournalProblem, type UsageJournalOptions } from '../store/json/json-file-store';
import { readSetting, SETTINGS, type PgPoolLike, type Setting } from './settings';
import { resolveBilling, type PaddleSettings } from '../billing/settings';
import { resolveAlerts, type AlertSettings } from '../alerts/settings';

/** Options of {@link daymindAuth}. Every option wins over its environment variable. */
export interface DaymindOptions {
  /**
   * Where keys live. Default: a {@link JsonFileKeyStore} on `storePath`, or a
   * {@link MemoryKeyStore} holding `keys` when those are given.
   */
  store?: KeyStore;
  /** The JSON key-store file. Env `API_KEY_STORE_PATH`; default `data/api_keys.json`. */
  storePath?: string;
  /**
   * Keys accepted without a store file (counters are then kept in memory only). Env `API_KEYS`,
   * comma-separated. Cannot be combined with `storePath` or `store` (nor `API_KEYS` with
   * `API_KEY_STORE_PATH`); options win over the environment.
   */
  keys?: string[];
  /** Default per-key limit, requests per minute. Env `API_RATE_LIMIT_PER_MINUTE`; default 120. */
  rateLimitPerMinute?: number;
  /**
   * Per-IP limit, requests per minute, counted before authentication (so failed guesses count).
   * `false` (env: `off`) turns it off. Env `IP_RATE_LIMIT_PER_MINUTE`; default 240.
   */
  ipRateLimitPerMinute?: number | false;
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /** Name of a query parameter that may carry the key (e.g. `api_key`). Default: off. */
  queryParam?: string | false;
  /** How often usage counters are written to the store, in ms. Default 1000. */
  flushIntervalMs?: number;
  /** How often the JSON store checks its file for changes made by others, in ms. Default 500. */
  reloadIntervalMs?: number;
  /**
   * @deprecated No effect: the JSON store no longer writes a usage journal (every flush rewrites
   * the file). Still checked, so that a typo is an error; to be removed in a later version.
   */
  usageJournal?: UsageJournalOptions | false;
  /**
   * Redis for several app instances: a `redis://` or `rediss://` URL, or an ioredis client or
   * Cluster. Switches both rate limiters to Redis (exact across instances) and makes
   * `keyStore: 'redis'` possible. Env `REDIS_URL`. Needs the optional peer dependency ioredis.
   */
  redis?: string | RedisClientLike;
  /**
   * Which key store to build: `file` (the JSON file, default), `redis` (needs `redis`), `postgres`
   * (needs `databaseUrl`), or `memory` (what `keys` implies). Env `KEY_STORE`.
   */
  keyStore?: 'file' | 'redis' | 'memory' | 'postgres';
  /**
   * PostgreSQL for `keyStore: 'postgres'`: a `postgres://` URL, or a pg Pool (left open). Env
   * `DATABASE_URL`. Needs the optional peer dependency pg. See docs/scaling.md.
   */
  databaseUrl?: string | PgPoolLike;
  /** The schema of daymind-auth's tables, created on first start. Env `DATABASE_SCHEMA`; default `daymind`. */
  databaseSchema?: string;
  /**
   * While PostgreSQL is unreachable: `open` (default) answers from the key records held in memory
   * and writes usage when it returns; `closed` answers 503. Env `DATABASE_FAILURE_MODE`.
   */
  databaseFailureMode?: 'open' | 'closed';
  /** Longest wait for one PostgreSQL query of a pool made from a URL, in ms. Default 500. */
  databaseTimeoutMs?: number;
  /**
   * While Redis is unreachable: `open` (default) counts limits in process memory and answers from
   * cached key records; `closed` answers 503. Env `REDIS_FAILURE_MODE`.
   */
  redisFailureMode?: 'open' | 'closed';
  /** Namespace of daymind-auth's keys in Redis. Env `REDIS_PREFIX`; default `daymind`. */
  redisPrefix?: string;
  /** Longest wait for one Redis command, in ms. Default 500. */
  redisCommandTimeoutMs?: number;
  /**
   * Where usage goes for invoicing: `local` (the usage ledger, `ledger-YYYY-MM.jsonl`), `stripe`
   * (Stripe meter events, plus the ledger), `paddle` (one-time charges on Paddle subscriptions,
   * plus the ledger), `false` (nowhere), or your own BillingProvider. Env `BILLING_MODE`
   * (`local`, `stripe`, `paddle` or `off`); default `local`, except `off` for keys held in memory
   * (`API_KEYS`).
   */
  billing?: BillingProvider | 'local' | 'stripe' | 'paddle' | false;
  /**
   * Directory of the usage ledger, the billing outbox and its dead-letter file. Env
   * `DAYMIND_LEDGER_DIR`; default: the JSON key store's directory, else `data`.
   */
  ledgerDir?: string;
  /** How often a billing delivery round runs, in ms. Default 1000. */
  billingIntervalMs?: number;
  /**
   * The billing window: usage is reported once per key and window (`30s`, `1m`, `5m`, `1h`, `1d`;
   * it must divide a day). Env `BILLING_WINDOW`; default `1m`. See docs/billing.md.
   */
  billingWindow?: string;
  /** Calls to the billing provider in flight at once (never two for one customer). Env `BILLING_CONCURRENCY`; default 32. */
  billingConcurrency?: number;
  /** Most calls to the billing provider started a second. Env `BILLING_MAX_CALLS_PER_SECOND`; default 250. */
  billingMaxCallsPerSecond?: number;
  /** Stripe secret key (`BILLING_MODE=stripe`). Env `STRIPE_SECRET_KEY`. */
  stripeSecretKey?: string;
  /** The Stripe meter's event name. Env `STRIPE_METER_EVENT_NAME`; default `api_requests`. */
  stripeMeterEventName?: string;
  /** Another Stripe API server, e.g. stripe-mock at `http://localhost:12111`. Env `STRIPE_API_BASE`. */
  stripeApiBase?: string;
  /** Paddle API key (`BILLING_MODE=paddle`). Env `PADDLE_API_KEY`. */
  paddleApiKey?: string;
  /** The Paddle usage price (`pri_...`) charged per unit; a plan's `paddle_price_id` overrides it. Env `PADDLE_PRICE_ID`. */
  paddlePriceId?: string;
  /** `production` (default) or `sandbox`. Env `PADDLE_ENVIRONMENT`. */
  paddleEnvironment?: 'production' | 'sandbox';
  /** Another Paddle API server (a test server). Env `PADDLE_API_BASE`. */
  paddleApiBase?: string;
  /** How long after an unanswered Paddle charge its outcome is looked up at Paddle, in ms. Default 60000. */
  paddleRecheckAfterMs?: number;
  /** The rate-limiter backend. Default: rate-limiter-flexible's memory limiter, or Redis with `redis`. */
  rateLimiter?: RateLimiterAdapter;
  /**
   * Where per-key, per-day request counts go (`/usage/history`). Default: beside the key store
   * (day files next to the JSON file, or Redis hashes), in memory for `API_KEYS` or a custom
   * store; `false` keeps none.
   */
  history?: UsageHistory | false;
  /** The clock, in ms since the epoch. Default `Date.now` (tests inject another). */
  now?: () => number;
  /**
   * Plans by name: each key's `plan` field picks one, whose limits (windows) and monthly quota
   * apply. Env `DAYMIND_PLANS_FILE`: a JSON file of the same shape. A key without a plan keeps
   * the single per-minute limit. See docs/plans.md.
   */
  plans?: PlansInput;
  /** Units a request costs (default 1 each). `auth.cost(n)` sets it per route instead. */
  cost?: (req: Request) => number;
  /**
   * Decides, when the response has finished, whether an allowed request counts as usage
   * (usage_count, quota, credits, billing). Default: every allowed request counts.
   */
  billable?: (req: Request, res: Response) => boolean;
  /**
   * Requests for which it returns true go on untouched: no key check, no limit, not counted
   * (health checks, public routes), as express-rate-limit's `skip`.
   */
  skip?: (req: Request, res: Response) => boolean;
  /**
   * Answers refusals (401, 402, 403, 429, 503) instead of the JSON error, as express-rate-limit's
   * `handler`: called with the refusal (status, code, message, body); the status and the
   * RateLimit, Retry-After, WWW-Authenticate and Cache-Control fields are set already.
   */
  handler?: (req: Request, res: Response, next: NextFunction, refusal: Refusal) => void;
  /** Also send `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds), for older clients. Default false. */
  legacyHeaders?: boolean;
  /** Called with errors met in the background (store, flush). Default: one line on stderr. */
  onError?: (err: Error) => void;
  /**
   * Webhook receivers of usage alerts (quota, credits, rate limits, expiry, revocation), signed the
   * Standard Webhooks way: URLs, or `{ url, secret }`. Env `DAYMIND_WEBHOOK_URL` (comma-separated).
   * See docs/alerts.md.
   */
  webhooks?: string | string[] | Array<{ url: string; secret?: string }>;
  /** The webhooks' signing secret, `whsec_` and base64. Env `DAYMIND_WEBHOOK_SECRET`; required with webhooks. */
  webhookSecret?: string;
  /** Usage alerts on or off. Env `DAYMIND_ALERTS` (`on`/`off`); default: on when webhooks are configured. */
  alerts?: boolean;
  /** Percentages of the monthly quota that raise an alert. Env `DAYMIND_ALERT_QUOTA_PERCENTS`; default 80,100. */
  alertQuotaPercents?: number[];
  /** Prepaid credits below which an alert is raised. Env `DAYMIND_ALERT_CREDITS_BELOW`; default 100. */
  alertCreditsBelow?: number;
  /** Days before a key's expiry when an alert is raised. Env `DAYMIND_ALERT_EXPIRING_DAYS`; default 7. */
  alertExpiringDays?: number;
  /** How often keys are checked for alerts and the webhooks' outbox delivered, in ms. Default 5000. */
  alertIntervalMs?: number;
  /** Environment to read instead of `process.env` (tests, embedding). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedConfig {
  store: KeyStore | undefined;
  storePath: string;
  keys: string[] | undefined;
  rateLimitPerMinute: number;
  ipRateLimitPerMinute: number | false;
  keyPrefix: string;
  queryParam: string | false;
  flushIntervalMs: number;
  reloadIntervalMs: number;
  usageJournal: UsageJournalOptions | false | undefined;
  rateLimiter: RateLimiterAdapter | undefined;
  redis: string | RedisClientLike | undefined;
  keyStore: 'file' | 'redis' | 'memory' | 'postgres' | 'custom';
  database: { url: string | PgPoolLike; schema: string; failureMode: 'open' | 'closed'; timeoutMs: number } | undefined;
  redisFailureMode: 'open' | 'closed';
  redisPrefix: string;
  redisCommandTimeoutMs: number;
  billing: BillingProvider | 'local' | 'stripe' | 'paddle' | false;
  ledgerDir: string;
  billingIntervalMs: number;
  /** The billing window, in seconds. */
  billingWindowSeconds: number;
  billingConcurrency: number;
  billingMaxCallsPerSecond: number;
  stripe: { secretKey: string; meterEventName: string; apiBase: string | undefined } | undefined;
  paddle: PaddleSettings | undefined;
  history: UsageHistory | false | undefined;
  now: () => number;
  /** The plans in force at start-up. */
  plans: ReadonlyMap<string, Plan>;
  /** The plans file they came from (`DAYMIND_PLANS_FILE`), reloaded on change; undefined with the `plans` option or none. */
  plansFile: string | undefined;
  cost: ((req: Request) => number) | undefined;
  billable: ((req: Request, res: Response) => boolean) | undefined;
  skip: ((req: Request, res: Response) => boolean) | undefined;
  handler: ((req: Request, res: Response, next: NextFunction, refusal: Refusal) => void) | undefined;
  legacyHeaders: boolean;
  onError: (err: Error) => void;
  /** Usage alerts; undefined when off. */
  alerts: AlertSettings | undefined;
}

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
