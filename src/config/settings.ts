import { dirname } from 'node:path';
import { isPlausibleKey } from '../keys';
import { PADDLE_PRICE_ID } from '../billing/paddle-client';
import { windowSeconds } from '../billing/windows';
import type { RedisClientLike } from '../redis/types';
import type { BillingProvider } from '../billing/types';
import { secretBytes } from '../alerts/signature';

/**
 * The settings, in one place: each one's option name, environment variable, default and parser.
 * resolveConfig (and the billing settings) and the daymind-keys tool both read them from here.
 *
 * A parser returns the value, or throws a {@link SettingProblem} that says what is wrong without
 * naming the setting; the caller names it (the option or variable for the library, the flag or
 * variable for the tool) in its own kind of error.
 */

/** What is wrong with a setting's value, e.g. `must be "open" or "closed", got "x"`. */
export class SettingProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingProblem';
  }
}

function problem(message: string): never {
  throw new SettingProblem(message);
}

/** The JSON key store's file when nothing says otherwise. */
export const DEFAULT_STORE_PATH = 'data/api_keys.json';

/** Namespace of daymind-auth's keys in Redis when nothing says otherwise. */
export const DEFAULT_REDIS_PREFIX = 'daymind';
const REDIS_PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
export const REDIS_PREFIX_PROBLEM = 'must be 1 to 64 letters, digits or _ . : -';

export function isRedisPrefix(value: unknown): value is string {
  return typeof value === 'string' && REDIS_PREFIX.test(value);
}

/** A `redis://` or `rediss://` URL. */
export function isRedisUrl(value: unknown): value is string {
  return typeof value === 'string' && /^rediss?:\/\/\S+$/.test(value);
}

/** A scope: 1 to 64 letters, digits or _ : . - */
export const SCOPE = /^[A-Za-z0-9_:.-]{1,64}$/;

/** The usage ledger's directory when nothing names one: beside the JSON key store, else `data`. */
export function defaultLedgerDir(storeFile: string | undefined): string {
  return storeFile !== undefined ? dirname(storeFile) : 'data';
}

/** What is said when Stripe billing has no secret key. */
export const STRIPE_KEY_REQUIRED = 'is required when BILLING_MODE is "stripe"';

/** What is said when Paddle billing has no API key or price. */
export const PADDLE_REQUIRED = 'is required when BILLING_MODE is "paddle"';
export const PADDLE_PRICE_PROBLEM = (value: unknown): string =>
  `must be a Paddle price id: "pri_" and 26 lowercase letters or digits, got ${JSON.stringify(value)}`;

const MAX_LIMIT = 1_000_000_000;

