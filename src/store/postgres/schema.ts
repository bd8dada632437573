import { DaymindError } from '../../errors';
import type { PgPool } from './connect';

/**
 * The table layout of the PostgreSQL key store, all in one schema (`daymind` by default):
 *
 * - `meta`: named numbers: `layout_version` (the layout these tables have) and `change_version`
 *   (bumped by every change of a key's settings, so instances fetch only what changed).
 * - `keys`: one row per key, the record's fields as columns; `version` is the `change_version`
 *   of its last settings change.
 * - `usage_batches`: ids of the usage flushes applied, so that a retried flush counts once.
 * - `quota`: units of each key's monthly quota spent, per month (`YYYYMM`).
 * - `spends`: what each recent spend took (kept an hour), so that a spend is given back once, also
 *   one whose reply was lost (the request was refused, but the database had spent).
 * - `history`, `history_batches`: per-key, per-day request counts and the flushes applied.
 */
export const LAYOUT_VERSION = 1;

/** `"schema".name`, for a schema name checked by isDatabaseSchema (lower-case letters, digits, _). */
export function tableOf(schema: string, name: string): string {
  return `"${schema}".${name}`;
}

/** The channel on which changes of key settings are announced (payload: the key hash). */
export function channelOf(schema: string): string {
  return `${schema}_key_changes`;
}

function layoutSql(schema: string): string {
  const t = (name: string) => tableOf(schema, name);
  return `
CREATE TABLE IF NOT EXISTS ${t('keys')} (
  key_hash text PRIMARY KEY,
  key_prefix text NOT NULL DEFAULT '',
  owner text NOT NULL DEFAULT '',
  created_at double precision NOT NULL DEFAULT 0,
  usage_count bigint NOT NULL DEFAULT 0,
  requests_today bigint NOT NULL DEFAULT 0,
  requests_day integer NOT NULL DEFAULT 0,
  last_used double precision,
  revoked boolean NOT NULL DEFAULT false,
  revoked_at double precision,
  revoke_at double precision,
  rotated_from text,
  rate_limit_per_minute integer,
  expires_at double precision,
  meta jsonb,
  stripe_customer_id text,
  plan text,
  scopes jsonb,
  credits bigint,
  credits_refill_interval text,
  credits_refill_amount bigint,
  credits_period integer,
  requests_this_month bigint,
  requests_month integer,
  legacy_format boolean NOT NULL DEFAULT false,
  extra jsonb,
  version bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS keys_version ON ${t('keys')} (version);
CREATE TABLE IF NOT EXISTS ${t('usage_batches')} (id text PRIMARY KEY, at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS ${t('quota')} (
  key_hash text NOT NULL,
  month integer NOT NULL,
  used bigint NOT NULL,
  PRIMARY KEY (key_hash, month)
);
CREATE TABLE IF NOT EXISTS ${t('history')} (
  day integer NOT NULL,
  key_hash text NOT NULL,
  allowed bigint NOT NULL DEFAULT 0,
  rate_limited bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, key_hash)
);
CREATE TABLE IF NOT EXISTS ${t('history_batches')} (id text PRIMARY KEY, at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS ${t('spends')} (
  id text PRIMARY KEY,
  key_hash text NOT NULL,
  units bigint NOT NULL,
  month integer NOT NULL,
  quota boolean NOT NULL,
  credits boolean NOT NULL,
  at double precision NOT NULL
);
${spendFunctions(schema)}
INSERT INTO ${t('meta')} (name, value) VALUES ('layout_version', ${LAYOUT_VERSION}), ('change_version', 0)
  ON CONFLICT (name) DO NOTHING;
`;
}

/**
 * `spend` takes a request's units from the monthly quota and the prepaid credits of a key, both or
 * neither, with the key's row locked (so several instances never overshoot either), and notes
 * what it took under the spend's id. Returns the status (1 spent, -1 quota, -2 credits), the
 * month's units used and the credits (-1: not prepaid). `refund` gives back what the spend of an
 * id took, once (false when it took nothing or was given back already).
 */
