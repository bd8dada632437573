import { createHash } from 'node:crypto';
import { utcDay } from '../usage/day';
import { creditsPeriod, isRevoked, utcMonth } from '../store/record';
import type { KeyRecord } from '../store/types';
import type { AlertData, AlertEvent, AlertThresholds, AlertType } from './types';

/** How far back a revocation or rotation is still announced: older ones predate the alerts. */
export const LOOKBACK_SECONDS = 7 * 86_400;

/** The deterministic id of an alert: the same key, type, threshold and period give the same id. */
export function alertId(keyHash: string, type: AlertType, threshold: number | null, period: number): string {
  const digest = createHash('sha256')
    .update(`${keyHash}|${type}|${threshold ?? ''}|${period}`)
    .digest('hex');
  return `evt_${digest.slice(0, 32)}`;
}

/** What the watcher knows of a key at one time, beyond its record. */
export interface KeyState {
  record: KeyRecord;
  /** Units counted this month, unflushed ones included. */
  monthUsed: number;
  /** The monthly quota of its plan, or null. */
  quota: number | null;
  /** Credits left now, unspent unflushed ones taken off; undefined when not prepaid. */
  credits: number | undefined;
  /** Whether it was refused by a rate limit today (as seen by this process). */
  rateLimitedToday: boolean;
  /** The key this one replaced (a rotation), when the store still holds it. */
  replaced: KeyRecord | undefined;
}

/** The alerts that hold for a key at `nowMs`; each has its final id, so re-detecting one is harmless. */
export function detectAlerts(state: KeyState, thresholds: AlertThresholds, nowMs: number): AlertEvent[] {
  const { record } = state;
  const events: AlertEvent[] = [];
  const timestamp = new Date(nowMs).toISOString();
  const add = (about: KeyRecord, type: AlertType, threshold: number | null, period: number, extra: Partial<AlertData> = {}) => {
    events.push({
      id: alertId(about.key_hash, type, threshold, period),
      type,
      timestamp,
      data: { key_prefix: about.key_prefix, key_hash: about.key_hash, owner: about.owner, threshold, period, ...extra },
    });
  };
  const nowSeconds = nowMs / 1000;
  const revoked = isRevoked(record, nowMs);
  if (!revoked) {
    if (state.quota !== null && state.quota > 0) {
      for (const percent of thresholds.quotaPercents) {
        if (state.monthUsed * 100 >= percent * state.quota) {
          add(record, 'quota.threshold', percent, utcMonth(nowMs), { used: state.monthUsed, limit: state.quota });
        }
      }
    }
    if (state.credits !== undefined) {
      const refill = record.credits_refill;
      const period = refill ? creditsPeriod(refill.interval, nowMs) : 0;
      if (state.credits < thresholds.creditsBelow) add(record, 'credits.low', thresholds.creditsBelow, period, { credits: state.credits });
      if (state.credits <= 0) add(record, 'credits.exhausted', 0, period, { credits: 0 });
    }
    if (state.rateLimitedToday) add(record, 'rate_limit.first_refusal', null, utcDay(nowMs));
    const expires = record.expires_at;
    if (expires != null && expires > nowSeconds && expires - nowSeconds <= thresholds.expiringDays * 86_400) {
      add(record, 'key.expiring', thresholds.expiringDays, Math.floor(expires), { at: expires });
    }
  } else {
    const at = record.revoked_at ?? record.revoke_at ?? null;
    if (at !== null && at >= nowSeconds - LOOKBACK_SECONDS) add(record, 'key.revoked', null, Math.floor(at), { at });
  }
  const old = state.replaced;
  if (old && record.created_at >= nowSeconds - LOOKBACK_SECONDS) {
    add(old, 'key.rotated', null, Math.floor(record.created_at), { at: record.created_at, replaced_by: record.key_prefix });
  }
  return events;
}

/**
 * Whether an alert could be detected again at `nowMs` (its period is not over): its claim must be
 * kept to stop it from being sent twice. A claim of a period that is over can be dropped once
 * delivered.
 */
export function stillDetectable(event: AlertEvent, atMs: number): boolean {
  // A day's margin: another process whose clock is a little behind may still be in the period.
  const nowMs = atMs - 86_400_000;
  const { period } = event.data;
  const nowSeconds = nowMs / 1000;
  switch (event.type) {
    case 'quota.threshold':
      return period >= utcMonth(nowMs);
    case 'credits.low':
    case 'credits.exhausted':
      // Without refill the period never ends; a daily or monthly one ends with its day or month.
      return period === 0 || period >= (period > 999_999 ? utcDay(nowMs) : utcMonth(nowMs));
    case 'rate_limit.first_refusal':
      return period >= utcDay(nowMs);
    case 'key.expiring':
      return period > nowSeconds;
    default:
      return period >= nowSeconds - LOOKBACK_SECONDS;
  }
}
