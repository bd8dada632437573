import { waitText } from '../internal/human-time';
import { keyStatus } from '../store/record';
import { checkOwner, mergedMeta, metaPairs, parseCustomer, parseMeta, parseRateLimit, parseSubscription } from './key-flags';
import type { AdminStore } from './open-store';
import type { KeyChanges, KeyRecord, NewKeyInput } from '../store/types';
import { utcDay } from '../usage/day';
import { CommandError, UsageError } from './errors';
import { resolveKey } from './resolve-key';
import { renderTable } from './table';
import {
  creditsCell,
  monthCell,
  parsePlan,
  parseCredits,
  parseRefill,
  parseScopes,
  planFields,
  type Plans,
  type PlansSource,
} from './plans';
import { formatTime, parseDuration, parseExpiry } from './time';

export interface CommandContext {
  /** Opens the store; `create` allows creating a missing file. */
  openStore(create: boolean): Promise<AdminStore>;
  json: boolean;
  out(text: string): void;
  /** Notes for people (stderr), so that stdout stays the result. */
  note(text: string): void;
  now: number;
  /** The plans in force (DAYMIND_PLANS_FILE). */
  plans: PlansSource;
}

export type CommandOptions = {
  'rate-limit'?: string;
  expires?: string;
  meta?: string[];
  grace?: string;
  owner?: string;
  'stripe-customer'?: string;
  'paddle-subscription'?: string;
  format?: string;
  month?: string;
  price?: string;
  html?: string;
  plan?: string;
  scopes?: string;
  credits?: string;
  refill?: string;
  add?: string;
  set?: string;
  /** create/set: the key's email address (meta.email); report: `all` to email the summaries. */
  email?: string;
  'dry-run'?: string;
};

/** The status for people: a rotating key with the time it has left (`rotating, 59 min left`). */
export function statusText(record: KeyRecord, nowMs: number): string {
  const status = keyStatus(record, nowMs);
  return status === 'rotating' ? `rotating, ${waitText(record.revoke_at! - nowMs / 1000)} left` : status;
}

/** requests_today as of now: 0 when the last counted day is not today. */
export function todayCount(record: KeyRecord, nowMs: number): number {
  return record.requests_day === utcDay(nowMs) ? record.requests_today : 0;
}

export function recordJson(record: KeyRecord, nowMs: number, plans?: Plans): Record<string, unknown> {
  return {
    key_prefix: record.key_prefix,
    key_hash: record.key_hash,
    owner: record.owner,
    status: keyStatus(record, nowMs),
    created_at: record.created_at,
    usage_count: record.usage_count,
    requests_today: todayCount(record, nowMs),
    requests_day: record.requests_day,
    last_used: record.last_used,
    revoked: record.revoked,
    revoked_at: record.revoked_at ?? null,
    revoke_at: record.revoke_at ?? null,
    expires_at: record.expires_at ?? null,
    rate_limit_per_minute: record.rate_limit_per_minute ?? null,
    meta: record.meta ?? {},
    stripe_customer_id: record.stripe_customer_id ?? null,
    ...(record.paddle_subscription_id ? { paddle_subscription_id: record.paddle_subscription_id } : {}),
    ...planFields(record, nowMs, plans),
    ...(record.rotated_from ? { rotated_from: record.rotated_from } : {}),
  };
}

/** A record's JSON view, with the monthly quota of its plan when plans are in force. */
export function viewOf(ctx: CommandContext, record: KeyRecord): Record<string, unknown> {
  return recordJson(record, ctx.now, ctx.plans.forView(ctx.note));
}

export function print(ctx: CommandContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2) + '\n');
}

export async function withStore<T>(
  ctx: CommandContext,
  create: boolean,
  run: (store: AdminStore['store'], opened: AdminStore) => Promise<T>,
): Promise<T> {
  const opened = await ctx.openStore(create);
  try {
    return await run(opened.store, opened);
  } finally {
    await opened.close();
  }
}

