import { describeError } from '../errors';
import { readPlansFile, type Plan } from '../limits/plans';
import { creditsAt, monthUsage } from '../store/record';
import { SCOPE } from '../config/setting-values';
import type { CreditsRefill, KeyRecord } from '../store/types';
import { CommandError, UsageError } from './errors';
import { renderTable } from './table';

/** The plans in force, by name. */
export type Plans = ReadonlyMap<string, Plan>;

const NO_PLANS = 'no plans are in force: DAYMIND_PLANS_FILE is not set (in the environment or the --env-file)';

/**
 * The plans named by DAYMIND_PLANS_FILE, read once when first asked for. None are in force when
 * the variable is unset or empty.
 */
export class PlansSource {
  private loaded: Plans | undefined;
  private viewNoted = false;

  constructor(private readonly file: string | undefined) {}

  /** The plans in force, or undefined; a bad file throws the ConfigError naming the file and the plan. */
  get(): Plans | undefined {
    if (this.file === undefined || this.file.trim() === '') return undefined;
    this.loaded ??= readPlansFile(this.file.trim());
    return this.loaded;
  }

  /** The plans in force, or a failure saying that none are. */
  require(): Plans {
    const found = this.get();
    if (!found) throw new CommandError(NO_PLANS);
    return found;
  }

  /**
   * The plans for showing quotas in record views: a bad plans file does not stop reading or
   * revoking keys; it is noted once on stderr and quotas are left out.
   */
  forView(note: (text: string) => void): Plans | undefined {
    try {
      return this.get();
    } catch (err) {
      if (!this.viewNoted) note(`daymind-keys: ${describeError(err)}; monthly quotas are not shown\n`);
      this.viewNoted = true;
      return undefined;
    }
  }
}

/** `--plan NAME`, which must be a plan in force (checked before the store is opened). */
export function parsePlan(name: string, plans: PlansSource): string {
  const found = plans.get();
  if (!found) throw new CommandError(`--plan: ${NO_PLANS}`);
  if (!found.has(name)) {
    throw new CommandError(`--plan: "${name}" is not a plan in force (${[...found.keys()].join(', ') || 'the plans file declares none'})`);
  }
  return name;
}

/** `--scopes read,write`: comma-separated names, trimmed, each 1 to 64 of letters, digits and _ : . - */
export function parseScopes(text: string): string[] {
  const scopes = text.split(',').map((s) => s.trim());
  for (const scope of scopes) {
    if (!SCOPE.test(scope)) {
      throw new UsageError(`--scopes: "${scope}" is not a scope (1 to 64 letters, digits or _ : . -, separated by commas)`);
    }
  }
  return [...new Set(scopes)];
}

/** A whole number of credits; negative only when `signed`. */
export function parseCredits(text: string, flag: string, signed = false): number {
  const n = Number(text);
  if (!(signed ? /^-?\d+$/ : /^\d+$/).test(text) || !Number.isSafeInteger(n)) {
    throw new UsageError(`${flag}: "${text}" is not a whole number${signed ? '' : ' of 0 or more'}`);
  }
  return n;
}

/** `--refill monthly:N` or `daily:N` (N at least 1); `none` (where allowed) is null. */
export function parseRefill(text: string, allowNone: boolean): CreditsRefill | null {
  if (allowNone && text === 'none') return null;
  const match = /^(daily|monthly):(\d+)$/.exec(text);
  const amount = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(amount) || amount < 1) {
    throw new UsageError(
      `--refill: "${text}" is not monthly:N or daily:N with N a whole number of at least 1${allowNone ? ', or none' : ''}`,
    );
  }
  return { interval: match[1] as CreditsRefill['interval'], amount };
}

/** The monthly quota that applies to a key: its plan's, when the plan is in force; else null. */
export function quotaOf(record: KeyRecord, plans: Plans | undefined): number | null {
  return (record.plan !== undefined && plans?.get(record.plan)?.monthlyQuota) || null;
}

/** The plan, scopes, credits and month fields of a record's JSON view. */
export function planFields(record: KeyRecord, nowMs: number, plans: Plans | undefined): Record<string, unknown> {
  return {
    plan: record.plan ?? null,
    scopes: record.scopes ?? [],
    credits: creditsAt(record, nowMs) ?? null,
    credits_refill: record.credits_refill ?? null,
    requests_this_month: monthUsage(record, nowMs),
    monthly_quota: quotaOf(record, plans),
  };
}

/** This month's units against the quota: `120/10000`, or `120` without a quota. */
export function monthCell(record: KeyRecord, nowMs: number, plans: Plans | undefined): string {
  const quota = quotaOf(record, plans);
  return `${monthUsage(record, nowMs)}${quota === null ? '' : `/${quota}`}`;
}

/** Prepaid credits as shown in tables: `750`, `750 (monthly 1000)`, or `-` when not prepaid. */
export function creditsCell(record: KeyRecord, nowMs: number): string {
  const credits = creditsAt(record, nowMs);
  if (credits === undefined) return '-';
  const refill = record.credits_refill;
  return refill ? `${credits} (${refill.interval} ${refill.amount})` : String(credits);
}

const UNITS: Array<[string, number]> = [
  ['d', 86_400],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
];

/** Seconds as a window, in the plans file's form: `1d`, `15m`, `90s`. */
export function formatWindow(seconds: number): string {
  const [unit, size] = UNITS.find(([, size]) => seconds % size === 0)!;
  return `${seconds / size}${unit}`;
}

function limitText(w: Plan['windows'][number]): string {
  return `${w.name} ${w.limit}/${formatWindow(w.windowSeconds)}${w.blockSeconds ? ` (block ${w.blockSeconds}s)` : ''}`;
}

/** `plans`: the plans in force, as a table or JSON. */
export function plansView(plans: Plans, json: boolean): string {
  const list = [...plans.values()];
  if (json) {
    const view = list.map((p) => ({
      name: p.name,
      limits: p.windows.map((w) => ({
        name: w.name,
        limit: w.limit,
        window: formatWindow(w.windowSeconds),
        window_seconds: w.windowSeconds,
        block_seconds: w.blockSeconds ?? null,
      })),
      monthly_quota: p.monthlyQuota,
      description: p.description ?? null,
    }));
    return JSON.stringify(view, null, 2) + '\n';
  }
  return renderTable(
    ['PLAN', 'LIMITS', 'MONTHLY QUOTA', 'DESCRIPTION'],
    list.map((p) => [
      p.name,
      p.windows.map(limitText).join(', ') || 'none',
      p.monthlyQuota === null ? 'none' : String(p.monthlyQuota),
      p.description ?? '',
    ]),
  );
}
