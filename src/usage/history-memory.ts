import { HISTORY_RETENTION_DAYS, dayOffset, type DayCounts, type HistoryEntry, type UsageHistory } from './history';

/** History in this process's memory: for `API_KEYS` and tests. Lost on restart. */
export class MemoryUsageHistory implements UsageHistory {
  private readonly days = new Map<number, Map<string, DayCounts>>();

  constructor(private readonly now: () => number = Date.now) {}

  async add(entries: HistoryEntry[]): Promise<void> {
    for (const entry of entries) {
      let day = this.days.get(entry.day);
      if (!day) this.days.set(entry.day, (day = new Map()));
      const counts = day.get(entry.key_hash);
      if (counts) {
        counts.allowed += entry.allowed;
        counts.rate_limited += entry.rate_limited;
      } else {
        day.set(entry.key_hash, { allowed: entry.allowed, rate_limited: entry.rate_limited });
      }
    }
    const oldest = dayOffset(this.now(), -(HISTORY_RETENTION_DAYS - 1));
    for (const day of this.days.keys()) if (day < oldest) this.days.delete(day);
  }

  async read(keyHash: string, days: readonly number[]): Promise<DayCounts[]> {
    return days.map((day) => ({ ...(this.days.get(day)?.get(keyHash) ?? { allowed: 0, rate_limited: 0 }) }));
  }

  async readDays(days: readonly number[]): Promise<Map<number, Map<string, DayCounts>>> {
    const result = new Map<number, Map<string, DayCounts>>();
    for (const day of days)
      result.set(day, new Map([...(this.days.get(day) ?? new Map<string, DayCounts>())].map(([k, v]) => [k, { ...v }])));
    return result;
  }
}
