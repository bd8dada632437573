import { DaymindError, describeError } from '../../errors';
import { DEFAULT_KEY_PREFIX } from '../../keys';
import { DEFAULT_REDIS_PREFIX } from '../../config/setting-values';
import { whenReady, type IORedisClient } from '../../redis/connection';
import { healthOf, type RedisHealth } from '../../redis/health';
import { addUsage, applyKeyChanges, assertKeyChanges, markRevoked, newRawRecord, rotateRaw, type RawRecord } from '../record';
import { OnceReporter } from '../../internal/report-once';
import { oneRunAtATime } from '../../internal/one-run-at-a-time';
import { decodeRecord, encodeRecord, pairs, redisFieldsOf, writeArgs } from './codec';
import { RedisSpender } from './spend';
import { APPLY_USAGE, WRITE_RECORD } from './scripts';
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

import type { RedisKeyStoreOptions } from './options';

type Commands = IORedisClient & {
  daymindWriteRecord(...args: Array<string | number>): Promise<number>;
  daymindApplyUsage(...args: Array<string | number>): Promise<number>;
};

/** Retries of a batch come within seconds or minutes of an outage; a day covers them. */
const BATCH_MARKER_TTL_SECONDS = 86_400;
const LOAD_CHUNK = 1000;

/**
 * Keys and counters in Redis hashes, shared by every app instance. Records are cached in memory
 * and indexed by hash, so the request path never waits for Redis. Every metadata change bumps a
 * version and is logged in a sorted set; instances fetch what changed every 250 ms (and at once
 * when a well-formed key is not found). Usage is added by one Lua script per flush, once per batch.
 *
 * Layout (`{daymind}` by default): `:key:<hash>` a hash per key, `:keys` the set of hashes,
 * `:version` the change counter, `:changes` hash -> version of its last change, `:batch:<id>`
 * markers of applied usage batches (kept a day).
 */
export class RedisKeyStore implements KeyStore {
  private readonly client: Commands;
  private readonly ns: string;
  private readonly pollIntervalMs: number;
  private readonly failClosed: boolean;
  private readonly keyPrefix: string;
  private readonly readyTimeoutMs: number;
  private readonly now: () => number;
  private cache = new Map<string, KeyRecord>();
  private readonly spender: RedisSpender;
  /** Shared with the limiter and the spender: once a command timed out, none of them asks Redis until it answers. */
  private readonly health: RedisHealth;
  private legacy = new Set<string>();
  private loaded = false;
  private version = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Background problems, reported once while they last, not on every poll. */
  private readonly problems: OnceReporter<Error>;

  constructor(options: RedisKeyStoreOptions) {
    this.client = options.client as Commands;
    this.ns = `{${options.prefix ?? DEFAULT_REDIS_PREFIX}}`;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.failClosed = options.failureMode === 'closed';
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 2000;
    this.now = options.now ?? Date.now;
    this.problems = new OnceReporter(options.onError ?? ((err) => console.error(`[daymind-auth] ${err.message}`)));
    this.health = healthOf(options.client);
    this.spender = new RedisSpender(
      this.client,
      (hash) => this.recordKey(hash),
      (hash, month) => `${this.ns}:quota:${hash}:${month}`,
    );
    if (typeof this.client.daymindWriteRecord !== 'function') {
      this.client.defineCommand('daymindWriteRecord', { numberOfKeys: 4, lua: WRITE_RECORD });
      this.client.defineCommand('daymindApplyUsage', { lua: APPLY_USAGE });
    }
  }

  private recordKey(hash: string): string {
    return `${this.ns}:key:${hash}`;
  }

  /** The record as Redis has it now (one HGETALL), or undefined. */
  private async read(hash: string): Promise<KeyRecord | undefined> {
    return decodeRecord(hash, await this.client.hgetall(this.recordKey(hash)));
  }

  private get metaKeys(): [string, string, string] {
    return [`${this.ns}:keys`, `${this.ns}:version`, `${this.ns}:changes`];
  }

  async init(): Promise<void> {
    try {
      await whenReady(this.client, this.readyTimeoutMs);
      await this.loadAll();
    } catch (err) {
      this.problems.report(
        new DaymindError('ERR_DAYMIND_UNAVAILABLE', `Redis key store not loaded yet, retrying: ${describeError(err)}`, { cause: err }),
      );
    }
    if (!this.timer && this.pollIntervalMs > 0) {
      this.timer = setInterval(() => void this.polls(), this.pollIntervalMs);
      this.timer.unref();
    }
  }

  get(keyHash: string): KeyRecord | undefined {
    if (!this.loaded) throw new DaymindError('ERR_DAYMIND_UNAVAILABLE', 'the Redis key store has not been loaded yet');
    if (this.failClosed && !this.health.healthy) throw this.health.down();
    return this.cache.get(keyHash);
  }

