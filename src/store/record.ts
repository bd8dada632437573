import { DaymindError } from '../errors';
import { generateKey, hashKey, displayPrefix, DEFAULT_KEY_PREFIX } from '../keys';
import { utcDay } from '../usage/day';
import { PADDLE_SUBSCRIPTION_ID } from '../billing/paddle-client';
import { SCOPE } from '../config/setting-values';
import type { CreatedKey, KeyChanges, KeyRecord, NewKeyInput, RotatedKey, UsageDelta } from './types';

/**
 * A record as it sits in a store file: the existing format's fields, the newer ones, and whatever
 * else another writer put there (kept as it is).
 */
export type RawRecord = Record<string, unknown>;

const MAX_OWNER_LENGTH = 200;

/** Throws unless `owner` is a non-empty, printable string of at most 200 characters. */
export function assertOwner(owner: unknown): asserts owner is string {
  if (typeof owner !== 'string' || owner.trim() === '') {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'owner must be a non-empty string');
  }
  if (owner.length > MAX_OWNER_LENGTH) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', `owner must be at most ${MAX_OWNER_LENGTH} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(owner)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'owner must not contain control characters');
  }
}

const PLAN = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

function invalid(message: string): never {
  throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', message);
}

/** Throws unless the plan, scopes and credit settings given are valid. */
function assertPlanChanges(changes: KeyChanges): void {
  if (changes.plan != null && (typeof changes.plan !== 'string' || !PLAN.test(changes.plan))) {
    invalid('plan must be a plan name: a letter, then letters, digits, "_" or "-" (at most 32)');
  }
  if (changes.scopes != null) {
    if (!Array.isArray(changes.scopes) || !changes.scopes.every((x) => typeof x === 'string' && SCOPE.test(x))) {
      invalid('scopes must be a list of names of letters, digits and _ : . - (at most 64 each)');
    }
  }
  if (changes.credits != null && !(Number.isSafeInteger(changes.credits) && changes.credits >= 0)) {
    invalid('credits must be a whole number of 0 or more');
  }
  if (changes.add_credits !== undefined && !Number.isSafeInteger(changes.add_credits)) invalid('the credits to add must be a whole number');
  const refill = changes.credits_refill;
  if (refill != null) {
    if (refill.interval !== 'daily' && refill.interval !== 'monthly') invalid('a credits refill is daily or monthly');
    if (!(Number.isSafeInteger(refill.amount) && refill.amount > 0))
      invalid('a credits refill amount must be a whole number greater than 0');
  }
}

/** The refill period of a time: `YYYYMMDD` for daily refills, `YYYYMM` for monthly ones. */
export function creditsPeriod(interval: 'daily' | 'monthly', nowMs: number): number {
  const day = utcDay(nowMs);
  return interval === 'daily' ? day : Math.floor(day / 100);
}

/** The UTC month of a time as `YYYYMM`. */
export function utcMonth(nowMs: number): number {
  return creditsPeriod('monthly', nowMs);
}

/** Credits a record holds at `nowMs`: refilled when its refill period has turned since. */
export function creditsAt(record: KeyRecord | RawRecord, nowMs: number): number | undefined {
  if (typeof record.credits !== 'number') return undefined;
  const refill = record.credits_refill as KeyRecord['credits_refill'];
  if (refill && record.credits_period !== creditsPeriod(refill.interval, nowMs)) return refill.amount;
  return record.credits;
}

/** Units a record counted in the UTC month of `nowMs`. */
export function monthUsage(record: KeyRecord, nowMs: number): number {
  return record.requests_month === utcMonth(nowMs) ? (record.requests_this_month ?? 0) : 0;
}

