import { randomUUID } from 'node:crypto';
import { DaymindError, describeError } from '../../errors';
import { DEFAULT_KEY_PREFIX } from '../../keys';
import { OnceReporter } from '../../internal/report-once';
import { DEFAULT_DATABASE_SCHEMA, type PgPoolLike } from '../../config/setting-values';
import { oneRunAtATime } from '../../internal/one-run-at-a-time';
import { columnsOf, decodeRow, type KeyRow } from './codec';
import { asPool, background, connectPostgres, inTransaction, type PgClient, type PgPool } from './connect';
import { pgHealthOf, type PgHealth } from './health';
import { PgListener } from './listen';
import { PgSpender } from './spend';
import { channelOf, ensureLayout, tableOf } from './schema';
import { applyUsageStatement, INSERT_CHUNK, insertRecords, pruneOld, publishChange, updateColumns } from './writes';
import { addUsage, applyKeyChanges, markRevoked, newRawRecord, rotateRaw, type RawRecord } from '../record';
import type {
  CreatedKey,
  KeyChanges,
  KeyRecord,
  KeyStore,
  NewKeyInput,
  RotatedKey,
  SpendRequest,
  SpendResult,
  UsageBatch,
  UsageDelta,
} from '../types';

export interface PostgresKeyStoreOptions {
  /** A `postgres://` URL: the store makes its own pool (and closes it). Give this or `pool`. */
  url?: string;
  /** A pg Pool. The store takes one of its connections for LISTEN, and does not close it. */
  pool?: PgPoolLike;
  /** The schema of the store's tables, created on first start. Default `daymind`. */
  schema?: string;
  /** How often changes made by other instances are read when no notification came, in ms. Default 500. */
  pollIntervalMs?: number;
  /** While PostgreSQL is unreachable: `open` (default) answers from the records in memory; `closed` refuses (503). */
  failureMode?: 'open' | 'closed';
  /** Longest wait for one query of a pool made from `url`, in ms. Default 500. */
  timeoutMs?: number;
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /** Whether to LISTEN for changes (besides reading them every `pollIntervalMs`). Default true. */
  listen?: boolean;
  onError?: (err: Error) => void;
  /** The clock, in ms since the epoch, for every time the store stamps or compares. Default `Date.now`. */
  now?: () => number;
}

/** Batch ids are kept a day (retries come within seconds or minutes); old ones are removed about once a minute. */
const PRUNE_EVERY_MS = 60_000;
/** Changed rows read per query. */
const POLL_PAGE = 1000;

/**
 * Keys and counters in PostgreSQL tables, shared by every app instance. Records are held in memory
 * and indexed by hash, so the request path never waits for the database; changes of settings are
 * announced with NOTIFY and read by every instance at once (and every `pollIntervalMs` in case a
 * notification was missed). Usage is added by one statement per flush, once per batch; quota and
 * credits are spent at request time with the key's row locked, exact across instances.
 */
export class PostgresKeyStore implements KeyStore {
  private readonly db: PgPool;
  readonly schema: string;
  private readonly owned: boolean;
  private readonly pollIntervalMs: number;
  private readonly failClosed: boolean;
  private readonly keyPrefix: string;
  private readonly now: () => number;
  private readonly health: PgHealth;
  private readonly listener: PgListener | undefined;
  private readonly problems: OnceReporter<Error>;
  private cache = new Map<string, KeyRecord>();
  private legacy = new Set<string>();
  private loaded = false;
  private layoutReady = false;
  private version = 0;
  private lastPrune = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly spender: PgSpender;

  constructor(options: PostgresKeyStoreOptions) {
    if (!options.pool && !options.url) throw new DaymindError('ERR_DAYMIND_CONFIG', 'PostgresKeyStore needs a url or a pool');
    this.owned = !options.pool;
    this.db = options.pool
      ? asPool(options.pool)
      : connectPostgres(options.url!, 'the database setting (DATABASE_URL)', options.timeoutMs ?? 500);
    this.schema = options.schema ?? DEFAULT_DATABASE_SCHEMA;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.failClosed = options.failureMode === 'closed';
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.now = options.now ?? Date.now;
    this.problems = new OnceReporter(options.onError ?? ((err) => console.error(`[daymind-auth] ${err.message}`)));
    this.health = pgHealthOf(this.db);
    this.spender = new PgSpender(this.db, this.schema, this.health);
    this.health.onChange((up, cause) => (up ? void this.polls() : this.reportOutage(cause)));
    const read = () => void this.polls();
    if (options.listen !== false) this.listener = new PgListener(this.db, channelOf(this.schema), read, read);
  }