function spendFunctions(schema: string): string {
  const t = (name: string) => tableOf(schema, name);
  return `
CREATE OR REPLACE FUNCTION ${t('spend')}(p_id text, p_at double precision, p_hash text, p_units bigint, p_quota bigint,
  p_month integer, p_day integer, OUT o_status integer, OUT o_used bigint, OUT o_credits bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  k record;
  v_period integer;
BEGIN
  o_status := 1; o_used := 0; o_credits := -1;
  SELECT * INTO k FROM ${t('keys')} WHERE key_hash = p_hash FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  IF p_quota >= 0 THEN
    SELECT q.used INTO o_used FROM ${t('quota')} q WHERE q.key_hash = p_hash AND q.month = p_month;
    IF NOT FOUND THEN
      o_used := CASE WHEN k.requests_month = p_month THEN coalesce(k.requests_this_month, 0) ELSE 0 END;
    END IF;
    IF o_used + p_units > p_quota THEN o_status := -1; RETURN; END IF;
  END IF;
  IF k.credits IS NOT NULL THEN
    o_credits := k.credits;
    IF k.credits_refill_interval IS NOT NULL THEN
      v_period := CASE WHEN k.credits_refill_interval = 'daily' THEN p_day ELSE p_month END;
      IF k.credits_period IS DISTINCT FROM v_period THEN
        o_credits := coalesce(k.credits_refill_amount, 0);
        UPDATE ${t('keys')} SET credits = o_credits, credits_period = v_period WHERE key_hash = p_hash;
      END IF;
    END IF;
    IF o_credits < p_units THEN o_status := -2; RETURN; END IF;
    UPDATE ${t('keys')} k2 SET credits = k2.credits - p_units
      WHERE k2.key_hash = p_hash AND k2.credits >= p_units RETURNING k2.credits INTO o_credits;
  END IF;
  IF p_quota >= 0 THEN
    o_used := o_used + p_units;
    INSERT INTO ${t('quota')} AS q (key_hash, month, used) VALUES (p_hash, p_month, o_used)
      ON CONFLICT (key_hash, month) DO UPDATE SET used = EXCLUDED.used;
  END IF;
  IF p_quota >= 0 OR o_credits >= 0 THEN
    INSERT INTO ${t('spends')} (id, key_hash, units, month, quota, credits, at)
      VALUES (p_id, p_hash, p_units, p_month, p_quota >= 0, o_credits >= 0, p_at);
  END IF;
END
$fn$;
CREATE OR REPLACE FUNCTION ${t('refund')}(p_id text) RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
  s record;
BEGIN
  DELETE FROM ${t('spends')} WHERE id = p_id RETURNING * INTO s;
  IF NOT FOUND THEN RETURN false; END IF;
  UPDATE ${t('quota')} SET used = used - s.units WHERE s.quota AND key_hash = s.key_hash AND month = s.month;
  UPDATE ${t('keys')} SET credits = credits + s.units WHERE s.credits AND key_hash = s.key_hash AND credits IS NOT NULL;
  RETURN true;
END
$fn$;
`;
}

/**
 * Creates the schema and its tables when missing (one instance at a time: an advisory lock
 * serialises instances starting together), and refuses a layout written by a newer version.
 */
export async function ensureLayout(pool: PgPool, schema: string): Promise<void> {
  const client = await pool.connect();
  let failed: unknown;
  const onError = (err: Error) => (failed = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`daymind-auth layout ${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${tableOf(schema, 'meta')} (name text PRIMARY KEY, value bigint NOT NULL)`);
    const found = await client.query<{ value: string }>(`SELECT value FROM ${tableOf(schema, 'meta')} WHERE name = 'layout_version'`);
    const version = found.rows[0] ? Number(found.rows[0].value) : 0;
    if (version > LAYOUT_VERSION) {
      throw new DaymindError(
        'ERR_DAYMIND_CONFIG',
        `the PostgreSQL schema "${schema}" has table layout ${version}, written by a newer daymind-auth; this version knows layout ${LAYOUT_VERSION} and leaves it untouched: upgrade daymind-auth`,
      );
    }
    if (version < LAYOUT_VERSION) await client.query(layoutSql(schema));
    await client.query('COMMIT');
  } catch (err) {
    failed = err;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(failed instanceof DaymindError ? undefined : (failed as Error | undefined));
  }
}
