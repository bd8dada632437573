import type { KeyStore } from '../store/types';
import type { RateLimiterAdapter } from '../limits/types';
import type { RedisClientLike } from '../redis/types';
import type { BillingProvider } from '../billing/types';
import type { UsageHistory } from '../usage/history';
import type { NextFunction, Request, Response } from 'express';
import type { Refusal } from '../http/responses';
import type { Plan, PlansInput } from '../limits/plans';
import type { UsageJournalOptions } from '../store/json/json-file-store';
import type { PgPoolLike } from './setting-values';
import type { PaddleSettings } from '../billing/settings';
import type { AlertSettings } from '../alerts/settings';

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