  private reportOutage(cause: unknown): void {
    const fallback = this.failClosed ? 'refusing requests (503)' : 'answering from the keys in memory';
    const message = `PostgreSQL is unavailable (${describeError(cause)}); ${fallback} until it returns`;
    this.problems.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', message, { cause }));
  }

  /** The pool, shared with the usage history (typed structurally: pg's types are not needed to use the store). */
  get pool(): PgPoolLike {
    return this.db as unknown as PgPoolLike;
  }

  private t(name: string): string {
    return tableOf(this.schema, name);
  }

  async init(): Promise<void> {
    try {
      await this.prepare();
    } catch (err) {
      // A layout from a newer version is not retried: this version must not touch it.
      if (err instanceof DaymindError && err.code === 'ERR_DAYMIND_CONFIG') throw err;
      this.problems.report(
        new DaymindError('ERR_DAYMIND_UNAVAILABLE', `PostgreSQL key store not loaded yet, retrying: ${describeError(err)}`, { cause: err }),
      );
    }
    if (!this.timer && this.pollIntervalMs > 0) {
      this.timer = setInterval(() => void this.polls(), this.pollIntervalMs);
      this.timer.unref();
    }
  }

  /** Creates the tables when missing, loads every key and starts listening. */
  private async prepare(): Promise<void> {
    if (!this.layoutReady) {
      await this.health.watch(ensureLayout(this.db, this.schema));
      this.layoutReady = true;
    }
    await this.listener?.start();
    await this.loadAll();
  }

  get(keyHash: string): KeyRecord | undefined {
    if (!this.loaded) throw new DaymindError('ERR_DAYMIND_UNAVAILABLE', 'the PostgreSQL key store has not been loaded yet');
    if (this.failClosed && !this.health.healthy) throw this.health.down();
    return this.cache.get(keyHash);
  }

  /** The record as the database has it now, counters included; the one in memory when it does not answer. */
  async fetch(keyHash: string): Promise<KeyRecord | undefined> {
    try {
      const row = await this.health.run(() => this.readRow(keyHash));
      if (!row) return undefined;
      const record = decodeRow(row);
      this.cache.set(keyHash, record);
      return record;
    } catch {
      return this.cache.get(keyHash);
    }
  }

  size(): number {
    return this.cache.size;
  }

  hasUnchecksummedKeys(): boolean {
    return this.legacy.size > 0;
  }

  /** Reads of changes: at most one runs at a time, and at most one more waits behind it. */
  private readonly polls = oneRunAtATime(() => this.poll());

  /** Reads changes now; while the database is down, answers at once (the records in memory are all there is). */
  refresh(): Promise<void> {
    return this.health.healthy ? this.polls() : Promise.resolve();
  }

