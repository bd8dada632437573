import { DaymindError, describeError } from '../../errors';
import { answeredByDatabase, type PgPool } from './connect';

/** While PostgreSQL is down, how long after a failed probe the next one goes out. */
export const PG_PROBE_INTERVAL_MS = 500;

/**
 * A circuit breaker for one pool, shared by the PostgreSQL key store, its spends and its usage
 * history (as RedisHealth is for a Redis client). A query that times out or fails for want of a
 * connection marks the database down; while it is down, {@link run} rejects at once, so each
 * request falls back as the failure mode says instead of waiting for a timeout of its own. The
 * database is up again when it answers a `SELECT 1`, sent at once and then every
 * {@link PG_PROBE_INTERVAL_MS} until one is answered.
 */
export class PgHealth {
  private up = true;
  private cause: unknown;
  private probing = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(up: boolean, cause: unknown) => void> = [];

  constructor(private readonly pool: PgPool) {
    // An idle connection that breaks: an outage (this listener also keeps pg's 'error' event from crashing the process).
    pool.on('error', (err: Error) => this.failed(err));
  }

  get healthy(): boolean {
    return this.up;
  }

  /** For the request path: runs `query` when the database is healthy, else rejects at once. */
  run<T>(query: () => Promise<T>): Promise<T> {
    if (!this.up) return Promise.reject(this.down());
    return this.watch(query());
  }

  /** For background writes, sent whatever the state; a failure that is not the database's own answer marks it down. */
  watch<T>(query: Promise<T>): Promise<T> {
    return query.catch((err: unknown) => {
      this.failed(err);
      throw err;
    });
  }

  down(): DaymindError {
    return new DaymindError('ERR_DAYMIND_UNAVAILABLE', `PostgreSQL is not answering (${describeError(this.cause)})`, {
      cause: this.cause,
    });
  }

  failed(err: unknown): void {
    // A DaymindError is the library's own (a layout it must not touch), not the database's silence.
    if (!this.up || this.closed || answeredByDatabase(err) || err instanceof DaymindError) return;
    this.up = false;
    this.cause = err;
    for (const listener of this.listeners) listener(false, err);
    this.probe();
  }

  /** Calls `listener(false, cause)` when the database goes down and `listener(true)` when it is back. */
  onChange(listener: (up: boolean, cause: unknown) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    this.pool.query('SELECT 1').then(
      () => {
        this.probing = false;
        if (this.closed) return;
        this.up = true;
        for (const listener of this.listeners) listener(true, undefined);
      },
      () => {
        this.probing = false;
        if (this.closed) return;
        this.timer = setTimeout(() => this.probe(), PG_PROBE_INTERVAL_MS);
        this.timer.unref();
      },
    );
  }
}

const healths = new WeakMap<object, PgHealth>();

/** The one health of `pool`, so that a timeout seen by any part stops all of them from waiting. */
export function pgHealthOf(pool: PgPool): PgHealth {
  let health = healths.get(pool);
  if (!health) {
    health = new PgHealth(pool);
    healths.set(pool, health);
  }
  return health;
}
