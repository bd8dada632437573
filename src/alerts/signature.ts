import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/* Standard Webhooks (https://www.standardwebhooks.com): the signature of a delivery. */

const SECRET_PREFIX = 'whsec_';
/** How far a delivery's timestamp may be from the receiver's clock, in seconds (the standard's 5 minutes). */
export const TIMESTAMP_TOLERANCE_SECONDS = 5 * 60;

/** The key bytes of a `whsec_` secret; undefined when it is not one (base64 of at least 24 bytes). */
export function secretBytes(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const text = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length >= 24 && bytes.length <= 64 ? bytes : undefined;
}

/** A new signing secret in the standard's form: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secretBytes(secret);
  if (!key) throw new Error('the webhook secret must be "whsec_" followed by base64 of 24 to 64 bytes');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The headers of one delivery. */
export function webhookHeaders(secret: string, id: string, timestamp: number, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, id, timestamp, body),
  };
}

export interface VerifyWebhookOptions {
  /** The receiver's clock, in ms. Default `Date.now`. */
  now?: () => number;
  /** Largest distance between the delivery's timestamp and now, in seconds. Default 300. */
  toleranceSeconds?: number;
}

/** Thrown by {@link verifyWebhook} when a delivery is not genuine or not fresh. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

type HeaderBag = Record<string, string | string[] | undefined> | { get(name: string): string | null };

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function')
    return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  const value = bag[name] ?? Object.entries(bag).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks a delivery the Standard Webhooks way, for the receiving side: the `webhook-signature`
 * must hold a `v1` signature of `webhook-id.webhook-timestamp.body` with `secret`, and the
 * timestamp must be within 5 minutes of now. `body` is the raw body, exactly as received.
 * Answers the parsed body; throws {@link WebhookVerificationError} otherwise.
 */
export function verifyWebhook(secret: string, headers: HeaderBag, body: string | Buffer, options: VerifyWebhookOptions = {}): unknown {
  const key = secretBytes(secret);
  if (!key) throw new WebhookVerificationError('the secret is not a whsec_ secret');
  const id = header(headers, 'webhook-id');
  const stamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !stamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d{1,12}$/.test(stamp)) throw new WebhookVerificationError('webhook-timestamp is not Unix seconds');
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  const tolerance = options.toleranceSeconds ?? TIMESTAMP_TOLERANCE_SECONDS;
  if (Math.abs(now - Number(stamp)) > tolerance) throw new WebhookVerificationError('webhook-timestamp is too old or too new');
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const expected = createHmac('sha256', key).update(`${id}.${stamp}.${text}`).digest();
  const match = signatures.split(' ').some((entry) => {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) return false;
    const given = Buffer.from(value, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!match) throw new WebhookVerificationError('no valid v1 signature');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new WebhookVerificationError('the body is not JSON');
  }
}
