import { DaymindError } from '../errors';
import type { Plan } from '../limits/plans';
import type { RateLimitWindow } from '../limits/types';
import { OnceReporter } from '../internal/report-once';
import type { KeyRecord } from '../store/types';

/**
 * The rate-limit windows and plan of a key: its plan's windows (with a record's own
 * `rate_limit_per_minute` replacing the limit of per-minute windows, or added as a `"key"` one),
 * else the single `"key"` per-minute window. The same window objects are returned for the same
 * settings, so that limiters can find theirs by identity.
 */
export class KeyLimits {
  private readonly byLimit = new Map<number, readonly RateLimitWindow[]>();
  /** By plan and own limit; a plan whose definition changed (a reloaded plans file) gets new windows. */
  private readonly byPlan = new Map<string, { plan: Plan; windows: readonly RateLimitWindow[] }>();
  private readonly unknownPlans: OnceReporter;

  constructor(
    private readonly plans: ReadonlyMap<string, Plan>,
    private readonly defaultRateLimitPerMinute: number,
    onError: (err: Error) => void,
  ) {
    this.unknownPlans = new OnceReporter(onError);
  }

  /** The key's plan; undefined without one, or (reported once) when the plan is not configured. */
  planOf(record: KeyRecord): Plan | undefined {
    if (record.plan === undefined) return undefined;
    const plan = this.plans.get(record.plan);
    if (!plan) {
      this.unknownPlans.report(
        new DaymindError(
          'ERR_DAYMIND_CONFIG',
          `key ${record.key_prefix} has plan "${record.plan}", which is not among the plans in force (${[...this.plans.keys()].join(', ') || 'none'}); it gets the default per-minute limit`,
        ),
        record.plan,
      );
    }
    return plan;
  }

  /** The key's windows; `plan` when the caller has looked it up already. */
  windowsFor(record: KeyRecord, plan: Plan | undefined = this.planOf(record)): readonly RateLimitWindow[] {
    const own = record.rate_limit_per_minute ?? undefined;
    if (!plan) return this.single(own ?? this.defaultRateLimitPerMinute);
    const id = `${plan.name}:${own ?? ''}`;
    const cached = this.byPlan.get(id);
    if (cached?.plan === plan) return cached.windows;
    const windows = own === undefined ? plan.windows : withOwnMinuteLimit(plan.windows, own);
    this.byPlan.set(id, { plan, windows });
    return windows;
  }

  private single(limit: number): readonly RateLimitWindow[] {
    let windows = this.byLimit.get(limit);
    if (!windows) {
      windows = [{ name: 'key', limit, windowSeconds: 60 }];
      this.byLimit.set(limit, windows);
    }
    return windows;
  }
}

function withOwnMinuteLimit(windows: readonly RateLimitWindow[], limit: number): readonly RateLimitWindow[] {
  if (!windows.some((w) => w.windowSeconds === 60)) return [...windows, { name: 'key', limit, windowSeconds: 60 }];
  return windows.map((w) => (w.windowSeconds === 60 ? { ...w, limit } : w));
}
