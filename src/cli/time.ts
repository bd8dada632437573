import { UsageError } from './errors';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `90s`, `15m`, `12h`, `30d`, `2w`, or combinations such as `1h30m`, in seconds. `0` is 0. */
export function parseDuration(text: string, flag: string): number {
  if (text === '0') return 0;
  if (!/^(\d+[smhdw])+$/.test(text)) {
    throw new UsageError(`${flag}: "${text}" is not a duration (use e.g. 90s, 15m, 12h, 30d, 2w or 1h30m)`);
  }
  let seconds = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhdw])/g)) seconds += Number(n) * UNIT_SECONDS[unit!]!;
  if (!Number.isSafeInteger(seconds)) throw new UsageError(`${flag}: "${text}" is too long`);
  return seconds;
}

/**
 * An expiry given as a duration from now (`30d`) or a date (`2027-01-31`, UTC midnight) or an
 * ISO 8601 date-time with a zone (`2027-01-31T12:00:00Z`). Returns Unix seconds in the future.
 */
export function parseExpiry(text: string, flag: string, nowMs: number): number {
  let at: number;
  if (/^\d+[smhdw]/.test(text)) {
    at = nowMs / 1000 + parseDuration(text, flag);
  } else if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    at = Date.parse(`${text}T00:00:00Z`) / 1000;
    if (!Number.isFinite(at) || new Date(at * 1000).toISOString().slice(0, 10) !== text) {
      throw new UsageError(`${flag}: "${text}" is not a calendar date`);
    }
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    at = Date.parse(text) / 1000;
  } else {
    throw new UsageError(`${flag}: "${text}" is neither a duration (30d) nor a date (2027-01-31 or 2027-01-31T12:00:00Z)`);
  }
  if (!Number.isFinite(at)) throw new UsageError(`${flag}: "${text}" is not a valid date`);
  if (at * 1000 <= nowMs) throw new UsageError(`${flag}: "${text}" is not in the future`);
  return at;
}

/** Unix seconds as `2026-11-24 21:30:05` (UTC), or `-`. */
export function formatTime(seconds: number | null | undefined): string {
  if (seconds == null) return '-';
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
}

/** Unix seconds as ISO 8601 for JSON output, or null. */
export function isoTime(seconds: number | null | undefined): string | null {
  return seconds == null ? null : new Date(seconds * 1000).toISOString();
}