/** Throws unless every given setting is valid. */
export function assertKeyChanges(changes: KeyChanges): void {
  assertPlanChanges(changes);
  if ('owner' in changes) assertOwner(changes.owner);
  if (changes.meta != null && (typeof changes.meta !== 'object' || Array.isArray(changes.meta))) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'meta must be an object');
  }
  const limit = changes.rate_limit_per_minute;
  if (limit != null && !(Number.isSafeInteger(limit) && limit > 0)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'rate_limit_per_minute must be a whole number greater than 0');
  }
  if (changes.expires_at != null && !(Number.isFinite(changes.expires_at) && changes.expires_at > 0)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'expires_at must be a Unix time in seconds');
  }
  if (changes.stripe_customer_id != null && !/^cus_[A-Za-z0-9]{1,250}$/.test(changes.stripe_customer_id)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'stripe_customer_id must look like cus_...');
  }
  if (changes.paddle_subscription_id != null && !PADDLE_SUBSCRIPTION_ID.test(changes.paddle_subscription_id)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'paddle_subscription_id must be "sub_" and 26 lowercase letters or digits');
  }
}

/** Applies setting changes to a raw record in place; null removes a setting. */
export function applyKeyChanges(raw: RawRecord, changes: KeyChanges, nowMs: number): void {
  assertKeyChanges(changes);
  // The credits as they stand before the change (a refill due settled), not under a new refill.
  const before = creditsAt(raw, nowMs);
  for (const field of [
    'owner',
    'meta',
    'rate_limit_per_minute',
    'expires_at',
    'stripe_customer_id',
    'paddle_subscription_id',
    'plan',
    'scopes',
    'credits_refill',
  ] as const) {
    if (!(field in changes)) continue;
    const value = changes[field];
    if (value === null || value === undefined) delete raw[field];
    else raw[field] = Array.isArray(value) ? [...new Set(value)] : typeof value === 'object' ? { ...value } : value;
  }
  if ('credits' in changes || changes.add_credits !== undefined || changes.credits_refill) {
    let credits = 'credits' in changes ? (changes.credits ?? undefined) : before;
    if (changes.add_credits !== undefined) credits = Math.max(0, (credits ?? 0) + changes.add_credits);
    if (credits === undefined) {
      delete raw.credits;
      delete raw.credits_period;
    } else {
      raw.credits = credits;
      const refill = raw.credits_refill as KeyRecord['credits_refill'];
      if (refill) raw.credits_period = creditsPeriod(refill.interval, nowMs);
      else delete raw.credits_period;
    }
  }
}

function assertNewKeyInput(input: NewKeyInput): void {
  assertOwner(input.owner);
  assertKeyChanges(input);
}

/**
 * A new key and its raw record. Only the hash and display prefix are kept; the full key is
 * returned once. The existing format's fields come first, in their usual order.
 */
export function newRawRecord(input: NewKeyInput, nowMs: number, prefix: string = DEFAULT_KEY_PREFIX): { key: string; raw: RawRecord } {
  assertNewKeyInput(input);
  const key = generateKey(prefix);
  const raw: RawRecord = {
    owner: input.owner,
    created_at: nowMs / 1000,
    usage_count: 0,
    requests_today: 0,
    requests_day: 0,
    last_used: null,
    revoked: false,
    key_hash: hashKey(key),
    key_prefix: displayPrefix(key, prefix),
  };
  if (input.rate_limit_per_minute != null) raw.rate_limit_per_minute = input.rate_limit_per_minute;
  if (input.expires_at != null) raw.expires_at = input.expires_at;
  if (input.meta != null) raw.meta = { ...input.meta };
  if (input.stripe_customer_id != null) raw.stripe_customer_id = input.stripe_customer_id;
  applyKeyChanges(
    raw,
    {
      ...(input.paddle_subscription_id != null ? { paddle_subscription_id: input.paddle_subscription_id } : {}),
      ...(input.plan != null ? { plan: input.plan } : {}),
      ...(input.scopes != null ? { scopes: input.scopes } : {}),
      ...(input.credits_refill != null ? { credits_refill: input.credits_refill } : {}),
      ...(input.credits != null
        ? { credits: input.credits }
        : input.credits_refill != null
          ? { credits: input.credits_refill.amount }
          : {}),
    },
    nowMs,
  );
  return { key, raw };
}

/**
 * The hash of a raw record: its `key_hash`, or the hash of its plain `key` (older deployments).
 * `cache` avoids re-hashing plain keys on every reload.
 */
