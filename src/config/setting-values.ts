import { dirname } from 'node:path';
import { isPlausibleKey } from '../keys';
import type { RedisClientLike } from '../redis/types';
import { secretBytes } from '../alerts/signature';

/* What a setting's value may be: the patterns, defaults and parsers of the settings table (settings.ts). */

/** What is wrong with a setting's value, e.g. `must be "open" or "closed", got "x"`. */
export class SettingProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingProblem';
  }
}

export function problem(message: string): never {
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

export const MAX_LIMIT = 1_000_000_000;

/** A whole number from 1 to `max`, given as a number or as digits. */
export function wholeNumber(value: unknown, max = MAX_LIMIT): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0 || n > max) {
    problem(`must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function oneOf<T extends string>(value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) {
    const names = choices.map((c) => `"${c}"`);
    problem(`must be ${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

export function keyList(value: unknown): string[] {
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

export function redisOption(value: unknown): string | RedisClientLike {
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

export function databaseOption(value: unknown): string | PgPoolLike {
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

/** A webhook receiver as the `webhooks` option gives it (a URL alone takes the `webhookSecret`). */
export interface WebhookInput {
  url: string;
  secret?: string;
}

export const WEBHOOK_SECRET_FORM = 'must be a Standard Webhooks secret: "whsec_" followed by base64 of 24 to 64 bytes';

export function webhookUrl(value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) problem(`must be http(s) URLs, got ${JSON.stringify(value)}`);
  return value as string;
}

export function webhookList(value: unknown): WebhookInput[] {
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

export function smtpUrl(value: unknown): string {
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