/** A whole number from 1 to `max`, given as a number or as digits. */
export function wholeNumber(value: unknown, max = MAX_LIMIT): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0 || n > max) {
    problem(`must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function oneOf<T extends string>(value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) {
    const names = choices.map((c) => `"${c}"`);
    problem(`must be ${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * One setting. `env` is its environment variable (none for options only); `default` is used when
 * neither the option nor the variable is set (undefined: the caller works it out, e.g. the ledger
 * directory from the key store). `parseOption` is for options that take more than the variable's
 * text (an object, `false`); without it `parse` reads both.
 */
export interface Setting<T> {
  option: string;
  env?: string;
  default: T;
  parse(value: unknown): T;
  parseOption?(value: unknown): T;
}

function setting<T>(row: Setting<T>): Setting<T> {
  return row;
}

function keyList(value: unknown): string[] {
  const list =
    typeof value === 'string'
      ? value
          .split(',')
          .map((k) => k.trim())
          .filter((k) => k !== '')
      : value;
  if (!Array.isArray(list) || list.length === 0) problem('must list at least one key');
  list.forEach((key, i) => {
    if (typeof key !== 'string' || !isPlausibleKey(key) || key.length < 16) {
      problem(`entry ${i + 1} is not a usable key (16 to 256 printable characters, no spaces)`);
    }
  });
  return list as string[];
}

function redisOption(value: unknown): string | RedisClientLike {
  if (typeof value === 'string') {
    if (!isRedisUrl(value)) problem(`must be a redis:// or rediss:// URL, got ${JSON.stringify(value)}`);
    return value;
  }
  const client = value as Partial<RedisClientLike> | null;
  if (typeof client !== 'object' || client === null || typeof client.on !== 'function' || typeof client.status !== 'string') {
    problem('must be a redis:// URL or an ioredis client or Cluster');
  }
  return client as RedisClientLike;
}

/** The PostgreSQL schema of daymind-auth's tables when nothing says otherwise. */
export const DEFAULT_DATABASE_SCHEMA = 'daymind';
export const DATABASE_SCHEMA_PROBLEM = 'must be 1 to 48 lower-case letters, digits or _, starting with a letter';

export function isDatabaseSchema(value: unknown): value is string {
  return typeof value === 'string' && /^[a-z][a-z0-9_]{0,47}$/.test(value);
}

/** A `postgres://` or `postgresql://` URL. */
export function isDatabaseUrl(value: unknown): value is string {
  return typeof value === 'string' && /^postgres(ql)?:\/\/\S+$/.test(value);
}

/** What daymind-auth needs to know of a pg Pool passed in (structural: pg need not be installed for the types). */
export interface PgPoolLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query(...args: any[]): Promise<unknown>;
  connect(): Promise<unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  end(): Promise<void>;
}

function databaseOption(value: unknown): string | PgPoolLike {
  if (typeof value === 'string') {
    if (!isDatabaseUrl(value)) problem(`must be a postgres:// or postgresql:// URL, got ${JSON.stringify(value)}`);
    return value;
  }
  const pool = value as Partial<PgPoolLike> | null;
  if (typeof pool !== 'object' || pool === null || typeof pool.query !== 'function' || typeof pool.connect !== 'function') {
    problem('must be a postgres:// URL or a pg Pool');
  }
  return pool as PgPoolLike;
}

/** The settings, by option name. */
export const SETTINGS = {
  storePath: setting<string>({
    option: 'storePath',
    env: 'API_KEY_STORE_PATH',
    default: DEFAULT_STORE_PATH,
    parse: (value) => (typeof value === 'string' && value.trim() !== '' ? value : problem('must be a file path')),
  }),
  keys: setting<string[] | undefined>({ option: 'keys', env: 'API_KEYS', default: undefined, parse: keyList }),
  rateLimitPerMinute: setting<number>({
    option: 'rateLimitPerMinute',
    env: 'API_RATE_LIMIT_PER_MINUTE',
    default: 120,
    parse: (value) => wholeNumber(value),
  }),
  ipRateLimitPerMinute: setting<number | false>({
    option: 'ipRateLimitPerMinute',
    env: 'IP_RATE_LIMIT_PER_MINUTE',
    default: 240,
    parse: (value) => (value === false || value === 'off' ? false : wholeNumber(value)),
  }),
  flushIntervalMs: setting<number>({ option: 'flushIntervalMs', default: 1000, parse: (value) => wholeNumber(value, 3_600_000) }),
  reloadIntervalMs: setting<number>({ option: 'reloadIntervalMs', default: 500, parse: (value) => wholeNumber(value, 60_000) }),
  redis: setting<string | RedisClientLike | undefined>({ option: 'redis', env: 'REDIS_URL', default: undefined, parse: redisOption }),
  /** Its default follows from the other settings: `memory` with keys held in memory, else `file`. */
  keyStore: setting<'file' | 'redis' | 'memory' | 'postgres' | undefined>({
    option: 'keyStore',
    env: 'KEY_STORE',
    default: undefined,
    parse: (value) => oneOf(value, ['file', 'redis', 'memory', 'postgres'] as const),
  }),
  redisFailureMode: setting<'open' | 'closed'>({
    option: 'redisFailureMode',
    env: 'REDIS_FAILURE_MODE',
    default: 'open',
    parse: (value) => oneOf(value, ['open', 'closed'] as const),
  }),
  redisPrefix: setting<string>({
    option: 'redisPrefix',
    env: 'REDIS_PREFIX',
    default: DEFAULT_REDIS_PREFIX,
    parse: (value) => (isRedisPrefix(value) ? value : problem(REDIS_PREFIX_PROBLEM)),
  }),
  redisCommandTimeoutMs: setting<number>({ option: 'redisCommandTimeoutMs', default: 500, parse: (value) => wholeNumber(value, 60_000) }),
  // PostgreSQL key store (KEY_STORE=postgres).
  /** A `postgres://` URL, or a pg Pool (left open by daymind-auth). */
  databaseUrl: setting<string | PgPoolLike | undefined>({
    option: 'databaseUrl',
    env: 'DATABASE_URL',
    default: undefined,
    parse: databaseOption,
  }),
  databaseSchema: setting<string>({
    option: 'databaseSchema',
    env: 'DATABASE_SCHEMA',
    default: DEFAULT_DATABASE_SCHEMA,
    parse: (value) => (isDatabaseSchema(value) ? value : problem(DATABASE_SCHEMA_PROBLEM)),
  }),
  databaseFailureMode: setting<'open' | 'closed'>({
    option: 'databaseFailureMode',
    env: 'DATABASE_FAILURE_MODE',
    default: 'open',
    parse: (value) => oneOf(value, ['open', 'closed'] as const),
  }),
  databaseTimeoutMs: setting<number>({ option: 'databaseTimeoutMs', default: 500, parse: (value) => wholeNumber(value, 60_000) }),
  /** The variable says `off` where the option says `false`; its default follows from the key store. */
  billing: setting<BillingProvider | 'local' | 'stripe' | 'paddle' | false | undefined>({
    option: 'billing',
    env: 'BILLING_MODE',
    default: undefined,
    parse: (value) => {
      const mode = oneOf(value, ['local', 'stripe', 'paddle', 'off'] as const);
      return mode === 'off' ? false : mode;
    },
    parseOption: (value) => {
      const b = value as Partial<BillingProvider> | string | false | null;
      const named = b === 'local' || b === 'stripe' || b === 'paddle';
      if (b !== false && !named && (typeof b !== 'object' || b === null || typeof b.deliver !== 'function')) {
        problem('must be "local", "stripe", "paddle", false or an object with a deliver(report) method');
      }
      return b as BillingProvider | 'local' | 'stripe' | 'paddle' | false;
    },
  }),
  /** Its default is {@link defaultLedgerDir} of the JSON key store. */
  ledgerDir: setting<string | undefined>({
    option: 'ledgerDir',
    env: 'DAYMIND_LEDGER_DIR',
    default: undefined,
    parse: (value) => (typeof value === 'string' && value.trim() !== '' ? value : problem('must be a directory path')),
  }),
  billingIntervalMs: setting<number>({ option: 'billingIntervalMs', default: 1000, parse: (value) => wholeNumber(value, 3_600_000) }),
  /** In seconds. */
  billingWindow: setting<number>({
    option: 'billingWindow',
    env: 'BILLING_WINDOW',
    default: 60,
    parse: (value) => {
      const seconds = windowSeconds(value);
      return typeof seconds === 'string' ? problem(seconds) : seconds;
    },
  }),
  billingConcurrency: setting<number>({
    option: 'billingConcurrency',
    env: 'BILLING_CONCURRENCY',
    default: 32,
    parse: (value) => wholeNumber(value, 1000),
  }),
  billingMaxCallsPerSecond: setting<number>({
    option: 'billingMaxCallsPerSecond',
    env: 'BILLING_MAX_CALLS_PER_SECOND',
    default: 250,
    parse: (value) => wholeNumber(value, 100_000),
  }),
  /** Required with `BILLING_MODE=stripe`. */
  stripeSecretKey: setting<string | undefined>({
    option: 'stripeSecretKey',
    env: 'STRIPE_SECRET_KEY',
    default: undefined,
    parse: (value) => (value ? (value as string) : problem(STRIPE_KEY_REQUIRED)),
  }),
  stripeMeterEventName: setting<string>({
    option: 'stripeMeterEventName',
    env: 'STRIPE_METER_EVENT_NAME',
    default: 'api_requests',
    parse: (value) => (/^\S{1,100}$/.test(String(value)) ? (value as string) : problem('must be 1 to 100 characters without spaces')),
  }),
  stripeApiBase: setting<string | undefined>({
    option: 'stripeApiBase',
    env: 'STRIPE_API_BASE',
    default: undefined,
    parse: (value) =>
      /^https?:\/\/[^/\s]+\/?$/.test(String(value))
        ? (value as string)
        : problem(`must be an http(s)://host[:port] URL, got ${JSON.stringify(value)}`),
  }),
  // Paddle (BILLING_MODE=paddle): see docs/billing.md.
  /** Required with `BILLING_MODE=paddle`. */
  paddleApiKey: setting<string | undefined>({
    option: 'paddleApiKey',
    env: 'PADDLE_API_KEY',
    default: undefined,
    parse: (value) => (typeof value === 'string' && value.trim() !== '' ? value : problem(PADDLE_REQUIRED)),
  }),
  /** The usage price charged per unit; required with `BILLING_MODE=paddle` (a plan's `paddle_price_id` overrides it). */
  paddlePriceId: setting<string | undefined>({
    option: 'paddlePriceId',
    env: 'PADDLE_PRICE_ID',
    default: undefined,
    parse: (value) => (PADDLE_PRICE_ID.test(String(value)) ? (value as string) : problem(PADDLE_PRICE_PROBLEM(value))),
  }),
  paddleEnvironment: setting<'production' | 'sandbox'>({
    option: 'paddleEnvironment',
    env: 'PADDLE_ENVIRONMENT',
    default: 'production',
    parse: (value) => oneOf(value, ['production', 'sandbox'] as const),
  }),
  paddleApiBase: setting<string | undefined>({
    option: 'paddleApiBase',
    env: 'PADDLE_API_BASE',
    default: undefined,
    parse: (value) =>
      /^https?:\/\/[^/\s]+\/?$/.test(String(value))
        ? (value as string)
        : problem(`must be an http(s)://host[:port] URL, got ${JSON.stringify(value)}`),
  }),
  /** How long after an unanswered charge its outcome is looked up at Paddle, in ms. */
  paddleRecheckAfterMs: setting<number>({
    option: 'paddleRecheckAfterMs',
    default: 60_000,
    parse: (value) => wholeNumber(value, 3_600_000),
  }),
  /** The plans file; the `plans` option gives the plans themselves instead (see resolveConfig). */
  plansFile: setting<string | undefined>({
    option: 'plans',
    env: 'DAYMIND_PLANS_FILE',
    default: undefined,
    parse: (value) => (typeof value === 'string' ? value.trim() || undefined : undefined),
  }),
  // Usage alerts (webhooks) and email summaries: see docs/alerts.md.
  /** Webhook receivers: comma-separated http(s) URLs (the option also takes `{ url, secret }` objects). */
  webhooks: setting<WebhookInput[] | undefined>({
    option: 'webhooks',
    env: 'DAYMIND_WEBHOOK_URL',
    default: undefined,
    parse: (value) =>
      webhookList(
        typeof value === 'string'
          ? value
              .split(',')
              .map((u) => u.trim())
              .filter((u) => u !== '')
          : value,
      ),
  }),
  /** The Standard Webhooks signing secret, `whsec_` and base64; required with webhooks. */
  webhookSecret: setting<string | undefined>({
    option: 'webhookSecret',
    env: 'DAYMIND_WEBHOOK_SECRET',
    default: undefined,
    parse: (value) => (typeof value === 'string' && secretBytes(value.trim()) ? value.trim() : problem(WEBHOOK_SECRET_FORM)),
  }),
  /** Alerts on or off; on by default when webhooks are configured. */
  alerts: setting<boolean | undefined>({
    option: 'alerts',
    env: 'DAYMIND_ALERTS',
    default: undefined,
    parse: (value) => oneOf(value, ['on', 'off'] as const) === 'on',
    parseOption: (value) => (typeof value === 'boolean' ? value : problem(`must be true or false, got ${JSON.stringify(value)}`)),
  }),
  alertQuotaPercents: setting<number[]>({
    option: 'alertQuotaPercents',
    env: 'DAYMIND_ALERT_QUOTA_PERCENTS',
    default: [80, 100],
    parse: (value) => {
      const list = typeof value === 'string' ? value.split(',').map((p) => p.trim()) : value;
      if (!Array.isArray(list) || list.length === 0) problem('must list percentages, e.g. 80,100');
      return [...new Set(list.map((p) => wholeNumber(p, 1000)))].sort((a, b) => a - b);
    },
  }),
  alertCreditsBelow: setting<number>({
    option: 'alertCreditsBelow',
    env: 'DAYMIND_ALERT_CREDITS_BELOW',
    default: 100,
    parse: (value) => wholeNumber(value),
  }),
  alertExpiringDays: setting<number>({
    option: 'alertExpiringDays',
    env: 'DAYMIND_ALERT_EXPIRING_DAYS',
    default: 7,
    parse: (value) => wholeNumber(value, 365),
  }),
  alertIntervalMs: setting<number>({ option: 'alertIntervalMs', default: 5000, parse: (value) => wholeNumber(value, 3_600_000) }),
  /** The SMTP server of `daymind-keys report --email`, e.g. `smtp://user:pass@host:587`. */
  smtpUrl: setting<string | undefined>({
    option: 'smtpUrl',
    env: 'SMTP_URL',
    default: undefined,
    parse: (value) => smtpUrl(value),
  }),
  smtpFrom: setting<string | undefined>({
    option: 'smtpFrom',
    env: 'SMTP_FROM',
    default: undefined,
    parse: (value) =>
      typeof value === 'string' && /^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/.test(value.trim())
        ? value.trim()
        : problem(`must be an email address, e.g. "Billing <billing@example.com>", got ${JSON.stringify(value)}`),
  }),
};

/** A webhook receiver as the `webhooks` option gives it (a URL alone takes the `webhookSecret`). */
export interface WebhookInput {
  url: string;
  secret?: string;
}

export const WEBHOOK_SECRET_FORM = 'must be a Standard Webhooks secret: "whsec_" followed by base64 of 24 to 64 bytes';

function webhookUrl(value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) problem(`must be http(s) URLs, got ${JSON.stringify(value)}`);
  return value as string;
}

function webhookList(value: unknown): WebhookInput[] {
  const list = typeof value === 'string' || (typeof value === 'object' && value !== null && !Array.isArray(value)) ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) problem('must give at least one http(s) URL');
  return list.map((entry: unknown) => {
    if (typeof entry === 'string') return { url: webhookUrl(entry) };
    const e = entry as Partial<WebhookInput> | null;
    if (typeof e !== 'object' || e === null) problem('must be http(s) URLs or { url, secret } objects');
    if (e.secret !== undefined && (typeof e.secret !== 'string' || !secretBytes(e.secret)))
      problem(`secret of ${String(e.url)} ${WEBHOOK_SECRET_FORM}`);
    return e.secret === undefined ? { url: webhookUrl(e.url) } : { url: webhookUrl(e.url), secret: e.secret };
  });
}

function smtpUrl(value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || url.hostname === '') {
    problem(`must be an smtp:// or smtps:// URL such as smtp://user:pass@mail.example.com:587, got ${JSON.stringify(value)}`);
  }
  return value as string;
}

/**
 * A setting's value and the name it came by: the option when given, else the variable when set
 * and not empty, else the default (named by the variable). `fail` turns a parser's complaint
 * into the caller's own error.
 */
export function readSetting<T>(
  row: Setting<T>,
  option: unknown,
  env: Record<string, string | undefined>,
  fail: (name: string, message: string) => Error,
): { value: T; name: string } {
  const run = (name: string, parse: (value: unknown) => T, value: unknown) => {
    try {
      return { value: parse(value), name };
    } catch (err) {
      if (err instanceof SettingProblem) throw fail(name, err.message);
      throw err;
    }
  };
  if (option !== undefined) return run(row.option, row.parseOption ?? row.parse, option);
  const raw = row.env !== undefined ? env[row.env] : undefined;
  if (raw === undefined || raw === '') return { value: row.default, name: row.env ?? row.option };
  return run(row.env!, row.parse, raw);
}