export function rawHash(raw: RawRecord, cache?: Map<string, string>): string {
  if (typeof raw.key_hash === 'string') return raw.key_hash;
  const key = raw.key as string;
  let hash = cache?.get(key);
  if (hash === undefined) {
    hash = hashKey(key);
    cache?.set(key, hash);
  }
  return hash;
}

const num = (v: unknown, fallback = 0): number => (typeof v === 'number' ? v : fallback);

/** The typed view of a raw record. */
export function toKeyRecord(raw: RawRecord, hash: string, prefix: string = DEFAULT_KEY_PREFIX): KeyRecord {
  const record: KeyRecord = {
    key_hash: hash,
    key_prefix: typeof raw.key_prefix === 'string' ? raw.key_prefix : displayPrefix(typeof raw.key === 'string' ? raw.key : '', prefix),
    owner: typeof raw.owner === 'string' ? raw.owner : '',
    created_at: num(raw.created_at),
    usage_count: num(raw.usage_count),
    requests_today: num(raw.requests_today),
    requests_day: num(raw.requests_day),
    last_used: typeof raw.last_used === 'number' ? raw.last_used : null,
    revoked: raw.revoked === true,
  };
  if (typeof raw.revoked_at === 'number') record.revoked_at = raw.revoked_at;
  if (typeof raw.revoke_at === 'number') record.revoke_at = raw.revoke_at;
  if (typeof raw.rotated_from === 'string') record.rotated_from = raw.rotated_from;
  if (typeof raw.stripe_customer_id === 'string') record.stripe_customer_id = raw.stripe_customer_id;
  if (typeof raw.paddle_subscription_id === 'string') record.paddle_subscription_id = raw.paddle_subscription_id;
  if (typeof raw.rate_limit_per_minute === 'number') record.rate_limit_per_minute = raw.rate_limit_per_minute;
  if (typeof raw.expires_at === 'number') record.expires_at = raw.expires_at;
  if (raw.meta != null && typeof raw.meta === 'object') record.meta = raw.meta as Record<string, unknown>;
  if (typeof raw.plan === 'string') record.plan = raw.plan;
  if (Array.isArray(raw.scopes)) record.scopes = raw.scopes as string[];
  if (typeof raw.credits === 'number') record.credits = raw.credits;
  if (raw.credits_refill != null && typeof raw.credits_refill === 'object')
    record.credits_refill = raw.credits_refill as KeyRecord['credits_refill'];
  if (typeof raw.credits_period === 'number') record.credits_period = raw.credits_period;
  if (typeof raw.requests_this_month === 'number') record.requests_this_month = raw.requests_this_month;
  if (typeof raw.requests_month === 'number') record.requests_month = raw.requests_month;
  return record;
}

/**
 * Adds a usage delta to counters in place (raw or typed record). A day later than the record's
 * `requests_day` restarts `requests_today`; a day earlier than it only counts in `usage_count`.
 */
export function addUsage(target: RawRecord | KeyRecord, delta: UsageDelta): void {
  const t = target as RawRecord;
  t.usage_count = num(t.usage_count) + delta.units;
  for (const { day, units } of delta.days) {
    countInPeriod(t, 'requests_day', 'requests_today', day, units);
    countInPeriod(t, 'requests_month', 'requests_this_month', Math.floor(day / 100), units);
  }
  const last = typeof t.last_used === 'number' ? t.last_used : 0;
  if (delta.last_used > last) t.last_used = delta.last_used;
}

/**
 * Adds `units` of `period` to a counter that holds only its latest period (`requests_today` of
 * `requests_day`, `requests_this_month` of `requests_month`): a later period starts it again, an
 * earlier one is not counted there.
 */
function countInPeriod(
  t: RawRecord,
  periodField: 'requests_day' | 'requests_month',
  countField: 'requests_today' | 'requests_this_month',
  period: number,
  units: number,
): void {
  const current = num(t[periodField]);
  if (period > current) {
    t[periodField] = period;
    t[countField] = units;
  } else if (period === current) {
    t[countField] = num(t[countField]) + units;
  }
}

