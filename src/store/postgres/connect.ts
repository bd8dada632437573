import type { Pool, PoolClient } from 'pg';
import { loadPeer } from '../../internal/peer';
import type { PgPoolLike } from '../../config/setting-values';

/** The pg types, for the implementation only. */
export type PgPool = Pool;
export type PgClient = PoolClient;

/** Loads the optional peer dependency pg, or says how to install it. */
export function loadPg(variable: string): typeof import('pg') {
  return loadPeer(
    'pg',
    (cause) =>
      `${variable} asks for PostgreSQL, but the optional peer dependency "pg" cannot be loaded (${cause}); install it: npm install pg`,
  );
}

/**
 * A pool for `url` whose queries never hang a request: each query times out after `timeoutMs`
 * (the connection is then dropped, not reused), and so does waiting for a connection.
 */
export function connectPostgres(url: string, variable: string, timeoutMs: number): PgPool {
  const { Pool: PoolClass } = loadPg(variable);
  return new PoolClass({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: Math.max(timeoutMs, 1000),
    query_timeout: timeoutMs,
    keepAlive: true,
    application_name: 'daymind-auth',
  });
}

/**
 * The query timeout of background work (usage flushes, loads, table creation): a flush of
 * thousands of keys under load may take longer than a request may wait, and makes no request wait.
 */
export const BACKGROUND_TIMEOUT_MS = 30_000;

/** A query for pg with the background timeout. */
export function background(text: string, values?: unknown[]): { text: string; values?: unknown[]; query_timeout: number } {
  return { text, values, query_timeout: BACKGROUND_TIMEOUT_MS };
}

/** The pool as the implementation uses it. */
export function asPool(pool: PgPoolLike): PgPool {
  return pool as unknown as PgPool;
}

/** A Postgres URL fit to print: its password replaced by ***. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/**
 * Runs `work` in a transaction on one connection of the pool. A failed connection is dropped from
 * the pool (not reused); an error the database answered rolls back and keeps it.
 */
export async function inTransaction<T>(pool: PgPool, work: (client: PgClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A connection lost while held is an 'error' event on it: the query under way fails with it too.
  const onError = (err: Error) => (broken = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (answeredByDatabase(err)) await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    else broken = err as Error;
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/**
 * Whether the database itself sent back this error (a constraint, a bad value, ...): then it is
 * reachable. Errors of the connection class (08), shutdowns and start-ups (57P) and errors without
 * an SQLSTATE (timeouts, refused or lost connections) say it is not.
 */
export function answeredByDatabase(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  const severity = (err as { severity?: unknown } | undefined)?.severity;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || typeof severity !== 'string') return false;
  return !code.startsWith('08') && !code.startsWith('57P') && !code.startsWith('53');
}