/** The store's keys, or with --owner only that owner's (none is an error: a typo, most likely). */
async function keysOf(ctx: CommandContext, owner: string | undefined): Promise<KeyRecord[]> {
  const records = await withStore(ctx, false, (s) => s.list());
  if (owner === undefined) return records;
  const owned = records.filter((r) => r.owner === owner);
  if (owned.length === 0) throw new CommandError(`no keys belong to "${owner}"`);
  return owned;
}

export async function list(ctx: CommandContext, options: CommandOptions): Promise<void> {
  const records = await keysOf(ctx, options.owner);
  if (ctx.json)
    return print(
      ctx,
      records.map((r) => viewOf(ctx, r)),
    );
  const plans = ctx.plans.forView(ctx.note);
  // The plan columns appear once plans are in force or a key uses them, so that older tables keep their shape.
  const planColumns = plans !== undefined || records.some((r) => r.plan !== undefined || r.scopes !== undefined || r.credits !== undefined);
  ctx.out(
    renderTable(
      ['PREFIX', 'OWNER', 'STATUS', 'CREATED (UTC)', 'USAGE', 'TODAY', 'LAST USED (UTC)', ...(planColumns ? PLAN_COLUMNS : [])],
      records.map((r) => [
        r.key_prefix,
        r.owner,
        statusText(r, ctx.now),
        formatTime(r.created_at),
        String(r.usage_count),
        String(todayCount(r, ctx.now)),
        r.last_used == null ? 'never' : formatTime(r.last_used),
        ...(planColumns
          ? [r.plan ?? '-', monthCell(r, ctx.now, plans), creditsCell(r, ctx.now), r.scopes?.length ? r.scopes.join(',') : '-']
          : []),
      ]),
    ),
  );
}

const PLAN_COLUMNS = ['PLAN', 'MONTH', 'CREDITS', 'SCOPES'];

/** The plan, scopes and credits options of `create` and `set`; `none` (where allowed) removes one. */
function planChanges(ctx: CommandContext, options: CommandOptions, allowNone: boolean): KeyChanges {
  const changes: KeyChanges = {};
  const none = (text: string | undefined) => allowNone && text === 'none';
  if (options.plan !== undefined) changes.plan = none(options.plan) ? null : parsePlan(options.plan, ctx.plans);
  if (options.scopes !== undefined) changes.scopes = none(options.scopes) ? null : parseScopes(options.scopes);
  if (options.credits !== undefined) changes.credits = parseCredits(options.credits, '--credits');
  if (options.refill !== undefined) changes.credits_refill = parseRefill(options.refill, allowNone);
  return changes;
}

export async function create(ctx: CommandContext, owner: string, options: CommandOptions): Promise<void> {
  checkOwner(owner);
  const input: NewKeyInput = { owner };
  const limit = parseRateLimit(options['rate-limit']);
  if (limit !== undefined) input.rate_limit_per_minute = limit;
  if (options.expires !== undefined) input.expires_at = parseExpiry(options.expires, '--expires', ctx.now);
  const meta = parseMeta(metaPairs(options));
  if (meta) {
    if (meta.email === '') delete meta.email;
    if (Object.keys(meta).length > 0) input.meta = meta;
  }
  if (options['stripe-customer'] !== undefined) input.stripe_customer_id = parseCustomer(options['stripe-customer']);
  if (options['paddle-subscription'] !== undefined) input.paddle_subscription_id = parseSubscription(options['paddle-subscription']);
  Object.assign(input, planChanges(ctx, options, false));
  const { key, record } = await withStore(ctx, true, (s) => s.create(input));
  if (ctx.json) return print(ctx, { key, ...viewOf(ctx, record) });
  ctx.out(key + '\n');
  ctx.note(`Created ${record.key_prefix} for ${owner}. The key above is shown only this once: store it now.\n`);
}

export async function revoke(ctx: CommandContext, name: string): Promise<void> {
  const result = await withStore(ctx, false, async (s) => {
    const target = resolveKey(await s.list(), name);
    if (target.revoked) return { record: target, changed: false };
    // A key past the end of a rotation's grace period is revoked already; this makes it final.
    const record = await s.revoke(target.key_hash);
    if (!record) throw new CommandError(`the key ${target.key_prefix} was removed from the store meanwhile`);
    return { record, changed: true };
  });
  if (ctx.json) return print(ctx, { ...viewOf(ctx, result.record), changed: result.changed });
  ctx.out(`${result.changed ? 'Revoked' : 'Already revoked:'} ${result.record.key_prefix} (${result.record.owner})\n`);
}