/**
 * Spends a delta's credits on a raw or typed record (stores that spend credits at flush time):
 * a refill due at the time of the delta's requests is applied first; credits never go below 0.
 */
export function spendCredits(target: RawRecord | KeyRecord, delta: UsageDelta): void {
  if (!delta.credits) return;
  const nowMs = delta.last_used * 1000;
  const t = target as RawRecord;
  const current = creditsAt(t, nowMs);
  if (current === undefined) return;
  const refill = t.credits_refill as KeyRecord['credits_refill'];
  if (refill) t.credits_period = creditsPeriod(refill.interval, nowMs);
  t.credits = Math.max(0, current - delta.credits);
}

/** Marks a raw or typed record revoked, noting when (`nowMs`). */
export function markRevoked(target: RawRecord | KeyRecord, nowMs: number): void {
  const t = target as RawRecord;
  t.revoked = true;
  if (t.revoked_at == null) t.revoked_at = nowMs / 1000;
}

/** Whether a key counts as revoked at `nowMs`: revoked, or past the end of a rotation's grace. */
export function isRevoked(record: KeyRecord, nowMs: number): boolean {
  return record.revoked || (record.revoke_at != null && record.revoke_at * 1000 <= nowMs);
}

export function isExpired(record: KeyRecord, nowMs: number): boolean {
  return record.expires_at != null && record.expires_at * 1000 <= nowMs;
}

/** `rotating`: replaced by a rotation, still accepted until `revoke_at` (the grace period). */
export type KeyStatus = 'active' | 'rotating' | 'revoked' | 'expired';

export function keyStatus(record: KeyRecord, nowMs: number): KeyStatus {
  if (isRevoked(record, nowMs)) return 'revoked';
  if (isExpired(record, nowMs)) return 'expired';
  return record.revoke_at != null ? 'rotating' : 'active';
}

/**
 * Rotation on a store's raw records: appends a new key with the old one's owner and settings and
 * revokes the old one, at once or at the end of the grace period. Changes `raws` in place.
 */
export function rotateRaw(
  raws: RawRecord[],
  find: (raw: RawRecord) => boolean,
  oldHash: string,
  graceSeconds: number,
  prefix: string,
  now: number,
): RotatedKey | undefined {
  const old = raws.find(find);
  if (!old) return undefined;
  const oldRecord = toKeyRecord(old, oldHash, prefix);
  const status = keyStatus(oldRecord, now);
  if (status !== 'active' && status !== 'rotating')
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', `cannot rotate a key that is ${status}`);
  if (!(Number.isFinite(graceSeconds) && graceSeconds >= 0)) {
    throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'the grace period must be 0 or more seconds');
  }
  const { key, raw } = newRawRecord(
    {
      owner: oldRecord.owner,
      rate_limit_per_minute: oldRecord.rate_limit_per_minute ?? null,
      expires_at: oldRecord.expires_at ?? null,
      meta: oldRecord.meta,
      stripe_customer_id: oldRecord.stripe_customer_id ?? null,
      paddle_subscription_id: oldRecord.paddle_subscription_id ?? null,
      plan: oldRecord.plan ?? null,
      scopes: oldRecord.scopes ?? null,
      credits_refill: oldRecord.credits_refill ?? null,
    },
    now,
    prefix,
  );
  raw.rotated_from = oldHash;
  // Prepaid credits move to the new key (not copied: the balance is the customer's, once).
  const credits = creditsAt(old, now);
  if (credits !== undefined) {
    raw.credits = credits;
    if (typeof old.credits_period === 'number') raw.credits_period = old.credits_period;
    old.credits = 0;
  }
  raws.push(raw);
  if (graceSeconds === 0) markRevoked(old, now);
  else {
    const at = now / 1000 + graceSeconds;
    if (typeof old.revoke_at !== 'number' || old.revoke_at > at) old.revoke_at = at;
  }
  return { ...createdKey(key, raw, prefix), previous: toKeyRecord(old, oldHash, prefix) };
}

export function createdKey(key: string, raw: RawRecord, prefix?: string): CreatedKey {
  return { key, record: toKeyRecord(raw, raw.key_hash as string, prefix) };
}
