import { randomUUID } from 'node:crypto';
import { DaymindError } from '../../errors';
import { answeredByDatabase, type PgPool } from './connect';
import type { PgHealth } from './health';
import { tableOf } from './schema';
import { creditsPeriod, utcMonth } from '../record';
import type { SpendRequest, SpendResult } from '../types';

/**
 * Quota and credits spending on PostgreSQL, for PostgresKeyStore: one call of the `spend`
 * function per request (the key's row locked: exact across instances). While the pool's health
 * says the database is down, a spend rejects at once. Each spend has an id under which the
 * database notes what it took, so that it is given back once: when the request does not count,
 * and when its reply was lost (the request was refused, but the database may have spent).
 */
export class PgSpender {
  /** The id of each spend, for its refund. */
  private readonly ids = new WeakMap<SpendResult, string>();
  /** Spends whose reply was lost, to give back once the database answers. */
  private uncertain: string[] = [];

  constructor(
    private readonly pool: PgPool,
    private readonly schema: string,
    private readonly health: PgHealth,
  ) {}

  async spend(keyHash: string, request: SpendRequest): Promise<SpendResult> {
    const id = randomUUID();
    const query = () =>
      this.pool.query<{ o_status: number; o_used: string; o_credits: string }>(
        `SELECT * FROM ${tableOf(this.schema, 'spend')}($1, $2, $3, $4, $5, $6, $7)`,
        [
          id,
          request.nowMs / 1000,
          keyHash,
          request.units,
          request.monthlyQuota ?? -1,
          utcMonth(request.nowMs),
          creditsPeriod('daily', request.nowMs),
        ],
      );
    let result;
    try {
      result = await this.health.run(query);
    } catch (err) {
      // Refused before sending (DaymindError) or answered with an error: nothing was spent.
      if (!answeredByDatabase(err) && !(err instanceof DaymindError)) this.uncertain.push(id);
      throw err;
    }
    const { o_status: status, o_used: used, o_credits: credits } = result.rows[0]!;
    const spent: SpendResult = {
      outcome: status === 1 ? 'spent' : status === -1 ? 'quota_exceeded' : 'credits_exhausted',
      monthUsed: Number(used),
      credits: Number(credits) < 0 ? undefined : Number(credits),
    };
    if (status === 1) this.ids.set(spent, id);
    return spent;
  }

  async refund(spent: SpendResult): Promise<void> {
    const id = this.ids.get(spent);
    if (spent.outcome !== 'spent' || id === undefined) return;
    this.ids.delete(spent);
    try {
      await this.health.run(() => this.pool.query(`SELECT ${tableOf(this.schema, 'refund')}($1)`, [id]));
    } catch (err) {
      if (!answeredByDatabase(err)) this.uncertain.push(id);
      throw err;
    }
  }

  /** Gives back what the spends whose reply was lost took, each once. */
  async settle(): Promise<void> {
    while (this.uncertain.length > 0) {
      await this.health.watch(this.pool.query(`SELECT ${tableOf(this.schema, 'refund')}($1)`, [this.uncertain[0]]));
      this.uncertain.shift();
    }
  }
}
