import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { RlfRateLimiter, rlfOptions, toResult } from './rlf-adapter';
import type { RateLimitResult, RateLimitWindow } from './types';

/** The part of rate-limiter-flexible's memory storage that its own `consume` calls synchronously. */
interface MemoryStorage {
  incrby(key: string, value: number, durationSec: number): RateLimiterRes;
  set(key: string, value: number, durationSec: number): RateLimiterRes;
}

/** A window's limiter, its storage, and the storage key of each subject seen (bounded). */
interface Slot {
  limiter: RateLimiterMemory;
  storage: MemoryStorage;
  keys: Map<string, string>;
}

/** Subjects whose storage key a window remembers; past it, the memory starts again. */
const KEYS_LIMIT = 10_000;

/** rate-limiter-flexible's in-process fixed-window limiter: counts per process. */
export class MemoryRateLimiter extends RlfRateLimiter {
  /** null: this version of rate-limiter-flexible keeps its storage differently. */
  private readonly slots = new WeakMap<RateLimitWindow, Slot | null>();

  protected build(window: RateLimitWindow, keyPrefix: string): RateLimiterMemory {
    return new RateLimiterMemory(rlfOptions(window, keyPrefix));
  }

  /**
   * The same counting as RateLimiterMemory.consume (its storage's `incrby` on the same key)
   * without the promise it wraps the answer in. Undefined, so that `consume` is used, should a
   * version of rate-limiter-flexible keep its storage differently.
   */
  consumeSync(window: RateLimitWindow, id: string, cost: number): RateLimitResult | undefined {
    let slot = this.slots.get(window);
    if (slot === undefined) slot = this.slotFor(window);
    if (slot === null) return undefined;
    // The key is the same string each time: no concatenation, and its hash is computed once.
    let key = slot.keys.get(id);
    if (key === undefined) {
      if (slot.keys.size >= KEYS_LIMIT) slot.keys.clear();
      key = slot.limiter.getKey(id);
      slot.keys.set(id, key);
    }
    const { storage } = slot;
    let res = storage.incrby(key, cost, window.windowSeconds);
    const allowed = res.consumedPoints <= window.limit;
    // As RateLimiterMemory.consume: the first refusal past the limit starts the block.
    if (!allowed && window.blockSeconds && res.consumedPoints <= window.limit + cost)
      res = storage.set(key, res.consumedPoints, window.blockSeconds);
    return toResult(window, res, allowed);
  }

  private slotFor(window: RateLimitWindow): Slot | null {
    const limiter = this.limiterFor(window) as RateLimiterMemory & { _memoryStorage?: Partial<MemoryStorage> };
    const storage = limiter._memoryStorage;
    const slot =
      typeof storage?.incrby === 'function' && typeof storage.set === 'function'
        ? { limiter, storage: storage as MemoryStorage, keys: new Map<string, string>() }
        : null;
    this.slots.set(window, slot);
    return slot;
  }
}