  async create(input: NewKeyInput): Promise<CreatedKey> {
    const { key, raw } = newRawRecord(input, this.now(), this.keyPrefix);
    const hash = raw.key_hash as string;
    const inserted = await this.importRecords([{ raw, hash, legacy: false }]);
    if (inserted === 0) throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'a key with this hash exists already');
    const record = this.cache.get(hash)!;
    return { key, record: { ...record } };
  }

  /**
   * Copies records (counters included), leaving alone every key the table has already: running a
   * migration twice counts nothing twice. Returns how many were copied.
   */
  async importRecords(rows: Array<{ raw: RawRecord; hash: string; legacy: boolean }>): Promise<number> {
    let copied = 0;
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const inserted = await this.change(async (client) => {
        const statement = insertRecords(this.schema, chunk);
        const result = await client.query<{ key_hash: string }>(background(statement.text, statement.values));
        const hashes = result.rows.map((r) => r.key_hash);
        if (hashes.length > 0) await publishChange(client, this.schema, hashes);
        return hashes.length > 0
          ? (await client.query<KeyRow>(`SELECT * FROM ${this.t('keys')} WHERE key_hash = ANY($1)`, [hashes])).rows
          : [];
      });
      copied += inserted.length;
    }
    return copied;
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    const rows = await this.change(async (client) => {
      const current = await this.lockRow(client, keyHash);
      if (!current) return [];
      const raw: RawRecord = { ...decodeRow(current) };
      markRevoked(raw, this.now());
      await this.write(client, keyHash, raw, ['revoked', 'revoked_at']);
      await publishChange(client, this.schema, [keyHash]);
      return [await this.lockRow(client, keyHash)];
    });
    return rows[0] ? { ...decodeRow(rows[0]) } : undefined;
  }

  async rotate(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined> {
    let rotated: RotatedKey | undefined;
    await this.change(async (client) => {
      const current = await this.lockRow(client, keyHash);
      if (!current) return [];
      const old: RawRecord = { ...decodeRow(current) };
      rotated = rotateRaw([old], (r) => r === old, keyHash, graceSeconds, this.keyPrefix, this.now())!;
      const fresh: RawRecord = { ...rotated.record };
      const statement = insertRecords(this.schema, [{ raw: fresh, hash: rotated.record.key_hash, legacy: false }]);
      await client.query(statement.text, statement.values);
      await this.write(client, keyHash, old, ['revoked', 'revoked_at', 'revoke_at', 'credits', 'credits_period']);
      await publishChange(client, this.schema, [keyHash, rotated.record.key_hash]);
      return (await client.query<KeyRow>(`SELECT * FROM ${this.t('keys')} WHERE key_hash = ANY($1)`, [[keyHash, rotated.record.key_hash]]))
        .rows;
    });
    if (!rotated) return undefined;
    return { ...rotated, record: { ...this.cache.get(rotated.record.key_hash)! }, previous: { ...this.cache.get(keyHash)! } };
  }

  async update(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    const rows = await this.change(async (client) => {
      const current = await this.lockRow(client, keyHash);
      if (!current) return [];
      const raw: RawRecord = { ...decodeRow(current) };
      // With the row locked, a refill due and the credits added are settled against the credits as they are.
      applyKeyChanges(raw, changes, this.now());
      const columns = [...new Set(Object.keys(changes).flatMap(columnsOf))];
      if (columns.length > 0) await this.write(client, keyHash, raw, columns);
      await publishChange(client, this.schema, [keyHash]);
      return [await this.lockRow(client, keyHash)];
    });
    return rows[0] ? { ...decodeRow(rows[0]) } : undefined;
  }

  spend(keyHash: string, request: SpendRequest): Promise<SpendResult> {
    return this.spender.spend(keyHash, request);
  }

  refund(keyHash: string, request: SpendRequest, spent: SpendResult): Promise<void> {
    return this.spender.refund(spent);
  }

  async list(): Promise<KeyRecord[]> {
    await this.loadAll();
    return [...this.cache.values()].map((r) => ({ ...r }));
  }

  /** Whether a key was copied in from a store that held it in plain text (older deployments). */
  isUnchecksummed(keyHash: string): boolean {
    return this.legacy.has(keyHash);
  }

  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const id = batch?.batchId ?? randomUUID();
    const statement = applyUsageStatement(this.schema, deltas, id, this.now() / 1000);
    const result = await this.health.watch(this.db.query<{ fresh: number; counted: number }>(background(statement.text, statement.values)));
    const { fresh, counted } = result.rows[0]!;
    if (fresh > 0) {
      for (const delta of deltas) {
        const cached = this.cache.get(delta.key_hash);
        if (!cached) continue;
        const next = { ...cached };
        addUsage(next, delta);
        this.cache.set(delta.key_hash, next);
      }
    }
    batch?.onApplied();
    const missing = fresh > 0 ? deltas.reduce((sum, d) => sum + d.units, 0) - counted : 0;
    if (missing > 0) {
      this.problems.report(
        new DaymindError(
          'ERR_DAYMIND_USAGE_FLUSH',
          `${missing} usage unit(s) belong to keys no longer in PostgreSQL; they were not recorded`,
        ),
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.listener?.stop();
    await this.polls.idle();
    if (this.health.healthy) await this.spender.settle().catch(() => undefined);
    if (this.owned) {
      this.health.close();
      await this.db.end();
    }
  }

  /** Runs a change of settings in a transaction; caches the rows it returns. */
  private async change(work: (client: PgClient) => Promise<Array<KeyRow | undefined>>): Promise<KeyRow[]> {
    const rows = (await this.health.watch(inTransaction(this.db, work))).filter((r): r is KeyRow => r !== undefined);
    for (const row of rows) this.remember(row);
    return rows;
  }

  private remember(row: KeyRow): void {
    this.cache.set(row.key_hash as string, decodeRow(row));
    if (row.legacy_format === true) this.legacy.add(row.key_hash as string);
  }

  private async readRow(keyHash: string): Promise<KeyRow | undefined> {
    return (await this.db.query<KeyRow>(`SELECT * FROM ${this.t('keys')} WHERE key_hash = $1`, [keyHash])).rows[0];
  }

  private async lockRow(client: PgClient, keyHash: string): Promise<KeyRow | undefined> {
    return (await client.query<KeyRow>(`SELECT * FROM ${this.t('keys')} WHERE key_hash = $1 FOR UPDATE`, [keyHash])).rows[0];
  }

  private async write(client: PgClient, keyHash: string, raw: RawRecord, columns: readonly string[]): Promise<void> {
    const statement = updateColumns(this.schema, keyHash, raw, columns);
    await client.query(statement.text, statement.values);
  }

  private async loadAll(): Promise<void> {
    const result = await this.health.watch(this.db.query<KeyRow>(background(`SELECT * FROM ${this.t('keys')}`)));
    const cache = new Map<string, KeyRecord>();
    const legacy = new Set<string>();
    let version = 0;
    for (const row of result.rows) {
      cache.set(row.key_hash as string, decodeRow(row));
      if (row.legacy_format === true) legacy.add(row.key_hash as string);
      version = Math.max(version, Number(row.version));
    }
    this.cache = cache;
    this.legacy = legacy;
    this.version = version;
    this.loaded = true;
    this.problems.clear();
  }

  private async poll(): Promise<void> {
    if (!this.health.healthy || this.closed) return;
    try {
      if (!this.loaded || !this.layoutReady) return await this.prepare();
      // In pages, so that each query stays short (the request path's timeout is what finds an outage).
      for (;;) {
        const page = `SELECT * FROM ${this.t('keys')} WHERE version > $1 ORDER BY version LIMIT ${POLL_PAGE}`;
        const result = await this.health.watch(this.db.query<KeyRow>(page, [this.version]));
        let last = this.version;
        for (const row of result.rows) {
          this.remember(row);
          last = Math.max(last, Number(row.version));
        }
        if (result.rows.length < POLL_PAGE) {
          this.version = last;
          break;
        }
        // A full page may end part-way through the rows of its last version (one change writes up
        // to INSERT_CHUNK rows, fewer than a page): that version is read again with the next page.
        this.version = last - 1;
      }
      if (this.listener && !this.listener.listening) void this.listener.start();
      await this.spender.settle();
      this.problems.clear();
      // Housekeeping that fails is tried again at the next prune.
      if (this.now() - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = this.now();
        await pruneOld(this.db, this.schema, this.now()).catch(() => undefined);
      }
    } catch (err) {
      if (err instanceof DaymindError && err.code === 'ERR_DAYMIND_CONFIG') {
        clearInterval(this.timer); // nothing to retry: this version must not use the tables
        return this.problems.report(err);
      }
      this.problems.report(
        new DaymindError('ERR_DAYMIND_UNAVAILABLE', `cannot read key changes from PostgreSQL: ${describeError(err)}`, { cause: err }),
      );
    }
  }
}
