import { PADDLE_SUBSCRIPTION_ID } from '../billing/paddle-client';
import { assertOwner } from '../store/record';
import type { CommandOptions } from './commands';
import { UsageError } from './errors';

/* The key flags of create and set (--meta, --email, --stripe-customer, --paddle-subscription, --rate-limit, an owner), checked. */

export function parseMeta(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs) return undefined;
  const meta: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(key)) throw new UsageError(`--meta: "${pair}" is not k=v with a key of letters, digits, _ . or -`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(pair)) throw new UsageError(`--meta: "${key}" has control characters in its value`);
    meta[key] = pair.slice(eq + 1);
  }
  return meta;
}

/** The --meta pairs with --email ADDRESS as `email=ADDRESS` (`--email none` removes it). */
export function metaPairs(options: CommandOptions): string[] | undefined {
  if (options.email === undefined) return options.meta;
  const email = options.email === 'none' ? '' : options.email.trim();
  if (email !== '' && !/^[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+$/.test(email))
    throw new UsageError(`--email: "${options.email}" is not an email address`);
  return [...(options.meta ?? []), `email=${email}`];
}

export function mergedMeta(current: Record<string, unknown> | undefined, pairs: Record<string, string>): Record<string, unknown> | null {
  const meta: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(pairs)) {
    if (value === '') delete meta[key];
    else meta[key] = value;
  }
  return Object.keys(meta).length > 0 ? meta : null;
}

export function parseCustomer(text: string): string {
  if (!/^cus_[A-Za-z0-9]{1,250}$/.test(text)) throw new UsageError(`--stripe-customer: "${text}" is not a Stripe customer id (cus_...)`);
  return text;
}

export function parseSubscription(text: string): string {
  if (!PADDLE_SUBSCRIPTION_ID.test(text)) {
    throw new UsageError(`--paddle-subscription: "${text}" is not a Paddle subscription id (sub_ and 26 lowercase letters or digits)`);
  }
  return text;
}

export function parseRateLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0 || n > 1_000_000_000) {
    throw new UsageError(`--rate-limit: "${text}" is not a whole number from 1 to 1000000000`);
  }
  return n;
}

/** An owner as given on the command line: a usage error when it is not one. */
export function checkOwner(owner: string, flag = ''): string {
  try {
    assertOwner(owner);
  } catch (err) {
    throw new UsageError(flag + (err as Error).message);
  }
  return owner;
}
