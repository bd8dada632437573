import type { RateLimitResult } from '../limits/types';
import type { KeyRecord } from '../store/types';
import type { Spending } from './quota-and-credits';

/* The types of the key check (Verifier, auth.verify()). */

/** Why a key was accepted or refused (after Unkey's verification codes). */
export type VerifyCode =
  | 'VALID'
  | 'MISSING'
  | 'MALFORMED'
  | 'NOT_FOUND'
  | 'REVOKED'
  | 'EXPIRED'
  | 'RATE_LIMITED'
  | 'QUOTA_EXCEEDED'
  | 'CREDITS_EXHAUSTED'
  | 'UNAVAILABLE';

/** The result of {@link Verifier.verify}. New fields may be added; existing ones keep their meaning. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The key's record, when one was found (also for REVOKED, EXPIRED, RATE_LIMITED). */
  record?: KeyRecord;
  /** The state of every window checked, in order; empty when no limit was reached. */
  limits: RateLimitResult[];
  /** The window that refused, with RATE_LIMITED (and the `"month"` policy with QUOTA_EXCEEDED). */
  refusedBy?: RateLimitResult;
  /** Units this request cost (counted only when valid). */
  cost: number;
  /** The key's plan, when it has one in force. */
  plan?: string;
  /** The monthly quota as the `"month"` policy, when the key's plan has one. */
  quota?: RateLimitResult;
  /** Prepaid credits left, when the key is prepaid. */
  credits?: number;
  /** What was taken from quota and credits (internal: given back when the request does not count). */
  spending?: Spending;
}

export interface VerifyOptions {
  /** Units this request costs. Default 1. */
  cost?: number;
  /** Current time in ms (tests). */
  now?: number;
  /**
   * Hold the usage as in flight instead of counting it: the caller settles it with
   * `Verifier.settle` once it knows whether the request counts (the middleware, at response end).
   */
  defer?: boolean;
  /** More units of a request already counted (`auth.cost(n)`): no further request is counted. */
  additional?: boolean;
  /**
   * Check the key only and read where it stands, spending and counting nothing (the usage routes):
   * VALID for a key that is neither revoked nor expired, even while a limit refuses it, with
   * `limits`, `quota` and `credits` as they are now and `cost` 0.
   */
  peek?: boolean;
}
