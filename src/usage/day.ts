let cachedStart = 0;
let cachedEnd = 0;
let cachedDay = 0;

/** The UTC day of a time in ms as `YYYYMMDD`, the unit of `requests_day`. Cached per day. */
export function utcDay(ms: number): number {
  if (ms >= cachedStart && ms < cachedEnd) return cachedDay;
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const day = d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
  cachedStart = start;
  cachedEnd = start + 86_400_000;
  cachedDay = day;
  return day;
}
