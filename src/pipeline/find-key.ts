import { hasValidChecksum, hashKey, isPlausibleKey } from '../keys';
import { isExpired, isRevoked } from '../store/record';
import type { KeyRecord, KeyStore } from '../store/types';
import type { VerifyCode } from './verify-types';

/** Keys whose shape check and hash are remembered; past it, the memory starts again. */
const SEEN_KEYS_LIMIT = 10_000;

/** What the key stage found: the record with VALID, else why not (with the record when there is one). */
export interface FoundKey {
  code: VerifyCode;
  record?: KeyRecord;
}

/**
 * The key stage: the key's shape and checksum, its look-up by hash (with a store refresh for a
 * checksummed key the store does not know yet), then its status. Rejects when the store fails.
 */
export class KeyFinder {
  /** Keys seen recently: their hash and whether they carry a valid checksum (bounded). */
  private readonly seen = new Map<string, { hash: string; checksummed: boolean }>();

  constructor(
    private readonly store: KeyStore,
    private readonly keyPrefix: string,
  ) {}

  async find(key: string | undefined, now: number): Promise<FoundKey> {
    if (key === undefined || key === '') return { code: 'MISSING' };
    const seen = this.inspect(key);
    if (!seen || (!seen.checksummed && !this.store.hasUnchecksummedKeys?.())) return { code: 'MALFORMED' };
    let record = await this.store.get(seen.hash);
    // A checksummed key the store does not know yet may have been created by another process.
    if (!record && seen.checksummed && this.store.refresh) {
      await this.store.refresh();
      record = await this.store.get(seen.hash);
    }
    if (!record) return { code: 'NOT_FOUND' };
    if (isRevoked(record, now)) return { code: 'REVOKED', record };
    if (isExpired(record, now)) return { code: 'EXPIRED', record };
    return { code: 'VALID', record };
  }

  /**
   * The record of a key the store knows already, whatever its status, without a refresh (to
   * attribute a request refused before the key was checked, such as by the IP limit).
   */
  async identify(key: string | undefined): Promise<KeyRecord | undefined> {
    const seen = key ? this.inspect(key) : undefined;
    return seen && (await this.store.get(seen.hash));
  }

  /** Shape check, checksum and hash of a key; undefined when it cannot be a key. */
  private inspect(key: string): { hash: string; checksummed: boolean } | undefined {
    let seen = this.seen.get(key);
    if (seen) return seen;
    if (!isPlausibleKey(key)) return undefined;
    seen = { hash: hashKey(key), checksummed: hasValidChecksum(key, this.keyPrefix) };
    if (this.seen.size >= SEEN_KEYS_LIMIT) this.seen.clear();
    this.seen.set(key, seen);
    return seen;
  }
}
