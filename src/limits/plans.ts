import { readFileSync } from 'node:fs';
import { PADDLE_PRICE_ID } from '../billing/paddle-client';
import { ConfigError, describeError } from '../errors';
import type { RateLimitWindow } from './types';

/** One limit of a plan, as written in the plans file. */
export interface PlanLimitInput {
  /** Policy name announced in the RateLimit headers, e.g. `second`, `day`. */
  name: string;
  /** Requests (units) allowed per window. */
  limit: number;
  /** Window length: a whole number and a unit, `s`, `m`, `h` or `d` (`1s`, `15m`, `1d`). */
  window: string;
  /** A key that exceeds this limit is refused for this many seconds (abuse guard). */
  block_seconds?: number;
}

/** A plan as written in the `plans` option or the `DAYMIND_PLANS_FILE` file. */
export interface PlanInput {
  limits: PlanLimitInput[];
  /** Allowed units per key per UTC calendar month; null for none. */
  monthly_quota?: number | null;
  description?: string;
  /** The Paddle price (`pri_...`) charged per unit of this plan's keys (BILLING_MODE=paddle). Default `PADDLE_PRICE_ID`. */
  paddle_price_id?: string;
}

export type PlansInput = Record<string, PlanInput>;

/** A checked plan. */
export interface Plan {
  name: string;
  windows: readonly RateLimitWindow[];
  monthlyQuota: number | null;
  description?: string;
  paddlePriceId?: string;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const MAX_WINDOW_SECONDS = 366 * 86_400;
const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** Policy names daymind-auth announces itself. */
const RESERVED = new Set(['ip', 'month']);

/** Seconds of a window like `1s`, `15m`, `1d`; undefined when it is not one. */
export function windowSeconds(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^([1-9][0-9]{0,5})([smhd])$/.exec(text);
  if (!match) return undefined;
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2]!]!;
  return seconds <= MAX_WINDOW_SECONDS ? seconds : undefined;
}

const isWhole = (n: unknown, min: number): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= min;

function checkFields(value: Record<string, unknown>, allowed: readonly string[], fail: (message: string) => never): void {
  for (const field of Object.keys(value)) {
    if (!allowed.includes(field)) fail(`unknown field "${field}" (allowed: ${allowed.join(', ')})`);
  }
}

function parsePlan(name: string, raw: unknown, fail: (message: string) => never): Plan {
  if (!NAME.test(name)) fail('a plan name must start with a letter and hold only letters, digits, "_" and "-" (at most 32)');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('must be an object with "limits"');
  const plan = raw as Record<string, unknown>;
  checkFields(plan, ['limits', 'monthly_quota', 'description', 'paddle_price_id'], fail);
  if (plan.paddle_price_id !== undefined && !(typeof plan.paddle_price_id === 'string' && PADDLE_PRICE_ID.test(plan.paddle_price_id))) {
    fail(
      `"paddle_price_id" must be a Paddle price id: "pri_" and 26 lowercase letters or digits; got ${JSON.stringify(plan.paddle_price_id)}`,
    );
  }
  if (!Array.isArray(plan.limits)) fail('"limits" must be an array (it may be empty)');
  const quota = plan.monthly_quota ?? null;
  if (quota !== null && !isWhole(quota, 1))
    fail(`"monthly_quota" must be a whole number of at least 1, or null; got ${JSON.stringify(quota)}`);
  if (plan.description !== undefined && typeof plan.description !== 'string') fail('"description" must be a string');
  const seen = new Set<string>();
  const windows = (plan.limits as unknown[]).map((item, i): RateLimitWindow => {
    const at = `limits[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) fail(`${at} must be an object with name, limit and window`);
    const limit = item as Record<string, unknown>;
    checkFields(limit, ['name', 'limit', 'window', 'block_seconds'], (m) => fail(`${at}: ${m}`));
    if (typeof limit.name !== 'string' || !NAME.test(limit.name)) {
      fail(`${at}: "name" must start with a letter and hold only letters, digits, "_" and "-" (at most 32)`);
    }
    if (RESERVED.has(limit.name)) fail(`${at}: the name "${limit.name}" is taken by daymind-auth's own policy`);
    if (seen.has(limit.name)) fail(`${at}: the name "${limit.name}" is used twice`);
    seen.add(limit.name);
    if (!isWhole(limit.limit, 1))
      fail(`${at} ("${limit.name}"): "limit" must be a whole number of at least 1; got ${JSON.stringify(limit.limit)}`);
    const seconds = windowSeconds(limit.window);
    if (seconds === undefined) {
      fail(
        `${at} ("${limit.name}"): "window" must be a number and a unit (s, m, h, d) up to 366d, like "1s" or "1d"; got ${JSON.stringify(limit.window)}`,
      );
    }
    const block = limit.block_seconds;
    if (block !== undefined && !isWhole(block, 1)) fail(`${at} ("${limit.name}"): "block_seconds" must be a whole number of at least 1`);
    return {
      name: limit.name,
      limit: limit.limit,
      windowSeconds: seconds,
      ...(block !== undefined ? { blockSeconds: block as number } : {}),
    };
  });
  return {
    name,
    windows,
    monthlyQuota: quota as number | null,
    ...(plan.description ? { description: plan.description as string } : {}),
    ...(plan.paddle_price_id ? { paddlePriceId: plan.paddle_price_id as string } : {}),
  };
}

/**
 * Checks plans and returns them by name. Throws a ConfigError naming `variable` (the option or
 * variable), `source` (the file, when one) and the plan at fault.
 */
export function parsePlans(raw: unknown, variable: string, source?: string): Map<string, Plan> {
  const where = source ? `${source}: ` : '';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(variable, `${where}must be an object of plans by name, like { "free": { "limits": [...] } }`);
  }
  const plans = new Map<string, Plan>();
  for (const [name, value] of Object.entries(raw)) {
    const fail = (message: string): never => {
      throw new ConfigError(variable, `${where}plan "${name}": ${message}`);
    };
    plans.set(name, parsePlan(name, value, fail));
  }
  return plans;
}

/** Reads and checks a plans file (`DAYMIND_PLANS_FILE`). */
export function readPlansFile(path: string, variable = 'DAYMIND_PLANS_FILE'): Map<string, Plan> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(variable, `cannot read the plans file ${path}: ${describeError(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(variable, `the plans file ${path} is not valid JSON: ${describeError(err)}`);
  }
  return parsePlans(raw, variable, path);
}
