import type { PgPoolLike } from '../config/setting-values';
import { DEFAULT_DATABASE_SCHEMA } from '../config/setting-values';
import { asPool, background, type PgPool } from '../store/postgres/connect';
import { pgHealthOf, type PgHealth } from '../store/postgres/health';
import { tableOf } from '../store/postgres/schema';
import type { DayCounts, HistoryEntry, UsageHistory } from './history';

export interface PostgresUsageHistoryOptions {
  /** The key store's pool (the tables are created by PostgresKeyStore). */
  pool: PgPoolLike;
  /** The key store's schema; default `daymind`. */
  schema?: string;
  /** The clock, in ms, that stamps the batches applied. Default `Date.now`. */
  now?: () => number;
}

/**
 * History in PostgreSQL: a row per day and key (`history`), to which each flush adds in one
 * statement, applied once per batch (its id goes in `history_batches` in the same statement), so
 * every instance's counts add up exactly. The key store removes days past the retention period.
 */
export class PostgresUsageHistory implements UsageHistory {
  private readonly pool: PgPool;
  private readonly schema: string;
  private readonly health: PgHealth;
  private readonly now: () => number;

  constructor(options: PostgresUsageHistoryOptions) {
    this.pool = asPool(options.pool);
    this.schema = options.schema ?? DEFAULT_DATABASE_SCHEMA;
    this.health = pgHealthOf(this.pool);
    this.now = options.now ?? Date.now;
  }

  async add(entries: HistoryEntry[], batchId: string): Promise<void> {
    if (entries.length === 0) return;
    // One row per day and key: INSERT ... ON CONFLICT cannot change a row twice in one statement.
    const rows = new Map<string, HistoryEntry>();
    for (const e of entries) {
      const id = `${e.day}:${e.key_hash}`;
      const row = rows.get(id);
      if (row) {
        row.allowed += e.allowed;
        row.rate_limited += e.rate_limited;
      } else rows.set(id, { ...e });
    }
    const list = [...rows.values()];
    const history = tableOf(this.schema, 'history');
    await this.health.watch(
      this.pool.query(
        background(
          `WITH b AS (
           INSERT INTO ${tableOf(this.schema, 'history_batches')} (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING 1
         )
         INSERT INTO ${history} AS h (day, key_hash, allowed, rate_limited)
           SELECT d.day, d.key_hash, d.allowed, d.rate_limited
           FROM unnest($3::int[], $4::text[], $5::bigint[], $6::bigint[]) AS d(day, key_hash, allowed, rate_limited)
           WHERE EXISTS (SELECT 1 FROM b)
         ON CONFLICT (day, key_hash) DO UPDATE SET allowed = h.allowed + EXCLUDED.allowed, rate_limited = h.rate_limited + EXCLUDED.rate_limited`,
          [
            batchId,
            this.now() / 1000,
            list.map((e) => e.day),
            list.map((e) => e.key_hash),
            list.map((e) => e.allowed),
            list.map((e) => e.rate_limited),
          ],
        ),
      ),
    );
  }

  async read(keyHash: string, days: readonly number[]): Promise<DayCounts[]> {
    const result = await this.health.run(() =>
      this.pool.query<{ day: number; allowed: string; rate_limited: string }>(
        `SELECT day, allowed, rate_limited FROM ${tableOf(this.schema, 'history')} WHERE key_hash = $1 AND day = ANY($2::int[])`,
        [keyHash, days],
      ),
    );
    const byDay = new Map(result.rows.map((r) => [r.day, { allowed: Number(r.allowed), rate_limited: Number(r.rate_limited) }]));
    return days.map((day) => byDay.get(day) ?? { allowed: 0, rate_limited: 0 });
  }

  async readDays(days: readonly number[]): Promise<Map<number, Map<string, DayCounts>>> {
    const result = await this.pool.query<{ day: number; key_hash: string; allowed: string; rate_limited: string }>(
      background(`SELECT day, key_hash, allowed, rate_limited FROM ${tableOf(this.schema, 'history')} WHERE day = ANY($1::int[])`, [days]),
    );
    const out = new Map<number, Map<string, DayCounts>>(days.map((day) => [day, new Map()]));
    for (const r of result.rows) {
      out.get(r.day)?.set(r.key_hash, { allowed: Number(r.allowed), rate_limited: Number(r.rate_limited) });
    }
    return out;
  }
}
