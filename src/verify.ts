import { DaymindError, describeError } from './errors';
import { OnceReporter } from './report-once';
import { hasValidChecksum, hashKey, isPlausibleKey } from './keys';

const SEEN_KEYS_LIMIT = 10_000;
import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './ratelimit/types';
import { isExpired, isRevoked } from './store/record';
import type { KeyRecord, KeyStore } from './store/types';
import type { UsageRecorder } from './usage/recorder';

/** Why a key was accepted or refused (after Unkey's verification codes). */
export type VerifyCode = 'VALID' | 'MISSING' | 'MALFORMED' | 'NOT_FOUND' | 'REVOKED' | 'EXPIRED' | 'RATE_LIMITED' | 'UNAVAILABLE';

/** The result of {@link Verifier.verify}. New fields may be added; existing ones keep their meaning. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The key's record, when one was found (also for REVOKED, EXPIRED, RATE_LIMITED). */
  record?: KeyRecord;
  /** The state of every window checked, in order; empty when no limit was reached. */
  limits: RateLimitResult[];
  /** The window that refused, with RATE_LIMITED. */
  refusedBy?: RateLimitResult;
  /** Units this request cost (counted only when valid). */
  cost: number;
}

export interface VerifyOptions {
  /** Units this request costs. Default 1. */
  cost?: number;
  /** Current time in ms (tests). */
  now?: number;
}

export interface VerifierParts {
  store: KeyStore;
  limiter: RateLimiterAdapter;
  recorder: UsageRecorder;
  keyPrefix: string;
  defaultRateLimitPerMinute: number;
  /** The clock, ms. Default Date.now. */
  now?: () => number;
  onError: (err: Error) => void;
}

/**
 * The core check, independent of HTTP: key shape, look-up by hash, status, the key's rate-limit
 * windows, and usage counting. Never throws: failures of the store or limiter give UNAVAILABLE.
 */
export class Verifier {
  /** An outage is reported once, not once per request. */
  private readonly failures: OnceReporter;

  constructor(private readonly parts: VerifierParts) {
    this.failures = new OnceReporter(parts.onError);
  }

  private fail(what: string, err: unknown): void {
    this.failures.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `${what}: ${describeError(err)}`, { cause: err }));
  }

  /** The same window objects for the same limit, so limiters can find theirs by identity. */
  private readonly windowsByLimit = new Map<number, readonly RateLimitWindow[]>();
  /** Keys seen recently: their hash and whether they carry a valid checksum (bounded). */
  private readonly seenKeys = new Map<string, { hash: string; checksummed: boolean }>();

  /** The rate-limit windows that apply to a key. */
  windowsFor(record: KeyRecord): readonly RateLimitWindow[] {
    const limit = record.rate_limit_per_minute ?? this.parts.defaultRateLimitPerMinute;
    let windows = this.windowsByLimit.get(limit);
    if (!windows) {
      windows = [{ name: 'key', limit, windowSeconds: 60 }];
      this.windowsByLimit.set(limit, windows);
    }
    return windows;
  }

  /** Shape check, checksum and hash of a key; remembered for the 10,000 most recent keys. */
  private inspect(key: string): { hash: string; checksummed: boolean } | undefined {
    let seen = this.seenKeys.get(key);
    if (seen) return seen;
    if (!isPlausibleKey(key)) return undefined;
    seen = { hash: hashKey(key), checksummed: hasValidChecksum(key, this.parts.keyPrefix) };
    if (this.seenKeys.size >= SEEN_KEYS_LIMIT) this.seenKeys.clear();
    this.seenKeys.set(key, seen);
    return seen;
  }

  /**
   * The record of a key already known to the store, without limits or counting (to attribute a
   * request refused before the key was checked, such as by the IP limit).
   */
  async identify(key: string | undefined): Promise<KeyRecord | undefined> {
    const seen = key ? this.inspect(key) : undefined;
    if (!seen) return undefined;
    try {
      return await this.parts.store.get(seen.hash);
    } catch {
      return undefined;
    }
  }

  async verify(key: string | undefined, options: VerifyOptions = {}): Promise<VerifyResult> {
    const cost = options.cost ?? 1;
    if (key === undefined || key === '') return { valid: false, code: 'MISSING', limits: [], cost };
    const seen = this.inspect(key);
    if (!seen) return { valid: false, code: 'MALFORMED', limits: [], cost };
    const { store } = this.parts;
    const { hash, checksummed } = seen;
    if (!checksummed && !store.hasUnchecksummedKeys?.()) return { valid: false, code: 'MALFORMED', limits: [], cost };

    let record: KeyRecord | undefined;
    try {
      const found = store.get(hash);
      record = found instanceof Promise ? await found : found;
      if (!record && checksummed && store.refresh) {
        await store.refresh();
        record = await store.get(hash);
      }
    } catch (err) {
      this.fail('key store look-up failed', err);
      return { valid: false, code: 'UNAVAILABLE', limits: [], cost };
    }
    if (!record) return { valid: false, code: 'NOT_FOUND', limits: [], cost };
    const now = options.now ?? (this.parts.now ?? Date.now)();
    if (isRevoked(record, now)) return { valid: false, code: 'REVOKED', record, limits: [], cost };
    if (isExpired(record, now)) return { valid: false, code: 'EXPIRED', record, limits: [], cost };

    const limits: RateLimitResult[] = [];
    try {
      for (const window of this.windowsFor(record)) {
        const result = await this.parts.limiter.consume(window, record.key_hash, cost);
        limits.push(result);
        if (!result.allowed) {
          this.parts.recorder.recordRateLimited(record.key_hash, now);
          return { valid: false, code: 'RATE_LIMITED', record, limits, refusedBy: result, cost };
        }
      }
    } catch (err) {
      this.fail('rate limiter failed', err);
      return { valid: false, code: 'UNAVAILABLE', record, limits, cost };
    }
    this.failures.clear();
    this.parts.recorder.record(record.key_hash, cost, now);
    return { valid: true, code: 'VALID', record, limits, cost };
  }
}
