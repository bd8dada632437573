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
    return this.check(key, options);
  }

  /**
   * {@link verify}, answered synchronously when the store and the limiter can (a JSON or memory
   * store with the memory limiter): the request path then allocates no promise at all.
   */
  check(key: string | undefined, options: VerifyOptions = {}): VerifyResult | Promise<VerifyResult> {
    const cost = options.cost ?? 1;
    if (key === undefined || key === '') return { valid: false, code: 'MISSING', limits: [], cost };
    const seen = this.inspect(key);
    if (!seen) return { valid: false, code: 'MALFORMED', limits: [], cost };
    const { store } = this.parts;
    const { hash, checksummed } = seen;
    if (!checksummed && !store.hasUnchecksummedKeys?.()) return { valid: false, code: 'MALFORMED', limits: [], cost };
    let found: KeyRecord | undefined | Promise<KeyRecord | undefined>;
    try {
      found = store.get(hash);
    } catch (err) {
      return this.unavailable('key store look-up failed', err, cost);
    }
    if (found instanceof Promise || (!found && checksummed && store.refresh))
      return this.lookUpLater(found, hash, checksummed, options, cost);
    return this.checkRecord(found, options, cost);
  }

  private unavailable(what: string, err: unknown, cost: number, record?: KeyRecord, limits: RateLimitResult[] = []): VerifyResult {
    this.fail(what, err);
    return { valid: false, code: 'UNAVAILABLE', record, limits, cost };
  }

  /** The look-up when the store answers asynchronously, or must be refreshed for an unknown key. */
  private async lookUpLater(
    found: KeyRecord | undefined | Promise<KeyRecord | undefined>,
    hash: string,
    checksummed: boolean,
    options: VerifyOptions,
    cost: number,
  ): Promise<VerifyResult> {
    const { store } = this.parts;
    let record: KeyRecord | undefined;
    try {
      record = await found;
      if (!record && checksummed && store.refresh) {
        await store.refresh();
        record = await store.get(hash);
      }
    } catch (err) {
      return this.unavailable('key store look-up failed', err, cost);
    }
    return this.checkRecord(record, options, cost);
  }

  /** Status and limits of a found record; synchronous when the limiter is. */
  private checkRecord(record: KeyRecord | undefined, options: VerifyOptions, cost: number): VerifyResult | Promise<VerifyResult> {
    if (!record) return { valid: false, code: 'NOT_FOUND', limits: [], cost };
    const now = options.now ?? (this.parts.now ?? Date.now)();
    if (isRevoked(record, now)) return { valid: false, code: 'REVOKED', record, limits: [], cost };
    if (isExpired(record, now)) return { valid: false, code: 'EXPIRED', record, limits: [], cost };
    const windows = this.windowsFor(record);
    const { limiter } = this.parts;
    const limits: RateLimitResult[] = [];
    if (limiter.consumeSync) {
      try {
        for (const window of windows) {
          const result = limiter.consumeSync(window, record.key_hash, cost);
          if (result === undefined) return this.limitLater(record, windows, limits, now, cost);
          limits.push(result);
          if (!result.allowed) return this.refused(record, limits, result, now, cost);
        }
      } catch (err) {
        return this.unavailable('rate limiter failed', err, cost, record, limits);
      }
      return this.allowed(record, limits, now, cost);
    }
    return this.limitLater(record, windows, limits, now, cost);
  }

  /** The windows from `limits.length` on, through the limiter's asynchronous consume. */
  private async limitLater(
    record: KeyRecord,
    windows: readonly RateLimitWindow[],
    limits: RateLimitResult[],
    now: number,
    cost: number,
  ): Promise<VerifyResult> {
    try {
      for (let i = limits.length; i < windows.length; i++) {
        const result = await this.parts.limiter.consume(windows[i]!, record.key_hash, cost);
        limits.push(result);
        if (!result.allowed) return this.refused(record, limits, result, now, cost);
      }
    } catch (err) {
      return this.unavailable('rate limiter failed', err, cost, record, limits);
    }
    return this.allowed(record, limits, now, cost);
  }

  private refused(record: KeyRecord, limits: RateLimitResult[], refusedBy: RateLimitResult, now: number, cost: number): VerifyResult {
    this.parts.recorder.recordRateLimited(record.key_hash, now);
    return { valid: false, code: 'RATE_LIMITED', record, limits, refusedBy, cost };
  }

  private allowed(record: KeyRecord, limits: RateLimitResult[], now: number, cost: number): VerifyResult {
    this.failures.clear();
    this.parts.recorder.record(record.key_hash, cost, now);
    return { valid: true, code: 'VALID', record, limits, cost };
  }
}
