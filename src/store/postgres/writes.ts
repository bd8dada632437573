import { dayOffset, HISTORY_RETENTION_DAYS } from '../../usage/history';
import { columnValue, COUNTER_COLUMNS, extraColumn, SETTINGS_COLUMNS, usageColumns } from './codec';
import { background, type PgClient, type PgPool } from './connect';
import { channelOf, tableOf } from './schema';
import { utcMonth, type RawRecord } from '../record';
import type { UsageDelta } from '../types';

/** A query as pg takes it. */
export interface Statement {
  text: string;
  values: unknown[];
}

/**
 * Marks keys as changed, in the caller's transaction: bumps `change_version` (whose row lock also
 * makes changes commit in version order, so that a reader that has seen a version has seen every
 * one before it), stamps the keys with it and announces each on the channel at commit.
 */
export async function publishChange(client: PgClient, schema: string, hashes: string[]): Promise<void> {
  await client.query(
    `WITH v AS (UPDATE ${tableOf(schema, 'meta')} SET value = value + 1 WHERE name = 'change_version' RETURNING value)
     UPDATE ${tableOf(schema, 'keys')} k SET version = v.value FROM v WHERE k.key_hash = ANY($1::text[])
     RETURNING pg_notify($2, k.key_hash)`,
    [hashes, channelOf(schema)],
  );
}

const ALL_COLUMNS = ['key_hash', ...SETTINGS_COLUMNS, ...COUNTER_COLUMNS, 'legacy_format', 'extra'] as const;

/** Rows of one INSERT: the most that stays well under PostgreSQL's 65,535 parameters. */
export const INSERT_CHUNK = 500;

/**
 * Inserts whole records (counters included), leaving alone any key the table has already.
 * Returns the statement; its RETURNING lists the hashes inserted.
 */
export function insertRecords(schema: string, rows: Array<{ raw: RawRecord; hash: string; legacy: boolean }>): Statement {
  const values: unknown[] = [];
  const tuples = rows.map(({ raw, hash, legacy }) => {
    const params = ALL_COLUMNS.map((column) => {
      if (column === 'key_hash') values.push(hash);
      else if (column === 'legacy_format') values.push(legacy || raw.legacy_format === true);
      else if (column === 'extra') values.push(extraColumn(raw));
      else values.push(columnValue(raw, column));
      return `$${values.length}`;
    });
    return `(${params.join(', ')})`;
  });
  return {
    text: `INSERT INTO ${tableOf(schema, 'keys')} (${ALL_COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}
      ON CONFLICT (key_hash) DO NOTHING RETURNING key_hash`,
    values,
  };
}

/** Sets some columns of one key to the values of a raw record; RETURNING the row. */
export function updateColumns(schema: string, hash: string, raw: RawRecord, columns: readonly string[]): Statement {
  const values: unknown[] = [hash];
  const sets = columns.map((column) => {
    values.push(columnValue(raw, column));
    return `${column} = $${values.length}`;
  });
  return { text: `UPDATE ${tableOf(schema, 'keys')} SET ${sets.join(', ')} WHERE key_hash = $1 RETURNING *`, values };
}

/**
 * One flush's usage in one statement, applied once: the batch id goes in `usage_batches` in the
 * same statement, and the counters change only when it was not there yet. Returns whether the
 * batch was new (`fresh`) and the units of keys found (`counted`).
 */
export function applyUsageStatement(schema: string, deltas: UsageDelta[], batchId: string, nowSeconds: number): Statement {
  const c = usageColumns(deltas);
  const keys = tableOf(schema, 'keys');
  return {
    text: `WITH b AS (
        INSERT INTO ${tableOf(schema, 'usage_batches')} (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING 1
      ), d AS (
        SELECT * FROM unnest($3::text[], $4::bigint[], $5::float8[], $6::int[], $7::bigint[], $8::int[], $9::bigint[])
          AS d(hash, units, last_used, day, day_units, month, month_units)
      ), u AS (
        UPDATE ${keys} k SET
          usage_count = k.usage_count + d.units,
          requests_today = CASE WHEN d.day > k.requests_day THEN d.day_units
                                WHEN d.day = k.requests_day THEN k.requests_today + d.day_units
                                ELSE k.requests_today END,
          requests_day = GREATEST(k.requests_day, d.day),
          requests_this_month = CASE WHEN d.month > coalesce(k.requests_month, 0) THEN d.month_units
                                     WHEN d.month = k.requests_month THEN coalesce(k.requests_this_month, 0) + d.month_units
                                     ELSE k.requests_this_month END,
          requests_month = CASE WHEN d.month > coalesce(k.requests_month, 0) THEN d.month ELSE k.requests_month END,
          last_used = GREATEST(coalesce(k.last_used, 0), d.last_used)
        FROM d WHERE k.key_hash = d.hash AND EXISTS (SELECT 1 FROM b)
        RETURNING d.units
      )
      SELECT (SELECT count(*) FROM b)::int AS fresh, coalesce((SELECT sum(units) FROM u), 0)::float8 AS counted`,
    values: [batchId, nowSeconds, c.hashes, c.units, c.lastUsed, c.day, c.dayUnits, c.month, c.monthUnits],
  };
}

/** How long what a spend took is kept for its refund: a request's life, or an outage's. */
const SPEND_TRACE_SECONDS = 3600;

/** Removes batch ids older than a day, quota counters of months gone, spends of the past and history past its retention. */
export async function pruneOld(pool: PgPool, schema: string, now: number): Promise<void> {
  const t = (name: string) => tableOf(schema, name);
  const dayAgo = now / 1000 - 86_400;
  await pool.query(background(`DELETE FROM ${t('usage_batches')} WHERE at < $1`, [dayAgo]));
  await pool.query(background(`DELETE FROM ${t('history_batches')} WHERE at < $1`, [dayAgo]));
  await pool.query(background(`DELETE FROM ${t('quota')} WHERE month < $1`, [utcMonth(now - 62 * 86_400_000)]));
  await pool.query(background(`DELETE FROM ${t('spends')} WHERE at < $1`, [now / 1000 - SPEND_TRACE_SECONDS]));
  await pool.query(background(`DELETE FROM ${t('history')} WHERE day < $1`, [dayOffset(now, -HISTORY_RETENTION_DAYS)]));
}
