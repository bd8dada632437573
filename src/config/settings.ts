import { PADDLE_PRICE_ID } from '../billing/paddle-client';
import { windowSeconds } from '../billing/windows';
import type { RedisClientLike } from '../redis/types';
import type { BillingProvider } from '../billing/types';
import { secretBytes } from '../alerts/signature';

import {
  DATABASE_SCHEMA_PROBLEM,
  DEFAULT_DATABASE_SCHEMA,
  DEFAULT_REDIS_PREFIX,
  DEFAULT_STORE_PATH,
  PADDLE_PRICE_PROBLEM,
  PADDLE_REQUIRED,
  type PgPoolLike,
  REDIS_PREFIX_PROBLEM,
  STRIPE_KEY_REQUIRED,
  SettingProblem,
  WEBHOOK_SECRET_FORM,
  type WebhookInput,
  databaseOption,
  isDatabaseSchema,
  isRedisPrefix,
  keyList,
  oneOf,
  problem,
  redisOption,
  smtpUrl,
  webhookList,
  wholeNumber,
} from './setting-values';

/**
 * The settings, in one place: each one's option name, environment variable, default and parser.
 * resolveConfig (and the billing settings) and the daymind-keys tool both read them from here.
 *
 * A parser returns the value, or throws a {@link SettingProblem} that says what is wrong without
 * naming the setting; the caller names it (the option or variable for the library, the flag or
 * variable for the tool) in its own kind of error.
 */

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
