import { DEFAULT_KEY_PREFIX, hashKey, displayPrefix, hasValidChecksum } from '../keys';
import {
  addUsage,
  spendCredits,
  applyKeyChanges,
  createdKey,
  markRevoked,
  newRawRecord,
  rotateRaw,
  toKeyRecord,
  type RawRecord,
} from './record';
import type { CreatedKey, KeyChanges, KeyRecord, KeyStore, NewKeyInput, RotatedKey, UsageBatch, UsageDelta } from './types';

export interface MemoryKeyStoreOptions {
  /** Plain keys to accept from the start (e.g. from `API_KEYS`), any format. */
  keys?: string[];
  /** Owner given to the keys in `keys`. Default `"api-keys"`. */
  owner?: string;
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /** The clock, in ms since the epoch, for every time the store stamps or compares. Default `Date.now`. */
  now?: () => number;
}

/**
 * Keys and counters in process memory only: for tests, and for keys bootstrapped from `API_KEYS`.
 * Nothing survives a restart.
 */
export class MemoryKeyStore implements KeyStore {
  private readonly records = new Map<string, KeyRecord>();
  private readonly keyPrefix: string;
  private readonly now: () => number;
  private unchecksummed = 0;

  constructor(options: MemoryKeyStoreOptions = {}) {
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.now = options.now ?? Date.now;
    const owner = options.owner ?? 'api-keys';
    for (const key of options.keys ?? []) {
      const hash = hashKey(key);
      if (this.records.has(hash)) continue;
      if (!hasValidChecksum(key, this.keyPrefix)) this.unchecksummed++;
      this.records.set(hash, toKeyRecord({ owner, key_prefix: displayPrefix(key, this.keyPrefix) }, hash));
    }
  }

  get(keyHash: string): KeyRecord | undefined {
    return this.records.get(keyHash);
  }

  size(): number {
    return this.records.size;
  }

  hasUnchecksummedKeys(): boolean {
    return this.unchecksummed > 0;
  }

  async create(input: NewKeyInput): Promise<CreatedKey> {
    const { key, raw } = newRawRecord(input, this.now(), this.keyPrefix);
    const created = createdKey(key, raw, this.keyPrefix);
    this.records.set(created.record.key_hash, created.record);
    return { key, record: { ...created.record } };
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    const current = this.records.get(keyHash);
    if (!current) return undefined;
    const record = { ...current };
    markRevoked(record, this.now());
    this.records.set(keyHash, record);
    return { ...record };
  }

  async rotate(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined> {
    const current = this.records.get(keyHash);
    if (!current) return undefined;
    const old: RawRecord = { ...current };
    const rotated = rotateRaw([old], (r) => r === old, keyHash, graceSeconds, this.keyPrefix, this.now())!;
    this.records.set(keyHash, rotated.previous);
    this.records.set(rotated.record.key_hash, rotated.record);
    return { key: rotated.key, record: { ...rotated.record }, previous: { ...rotated.previous } };
  }

  async update(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    const current = this.records.get(keyHash);
    if (!current) return undefined;
    const raw: RawRecord = { ...current };
    applyKeyChanges(raw, changes, this.now());
    const record = toKeyRecord(raw, keyHash, this.keyPrefix);
    this.records.set(keyHash, record);
    return { ...record };
  }

  async list(): Promise<KeyRecord[]> {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  /** Replaces records rather than changing them, so a record once handed out never changes. */
  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    for (const delta of deltas) {
      const current = this.records.get(delta.key_hash);
      if (!current) continue;
      const record = { ...current };
      addUsage(record, delta);
      spendCredits(record, delta);
      this.records.set(delta.key_hash, record);
    }
    batch?.onApplied();
  }

  async close(): Promise<void> {}
}