  /** The record as Redis has it now, counters included; the cached one when Redis does not answer. */
  async fetch(keyHash: string): Promise<KeyRecord | undefined> {
    try {
      const record = await this.health.run(() => this.read(keyHash));
      if (record) this.cache.set(keyHash, record);
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

  /** Whether a key was copied in from a store that held it in plain text (older deployments). */
  isUnchecksummed(keyHash: string): boolean {
    return this.legacy.has(keyHash);
  }

  /** Fetches of changes: at most one runs at a time, and at most one more waits behind it. */
  private readonly polls = oneRunAtATime(() => this.poll());

  /**
   * Fetches changes now. While Redis is down it does not even wait for a fetch under way (one sent
   * before the outage was found waits out its timeout): the cached records are all there is.
   */
  refresh(): Promise<void> {
    return this.health.healthy ? this.polls() : Promise.resolve();
  }

  async create(input: NewKeyInput): Promise<CreatedKey> {
    const { key, raw } = newRawRecord(input, this.now(), this.keyPrefix);
    const hash = raw.key_hash as string;
    await this.write(hash, 'create', raw);
    const record = decodeRecord(hash, Object.fromEntries(pairs(encodeRecord(raw).fields)))!;
    this.cache.set(hash, record);
    return { key, record: { ...record } };
  }

  /**
   * Copies a record (counters included) unless Redis already has that key: running a migration
   * twice does not count anything twice. Returns whether it was copied.
   */
  async importRecord(raw: RawRecord, hash: string, legacyFormat: boolean): Promise<boolean> {
    const copy: RawRecord = { ...raw };
    if (legacyFormat) copy.legacy_format = true;
    return (await this.write(hash, 'absent', copy)) > 0;
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    const current = await this.read(keyHash);
    if (!current) return undefined;
    const changed: RawRecord = { ...current };
    markRevoked(changed, this.now());
    await this.writeFields(keyHash, { revoked: '1', revoked_at: String(changed.revoked_at) });
    const record = { ...current, revoked: true, revoked_at: changed.revoked_at as number };
    this.cache.set(keyHash, record);
    return { ...record };
  }

  async rotate(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined> {
    const current = await this.read(keyHash);
    if (!current) return undefined;
    const old: RawRecord = { ...current };
    const rotated = rotateRaw([old], (r) => r === old, keyHash, graceSeconds, this.keyPrefix, this.now())!;
    const fresh: RawRecord = { ...rotated.record };
    const oldFields: Record<string, string> = rotated.previous.revoked
      ? { revoked: '1', revoked_at: String(rotated.previous.revoked_at) }
      : { revoke_at: String(rotated.previous.revoke_at) };
    const [keysKey, versionKey, changesKey] = this.metaKeys;
    const multi = this.client.multi();
    (multi as unknown as Commands).daymindWriteRecord(
      this.recordKey(rotated.record.key_hash),
      keysKey,
      versionKey,
      changesKey,
      ...writeArgs(rotated.record.key_hash, 'create', fresh),
    );
    (multi as unknown as Commands).daymindWriteRecord(
      this.recordKey(keyHash),
      keysKey,
      versionKey,
      changesKey,
      keyHash,
      'update',
      0,
      ...Object.entries(oldFields).flat(),
    );
    const replies = (await multi.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    this.cache.set(rotated.record.key_hash, rotated.record);
    this.cache.set(keyHash, rotated.previous);
    return rotated;
  }

  async update(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    const { add_credits: add, ...rest } = changes;
    const current = await this.read(keyHash);
    if (!current) return undefined;
    const raw: RawRecord = { ...current };
    applyKeyChanges(raw, rest, this.now());
    const { fields, absent } = encodeRecord(raw);
    const wanted = new Set(Object.keys(rest).flatMap(redisFieldsOf));
    const set: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) if (wanted.has(fields[i]!)) set[fields[i]!] = fields[i + 1]!;
    await this.writeFields(
      keyHash,
      set,
      absent.filter((f) => wanted.has(f)),
    );
    if (add !== undefined) {
      assertKeyChanges({ add_credits: add });
      // Settle a refill due first (a spend of nothing), then add atomically: spends may run meanwhile.
      await this.spender.spend(keyHash, { units: 0, nowMs: this.now(), monthlyQuota: null });
      const credits = await this.client.hincrby(this.recordKey(keyHash), 'credits', add);
      if (credits < 0) await this.client.hincrby(this.recordKey(keyHash), 'credits', -credits);
      await this.writeFields(keyHash, {});
    }
    const record = (await this.read(keyHash))!;
    this.cache.set(keyHash, record);
    return { ...record };
  }

  spend(keyHash: string, request: SpendRequest): Promise<SpendResult> {
    return this.spender.spend(keyHash, request);
  }

  refund(keyHash: string, request: SpendRequest, spent: SpendResult): Promise<void> {
    return this.spender.refund(keyHash, request, spent);
  }

  async list(): Promise<KeyRecord[]> {
    await this.loadAll();
    return [...this.cache.values()].map((r) => ({ ...r }));
  }

  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const keys = [`${this.ns}:batch:${batch?.batchId ?? `${Date.now()}-${Math.random()}`}`];
    const args: Array<string | number> = [BATCH_MARKER_TTL_SECONDS];
    for (const delta of deltas) {
      keys.push(this.recordKey(delta.key_hash));
      args.push(delta.units, String(delta.last_used), delta.days.length);
      for (const { day, units } of delta.days) args.push(day, units);
    }
    const missing = await this.health.watch(this.client.daymindApplyUsage(keys.length, ...keys, ...args));
    if (missing !== -1) {
      for (const delta of deltas) {
        const cached = this.cache.get(delta.key_hash);
        if (!cached) continue;
        const next = { ...cached };
        addUsage(next, delta);
        this.cache.set(delta.key_hash, next);
      }
    }
    batch?.onApplied();
    if (missing > 0) {
      this.problems.report(
        new DaymindError('ERR_DAYMIND_USAGE_FLUSH', `${missing} usage unit(s) belong to keys no longer in Redis; they were not recorded`),
      );
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polls.idle();
  }

  private async write(hash: string, mode: 'create' | 'update' | 'absent', raw: RawRecord): Promise<number> {
    const [keysKey, versionKey, changesKey] = this.metaKeys;
    const result = await this.client.daymindWriteRecord(
      this.recordKey(hash),
      keysKey,
      versionKey,
      changesKey,
      ...writeArgs(hash, mode, raw),
    );
    if (mode === 'create' && result === -1) throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', 'a key with this hash exists already');
    return result;
  }

  /** Sets some fields of an existing record (and deletes `remove`), publishing the change. */
  private async writeFields(hash: string, fields: Record<string, string>, remove: string[] = []): Promise<void> {
    const [keysKey, versionKey, changesKey] = this.metaKeys;
    await this.client.daymindWriteRecord(
      this.recordKey(hash),
      keysKey,
      versionKey,
      changesKey,
      hash,
      'update',
      remove.length,
      ...remove,
      ...Object.entries(fields).flat(),
    );
  }

  private async loadAll(): Promise<void> {
    const [keysKey, versionKey] = this.metaKeys;
    const version = Number((await this.client.get(versionKey)) ?? 0);
    const hashes = await this.client.smembers(keysKey);
    const cache = new Map<string, KeyRecord>();
    const legacy = new Set<string>();
    for (let i = 0; i < hashes.length; i += LOAD_CHUNK) {
      const chunk = hashes.slice(i, i + LOAD_CHUNK);
      const pipeline = this.client.pipeline();
      for (const hash of chunk) pipeline.hgetall(this.recordKey(hash));
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([err, reply], j) => {
        if (err) throw err;
        const h = reply as Record<string, string>;
        const record = decodeRecord(chunk[j]!, h);
        if (!record) return;
        cache.set(record.key_hash, record);
        if (h.legacy_format === '1') legacy.add(record.key_hash);
      });
    }
    this.cache = cache;
    this.legacy = legacy;
    this.version = version;
    this.loaded = true;
    this.problems.clear();
  }

  private async poll(): Promise<void> {
    // Nothing is sent while Redis is down (the health's probe finds when it answers) or not connected yet.
    if (!this.health.healthy || this.client.status !== 'ready') return;
    try {
      if (!this.loaded) return await this.loadAll();
      const [, versionKey, changesKey] = this.metaKeys;
      const version = Number((await this.client.get(versionKey)) ?? 0);
      if (version === this.version) return;
      if (version < this.version) return this.loadAll(); // the data set was replaced (FLUSHALL, failover)
      const changed = await this.client.zrangebyscore(changesKey, `(${this.version}`, '+inf');
      const pipeline = this.client.pipeline();
      for (const hash of changed) pipeline.hgetall(this.recordKey(hash));
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([err, reply], j) => {
        if (err) throw err;
        const hash = changed[j]!;
        const h = reply as Record<string, string>;
        const record = decodeRecord(hash, h);
        if (record) this.cache.set(hash, record);
        else this.cache.delete(hash);
        if (h.legacy_format === '1') this.legacy.add(hash);
      });
      this.version = version;
      this.problems.clear();
    } catch (err) {
      this.health.failed(err);
      this.problems.report(
        new DaymindError('ERR_DAYMIND_UNAVAILABLE', `cannot fetch key changes from Redis: ${describeError(err)}`, { cause: err }),
      );
    }
  }
}