export async function show(ctx: CommandContext, name: string): Promise<void> {
  const record = await withStore(ctx, false, async (s) => resolveKey(await s.list(), name));
  const view = viewOf(ctx, record);
  if (ctx.json) return print(ctx, view);
  const rows: string[][] = [
    ['prefix', record.key_prefix],
    ['hash', record.key_hash],
    ['owner', record.owner],
    ['status', statusText(record, ctx.now)],
    ['created', `${formatTime(record.created_at)} UTC`],
    ['usage_count', String(record.usage_count)],
    ['requests_today', String(view.requests_today)],
    ['last_used', record.last_used == null ? 'never' : `${formatTime(record.last_used)} UTC`],
    ['rate_limit', record.rate_limit_per_minute == null ? 'server default' : `${record.rate_limit_per_minute}/min`],
    ['expires', record.expires_at == null ? 'never' : `${formatTime(record.expires_at)} UTC`],
    ['stripe_customer', record.stripe_customer_id ?? '-'],
    ['plan', record.plan ?? '-'],
    ['scopes', record.scopes?.length ? record.scopes.join(',') : '-'],
    ['this_month', monthCell(record, ctx.now, ctx.plans.forView(ctx.note))],
    ['credits', creditsCell(record, ctx.now)],
  ];
  if (record.revoked_at != null) rows.push(['revoked_at', `${formatTime(record.revoked_at)} UTC`]);
  if (record.revoke_at != null && !record.revoked) rows.push(['revoke_at', `${formatTime(record.revoke_at)} UTC`]);
  if (record.rotated_from) rows.push(['rotated_from', record.rotated_from]);
  if (record.paddle_subscription_id) rows.push(['paddle_subscription', record.paddle_subscription_id]);
  for (const [k, v] of Object.entries(record.meta ?? {})) rows.push([`meta.${k}`, typeof v === 'string' ? v : JSON.stringify(v)]);
  const width = Math.max(...rows.map((r) => r[0]!.length));
  ctx.out(rows.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n') + '\n');
}

export async function rotate(ctx: CommandContext, name: string, options: CommandOptions): Promise<void> {
  const grace = options.grace === undefined ? 0 : parseDuration(options.grace, '--grace');
  const rotated = await withStore(ctx, false, async (s) => {
    const target = resolveKey(await s.list(), name);
    const status = keyStatus(target, ctx.now);
    if (status !== 'active' && status !== 'rotating') throw new CommandError(`cannot rotate ${target.key_prefix}: it is ${status}`);
    const result = await s.rotate(target.key_hash, grace);
    if (!result) throw new CommandError(`the key ${target.key_prefix} was removed from the store meanwhile`);
    return result;
  });
  if (ctx.json) {
    return print(ctx, { key: rotated.key, ...viewOf(ctx, rotated.record), previous: viewOf(ctx, rotated.previous) });
  }
  ctx.out(rotated.key + '\n');
  const old = rotated.previous;
  ctx.note(
    `Created ${rotated.record.key_prefix} for ${rotated.record.owner}; the key above is shown only this once.\n` +
      (grace === 0
        ? `Revoked ${old.key_prefix} now.\n`
        : `${old.key_prefix} keeps working until ${formatTime(old.revoke_at)} UTC, then is revoked.\n`),
  );
}

/** One owner's figures in `usage`: its keys, their all-time usage_count and requests today. */
export interface OwnerUsage {
  owner: string;
  keys: number;
  usage_count: number;
  requests_today: number;
}

/** The figures of `usage` per owner, by owner (`report` shows the same numbers). */
export function ownerUsage(records: KeyRecord[], nowMs: number): Map<string, OwnerUsage> {
  const owners = new Map<string, OwnerUsage>();
  for (const r of records) {
    const o = owners.get(r.owner) ?? { owner: r.owner, keys: 0, usage_count: 0, requests_today: 0 };
    o.keys++;
    o.usage_count += r.usage_count;
    o.requests_today += todayCount(r, nowMs);
    owners.set(r.owner, o);
  }
  return owners;
}

export async function usage(ctx: CommandContext, options: CommandOptions): Promise<void> {
  const records = await keysOf(ctx, options.owner);
  const ownerRows = [...ownerUsage(records, ctx.now).values()].sort(
    (a, b) => b.usage_count - a.usage_count || a.owner.localeCompare(b.owner),
  );
  // Keys follow their owners in the owners' order (most used first), then by their own usage.
  const rank = new Map(ownerRows.map((o, i) => [o.owner, i]));
  const keyRows = [...records].sort((a, b) => rank.get(a.owner)! - rank.get(b.owner)! || b.usage_count - a.usage_count);
  if (ctx.json) {
    return print(ctx, {
      owners: ownerRows,
      keys: keyRows.map((r) => ({
        key_prefix: r.key_prefix,
        key_hash: r.key_hash,
        owner: r.owner,
        status: keyStatus(r, ctx.now),
        usage_count: r.usage_count,
        requests_today: todayCount(r, ctx.now),
      })),
    });
  }
  ctx.out(
    renderTable(
      ['OWNER', 'KEYS', 'USAGE', 'TODAY'],
      ownerRows.map((o) => [o.owner, String(o.keys), String(o.usage_count), String(o.requests_today)]),
    ),
  );
  ctx.out('\n');
  ctx.out(
    renderTable(
      ['OWNER', 'PREFIX', 'STATUS', 'USAGE', 'TODAY'],
      keyRows.map((r) => [r.owner, r.key_prefix, statusText(r, ctx.now), String(r.usage_count), String(todayCount(r, ctx.now))]),
    ),
  );
}

/** Changes a key's limit, expiry, Stripe customer, Paddle subscription, plan or scopes; `default`, `never` and `none` remove them. */
export async function set(ctx: CommandContext, name: string, options: CommandOptions): Promise<void> {
  const changes: KeyChanges = planChanges(ctx, options, true);
  const limit = options['rate-limit'];
  if (limit !== undefined) changes.rate_limit_per_minute = limit === 'default' ? null : parseRateLimit(limit)!;
  if (options.expires !== undefined)
    changes.expires_at = options.expires === 'never' ? null : parseExpiry(options.expires, '--expires', ctx.now);
  const customer = options['stripe-customer'];
  if (customer !== undefined) changes.stripe_customer_id = customer === 'none' ? null : parseCustomer(customer);
  const subscription = options['paddle-subscription'];
  if (subscription !== undefined) changes.paddle_subscription_id = subscription === 'none' ? null : parseSubscription(subscription);
  if (options.owner !== undefined) changes.owner = checkOwner(options.owner, '--owner: ');
  const meta = parseMeta(metaPairs(options));
  if (Object.keys(changes).length === 0 && !meta)
    throw new UsageError(
      'set needs at least one of --owner, --meta, --email, --rate-limit, --expires, --stripe-customer, --paddle-subscription, --plan, --scopes',
    );
  // --meta k=v sets k and --meta k= removes it, keeping the key's other pairs.
  const record = await updateKey(ctx, name, (target) => (meta ? { ...changes, meta: mergedMeta(target.meta, meta) } : changes));
  if (ctx.json) return print(ctx, viewOf(ctx, record));
  ctx.out(`Updated ${record.key_prefix} (${record.owner})\n`);
}

/** Applies the changes `changesFor` gives for the named key, in one write; returns the updated record. */
export async function updateKey(ctx: CommandContext, name: string, changesFor: (target: KeyRecord) => KeyChanges): Promise<KeyRecord> {
  return withStore(ctx, false, async (s) => {
    const target = resolveKey(await s.list(), name);
    const updated = await s.update(target.key_hash, changesFor(target));
    if (!updated) throw new CommandError(`the key ${target.key_prefix} was removed from the store meanwhile`);
    return updated;
  });
}
